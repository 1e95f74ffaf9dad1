/* The SQLite store: the shared cases, plus what only a disk has: crash
 * safety, corruption and foreign-database refusal, a full disk, a bounded
 * file under endless writes, and writes run on libuv's thread pool. */
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "lib/store_util.h"

#define KIND ((void *)(intptr_t)LR_STORE_SQLITE)
#define CASE(f) cmocka_unit_test_prestate(f, KIND)

static int open_err(const char *dir, raft_id id, uint64_t cluster, char *err, size_t n) {
  struct lr_store_options o = {
      .kind = LR_STORE_SQLITE, .dir = dir, .node_id = id, .cluster_id = cluster};
  struct lr_store *s = NULL;
  int rv = lr_store_open(&o, &s, err, n);
  if (rv == 0)
    lr_store_close(s);
  else
    assert_null(s);
  return rv;
}

static void raw_exec(const char *dir, const char *sql) {
  char path[512];
  snprintf(path, sizeof path, "%s/raft.db", dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg("raw sql: %s", msg);
  sqlite3_close(db);
}

/* A database is refused when it belongs to another node or cluster. */
static void test_sqlite_refuses_foreign_database(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 2, 7);
  assert_int_equal(store_append(s, 1, 2, 1, 3, 1, 4), 0);
  lr_store_close(s);
  char err[512], want[600];
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_EFOREIGN);
  snprintf(want, sizeof want, "%s/raft.db belongs to node 2, not node 1", dir);
  assert_string_equal(err, want);
  assert_int_equal(open_err(dir, 2, 8, err, sizeof err), LR_STORE_EFOREIGN);
  assert_non_null(strstr(err, "belongs to cluster 0000000000000007, not cluster 0000000000000008"));
  assert_int_equal(open_err(dir, 2, 7, err, sizeof err), 0);
  store_rmdir(dir);
}

/* A flipped byte in an entry's data is found at open, with the entry named. */
static void test_sqlite_detects_corrupted_entry(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  assert_int_equal(store_append(s, 1, 1, 1, 20, 1, 50), 0);
  lr_store_close(s);
  raw_exec(dir, "UPDATE entries SET data = "
                "substr(data, 1, 9) || x'ff' || substr(data, 11) WHERE idx = 17");
  char err[512];
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_ECORRUPT);
  assert_non_null(strstr(err, "entry 17 checksum mismatch: the database is corrupted; "
                              "restore it from a replica"));
  store_rmdir(dir);
}

/* A corrupted snapshot, a hole in the log and a missing metadata row are
 * refused too. */
static void test_sqlite_detects_other_corruption(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  assert_int_equal(store_append(s, 1, 1, 1, 20, 1, 5), 0);
  assert_int_equal(store_snapshot(s, 10, 1, 300), 0);
  lr_store_close(s);
  char err[512];
  raw_exec(dir, "UPDATE snapshot SET data = x'00' || substr(data, 2)");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_ECORRUPT);
  assert_non_null(strstr(err, "snapshot 10 checksum mismatch"));
  store_rmdir(dir);

  dir = store_tmpdir();
  s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  assert_int_equal(store_append(s, 1, 1, 1, 20, 1, 5), 0);
  lr_store_close(s);
  raw_exec(dir, "DELETE FROM entries WHERE idx = 12");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_ECORRUPT);
  assert_non_null(strstr(err, "entries 12 to 12 are missing"));
  raw_exec(dir, "DELETE FROM entries WHERE idx < 12");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_ECORRUPT);
  assert_non_null(strstr(err, "the log starts at entry 13"));
  raw_exec(dir, "DELETE FROM meta");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_ECORRUPT);
  store_rmdir(dir);
}

/* A file that is not a luaraft database (or not SQLite at all) is refused. */
static void test_sqlite_refuses_other_files(void **state) {
  char *dir = store_tmpdir();
  char path[512], err[512];
  snprintf(path, sizeof path, "%s/raft.db", dir);
  FILE *fp = fopen(path, "w");
  for (int i = 0; i < 200; i++)
    fputs("this is not a database at all ", fp);
  fclose(fp);
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_EFORMAT);
  assert_non_null(strstr(err, "is not a luaraft database"));
  remove(path);
  raw_exec(dir, "CREATE TABLE t(x)");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_EFORMAT);
  remove(path);
  raw_exec(dir, "PRAGMA application_id = 1280460372; PRAGMA user_version = 9; CREATE TABLE t(x)");
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_EFORMAT);
  assert_non_null(strstr(err, "has format version 9; this luaraft reads version 1"));
  store_rmdir(dir);
}

/* Two stores (or processes) cannot use one data dir at once. */
static void test_sqlite_refuses_second_opener(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  char err[512];
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), LR_STORE_EOPEN);
  assert_non_null(strstr(err, "in use by another process"));
  lr_store_close(s);
  assert_int_equal(open_err(dir, 1, 7, err, sizeof err), 0);
  store_rmdir(dir);
}

/* A process killed (SIGKILL) in the middle of a stream of writes loses
 * nothing it was told is durable. */
static void crash_run(int kill_it) {
  char *dir = store_tmpdir();
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    struct lr_store_options o = {.kind = LR_STORE_SQLITE, .dir = dir, .node_id = 1,
                                 .cluster_id = 7};
    struct lr_store *s;
    char err[256];
    if (lr_store_open(&o, &s, err, sizeof err) != 0)
      _exit(3);
    for (raft_index i = 1;; i++) {
      if (store_append(s, i, 1, i, 1, i, 200) != 0)
        _exit(4);
      uint64_t v = i;
      if (write(fds[1], &v, sizeof v) != sizeof v)
        _exit(5);
      if (!kill_it && i == 300)
        _exit(0); /* no close, no checkpoint */
    }
  }
  close(fds[1]);
  uint64_t acked = 0, v;
  while (read(fds[0], &v, sizeof v) == sizeof v) {
    acked = v;
    if (kill_it && acked == 200)
      kill(pid, SIGKILL);
  }
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  if (kill_it)
    assert_true(WIFSIGNALED(status));
  else
    assert_int_equal(WEXITSTATUS(status), 0);
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  struct lr_store_state st;
  char err[256];
  assert_int_equal(lr_store_load(s, &st, err, sizeof err), 0);
  assert_true(st.n_entries >= acked);
  assert_true(st.term >= acked);
  for (uint32_t i = 0; i < st.n_entries; i++)
    store_entry_check(&st.entries[i], i + 1, i + 1, 200);
  lr_store_state_free(&st);
  lr_store_close(s);
  store_rmdir(dir);
}

static void test_sqlite_survives_sigkill_mid_stream(void **state) {
  crash_run(1);
}

static void test_sqlite_survives_exit_without_close(void **state) {
  crash_run(0);
}

/* A full disk (simulated with max_page_count) fails the batch with
 * LR_STORE_EFULL, rolls it back, and writes work again when space returns;
 * everything acknowledged survives a reopen. */
static void test_sqlite_full_disk_fails_batch_cleanly(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  char err[256];
  assert_int_equal(store_append(s, 1, 1, 1, 10, 1, 1000), 0);
  assert_int_equal(lr_store_sqlite_exec(s, "PRAGMA max_page_count = 40", err, sizeof err), 0);
  raft_index next = 11;
  int rv = 0;
  for (int i = 0; i < 100 && rv == 0; i++) {
    rv = store_append(s, 0, 0, next, 4, 1, 3000);
    if (rv == 0)
      next += 4;
  }
  assert_int_equal(rv, LR_STORE_EFULL);
  /* The failed batch's message says what happened. */
  struct lr_store_batch *b;
  assert_int_equal(lr_store_batch_new(&b), 0);
  struct raft_entry e[4];
  store_entries_make(e, next, 4, 1, 3000);
  assert_int_equal(lr_store_batch_entries(b, e, 4), 0);
  store_entries_free(e, 4);
  lr_store_batch_hard_state(b, 99, 99);
  assert_int_equal(lr_store_batch_write(s, b), LR_STORE_EFULL);
  const char *msg;
  lr_store_batch_result(b, &msg, NULL, NULL);
  assert_non_null(strstr(msg, "disk full"));
  /* Space returns: the same batch now goes through. */
  assert_int_equal(lr_store_sqlite_exec(s, "PRAGMA max_page_count = 1000000", err, sizeof err),
                   0);
  assert_int_equal(lr_store_batch_write(s, b), 0);
  lr_store_batch_free(b);
  next += 4;
  assert_int_equal(store_append(s, 0, 0, next, 1, 1, 3000), 0);
  s = store_reopen(s, LR_STORE_SQLITE, dir);
  struct lr_store_state st;
  assert_int_equal(lr_store_load(s, &st, err, sizeof err), 0);
  assert_int_equal(st.term, 99);
  assert_int_equal(st.n_entries, next);
  for (uint32_t i = 10; i < st.n_entries; i++)
    store_entry_check(&st.entries[i], i + 1, 1, 3000);
  lr_store_state_free(&st);
  lr_store_close(s);
  store_rmdir(dir);
}

/* Under endless writes with periodic snapshots the database and its WAL stay
 * bounded. */
static void test_sqlite_file_bounded_under_endless_writes(void **state) {
  char *dir = store_tmpdir();
  struct lr_store *s = store_open(LR_STORE_SQLITE, dir, 1, 7);
  uint64_t max_early = 0, max_late = 0;
  const raft_index total = 40000;
  for (raft_index i = 1; i <= total; i += 20) {
    assert_int_equal(store_append(s, 1, 1, i, 20, 1, 512), 0);
    if ((i + 19) % 2000 == 0)
      assert_int_equal(store_snapshot(s, i + 19, 1, 20000), 0);
    struct lr_store_stats ss;
    lr_store_stats(s, &ss);
    if (i > 10000 && i <= 20000 && ss.file_bytes > max_early)
      max_early = ss.file_bytes;
    if (i > 30000 && ss.file_bytes > max_late)
      max_late = ss.file_bytes;
  }
  /* At most 2000 + 100 entries of 512 bytes are live (~1.1 MB); the WAL
   * adds up to wal_autocheckpoint pages between truncations. */
  print_message("file bytes (db + wal): max %llu in 10k..20k, max %llu in 30k..40k\n",
                (unsigned long long)max_early, (unsigned long long)max_late);
  assert_true(max_late < 6 * 1024 * 1024);
  assert_true(max_late <= max_early + max_early / 4);
  lr_store_close(s);
  store_rmdir(dir);
}

/* Batch writes run on libuv's thread pool, one at a time, in order; the loop
 * thread learns each outcome in the after-callback. */
struct pool {
  struct lr_store *s;
  uv_work_t req;
  struct lr_store_batch *q[8];
  int n, next, done, failed;
  raft_index acked;
};

static void pool_work(uv_work_t *req) {
  struct pool *p = req->data;
  lr_store_batch_write(p->s, p->q[p->next]);
}

static void pool_after(uv_work_t *req, int status) {
  struct pool *p = req->data;
  raft_index li;
  raft_term lt;
  if (lr_store_batch_result(p->q[p->next], NULL, &li, &lt) == 0)
    p->acked = li;
  else
    p->failed++;
  p->done++;
  if (++p->next < p->n)
    assert_int_equal(uv_queue_work(req->loop, &p->req, pool_work, pool_after), 0);
}

static void test_sqlite_writes_on_thread_pool(void **state) {
  char *dir = store_tmpdir();
  struct pool p = {.s = store_open(LR_STORE_SQLITE, dir, 1, 7), .n = 8};
  p.req.data = &p;
  for (int i = 0; i < p.n; i++) {
    struct raft_entry e[10];
    store_entries_make(e, (raft_index)i * 10 + 1, 10, 3, 64);
    assert_int_equal(lr_store_batch_new(&p.q[i]), 0);
    lr_store_batch_hard_state(p.q[i], 3, 1);
    assert_int_equal(lr_store_batch_entries(p.q[i], e, 10), 0);
    store_entries_free(e, 10);
  }
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(uv_queue_work(&loop, &p.req, pool_work, pool_after), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(p.done, 8);
  assert_int_equal(p.failed, 0);
  assert_int_equal(p.acked, 80);
  for (int i = 0; i < p.n; i++)
    lr_store_batch_free(p.q[i]);
  p.s = store_reopen(p.s, LR_STORE_SQLITE, dir);
  struct lr_store_state st;
  char err[256];
  assert_int_equal(lr_store_load(p.s, &st, err, sizeof err), 0);
  assert_int_equal(st.n_entries, 80);
  lr_store_state_free(&st);
  lr_store_close(p.s);
  store_rmdir(dir);
}

/* The store creates missing parent directories and reports its path. */
static void test_sqlite_creates_data_dir(void **state) {
  char *dir = store_tmpdir();
  char sub[512];
  snprintf(sub, sizeof sub, "%s/data/1", dir);
  struct lr_store *s = store_open(LR_STORE_SQLITE, sub, 1, 7);
  char want[600];
  snprintf(want, sizeof want, "%s/raft.db", sub);
  assert_string_equal(lr_store_path(s), want);
  lr_store_close(s);
  store_rmdir(dir);
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
      cmocka_unit_test(test_sqlite_refuses_foreign_database),
      cmocka_unit_test(test_sqlite_detects_corrupted_entry),
      cmocka_unit_test(test_sqlite_detects_other_corruption),
      cmocka_unit_test(test_sqlite_refuses_other_files),
      cmocka_unit_test(test_sqlite_refuses_second_opener),
      cmocka_unit_test(test_sqlite_survives_sigkill_mid_stream),
      cmocka_unit_test(test_sqlite_survives_exit_without_close),
      cmocka_unit_test(test_sqlite_full_disk_fails_batch_cleanly),
      cmocka_unit_test(test_sqlite_file_bounded_under_endless_writes),
      cmocka_unit_test(test_sqlite_writes_on_thread_pool),
      cmocka_unit_test(test_sqlite_creates_data_dir),
  };
  return cmocka_run_group_tests_name("store_sqlite", tests, NULL, NULL);
}
