/* The memory store behaves like the SQLite store (same shared cases), minus
 * the disk: a reopen is replaced by loading the same store again. */
#include "lib/store_util.h"

#define KIND ((void *)(intptr_t)LR_STORE_MEMORY)
#define CASE(f) cmocka_unit_test_prestate(f, KIND)

/* The memory store's size stays bounded under endless writes when snapshots
 * compact the log. */
static void test_memory_bounded_under_endless_writes(void **state) {
  struct lr_store *s = store_open(LR_STORE_MEMORY, NULL, 1, 7);
  uint64_t max = 0;
  for (raft_index i = 1; i <= 20000; i += 10) {
    assert_int_equal(store_append(s, 1, 1, i, 10, 1, 100), 0);
    if ((i + 9) % 1000 == 0) assert_int_equal(store_snapshot(s, i + 9, 1, 1000), 0);
    struct lr_store_stats ss;
    lr_store_stats(s, &ss);
    if (ss.file_bytes > max) max = ss.file_bytes;
  }
  assert_in_range(max, 1, 120 * 1000);
  lr_store_close(s);
}

/* The memory store has no SQL connection. */
static void test_memory_has_no_sql(void **state) {
  struct lr_store *s = store_open(LR_STORE_MEMORY, NULL, 1, 7);
  char err[64];
  assert_int_equal(lr_store_sqlite_exec(s, "SELECT 1", err, sizeof err), RAFT_EINVAL);
  assert_string_equal(lr_store_path(s), "memory");
  lr_store_close(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      CASE(store_case_fresh),
      CASE(store_case_round_trip),
      CASE(store_case_truncate),
      CASE(store_case_prepare_from_update),
      CASE(store_case_snapshot_compacts),
      CASE(store_case_snapshot_divergent),
      CASE(store_case_snapshot_ahead),
      CASE(store_case_gap_refused),
      CASE(store_case_injected_fault),
      CASE(store_case_compact_clamped),
      cmocka_unit_test(test_memory_bounded_under_endless_writes),
      cmocka_unit_test(test_memory_has_no_sql),
  };
  return cmocka_run_group_tests_name("store_memory", tests, NULL, NULL);
}
