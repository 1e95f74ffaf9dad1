/* The runner's determinism guards (src/sm): the memory limit halts the runner
 * (and keeps the applied index), the instruction budget turns a runaway
 * apply into the same apply_error every time, digests condemn a replica only
 * when a majority of voters agrees on another digest, and a halted runner
 * serves nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lib/tmpfile.h"
#include "sm/sm.h"

static const char *SM =
    "local kept, n = {}, 0\n"
    "return {\n"
    "  apply = function(cmd, meta)\n"
    "    if cmd == 'loop' then while true do end end\n"
    "    if cmd == 'grow' then kept[#kept + 1] = string.rep('x', 256 * 1024) .. #kept end\n"
    "    n = n + 1\n"
    "    return n\n"
    "  end,\n"
    "  query = function() return n end,\n"
    "  digest = function() return 'n=' .. n end,\n"
    "  snapshot = function() return tostring(n) end,\n"
    "  restore = function(d) n = tonumber(d) end,\n"
    "}\n";

static char path[256];
static char logged[1024];

static int setup(void **state) {
  (void)state;
  assert_int_equal(tmp_file_write(".lua", SM, path, sizeof path), 0);
  return 0;
}
static int teardown(void **state) {
  (void)state;
  remove(path);
  return 0;
}

static void logf_(void *ud, int level, const char *msg) {
  (void)ud, (void)level;
  snprintf(logged, sizeof logged, "%s", msg);
}

static struct lr_sm *new_sm(uint64_t budget, size_t memory, uint32_t digest_entries) {
  struct lr_sm_options o = {.id = 1,
                            .path = path,
                            .apply_budget = budget,
                            .memory_max = memory,
                            .digest_entries = digest_entries,
                            .log = logf_};
  struct lr_sm *sm;
  char err[256];
  if (lr_sm_new(&o, &sm, err, sizeof err) != 0) fail_msg("lr_sm_new: %s", err);
  return sm;
}

/* Applies a string command at index. */
static int apply_cmd(struct lr_sm *sm, raft_index index, const char *cmd,
                     struct lr_sm_result *res) {
  size_t n = strlen(cmd);
  lua_State *L = luaL_newstate();
  struct lr_buf c, b;
  lr_buf_init(&c);
  lr_buf_init(&b);
  lua_pushlstring(L, cmd, n);
  char err[128];
  assert_int_equal(lr_encode(L, -1, &c, err, sizeof err), 0);
  lua_close(L);
  struct lr_env env = {.origin = 2, .req = 0, .cmd = c.data, .cmd_len = c.len};
  assert_int_equal(lr_env_encode(&env, &b), 0);
  struct raft_entry e = {.term = 1,
                         .index = index,
                         .type = RAFT_ENTRY_NORMAL,
                         .len = (uint32_t)b.len,
                         .data = (uint8_t *)b.data};
  int rc = lr_sm_apply(sm, &e, res);
  lr_buf_free(&c);
  lr_buf_free(&b);
  return rc;
}

static void apply_config(struct lr_sm *sm, raft_index index, uint32_t voters) {
  struct raft_member m[5];
  for (uint32_t i = 0; i < voters; i++)
    m[i] = (struct raft_member){i + 1, RAFT_VOTER, ""};
  struct raft_config c = {m, voters};
  struct raft_entry e;
  assert_int_equal(raft_bootstrap_entry(&c, &e), 0);
  e.index = index;
  struct lr_sm_result res;
  assert_int_equal(lr_sm_apply(sm, &e, &res), 0);
  raft_entry_free_data(&e);
}

/* A DIGEST report from node about index, digest d. */
static void report(struct lr_sm *sm, raft_index at, uint64_t node, raft_index index, const char *d,
                   struct lr_sm_result *res) {
  char cmd[80];
  for (int i = 0; i < 8; i++)
    cmd[i] = (char)(index >> (8 * i));
  memcpy(cmd + 8, d, strlen(d));
  struct lr_env env = {.origin = node, .kind = LR_ENV_DIGEST, .cmd = cmd, .cmd_len = 8 + strlen(d)};
  struct lr_buf b;
  lr_buf_init(&b);
  assert_int_equal(lr_env_encode(&env, &b), 0);
  struct raft_entry e = {.term = 1,
                         .index = at,
                         .type = RAFT_ENTRY_NORMAL,
                         .len = (uint32_t)b.len,
                         .data = (uint8_t *)b.data};
  assert_int_equal(lr_sm_apply(sm, &e, res), 0);
  lr_buf_free(&b);
}

static void test_budget_stops_a_runaway_apply_the_same_way_every_time(void **state) {
  (void)state;
  struct lr_sm *sm = new_sm(50000, 0, 0);
  struct lr_sm_result res;
  char first[256];
  assert_int_equal(apply_cmd(sm, 1, "loop", &res), 0);
  assert_int_equal(res.status, LR_SM_APPLY_ERROR);
  snprintf(first, sizeof first, "%.*s", (int)res.len, res.data);
  assert_non_null(strstr(first, "instruction budget exceeded: more than 50000 Lua instructions"));
  assert_int_equal(apply_cmd(sm, 2, "loop", &res), 0);
  assert_int_equal((int)res.len, (int)strlen(first));
  assert_memory_equal(res.data, first, res.len);
  assert_int_equal(apply_cmd(sm, 3, "x", &res), 0);
  assert_int_equal(res.status, LR_SM_OK);
  struct lr_sm_status st;
  lr_sm_status(sm, &st);
  assert_int_equal(st.budget_exceeded, 2);
  assert_false(st.halted);
  lr_sm_free(sm);
}

static void test_memory_limit_halts_and_keeps_the_applied_index(void **state) {
  (void)state;
  struct lr_sm *sm = new_sm(0, 2 * 1024 * 1024, 0);
  struct lr_sm_result res;
  raft_index i = 1;
  for (; i < 100; i++) {
    assert_int_equal(apply_cmd(sm, i, "grow", &res), 0);
    if (res.status == LR_SM_HALTED) break;
    assert_int_equal(res.status, LR_SM_OK);
  }
  assert_true(i < 100);
  assert_true(lr_sm_halted(sm));
  assert_int_equal(lr_sm_applied_index(sm), i - 1);
  struct lr_sm_status st;
  lr_sm_status(sm, &st);
  assert_true(st.memory_exceeded);
  assert_false(st.diverged);
  assert_non_null(strstr(st.reason, "memory limit reached"));
  assert_non_null(strstr(logged, "state machine HALTED: memory limit reached"));
  assert_true(st.memory_used <= st.memory_max);
  /* halted: nothing more is applied, read or snapshotted */
  assert_int_equal(apply_cmd(sm, i, "x", &res), 0);
  assert_int_equal(res.status, LR_SM_HALTED);
  assert_string_equal(lr_sm_code(res.status), "stopped");
  assert_int_equal(lr_sm_query(sm, "\x00", 1, &res), 0);
  assert_int_equal(res.status, LR_SM_HALTED);
  struct lr_buf b;
  char err[256];
  lr_buf_init(&b);
  assert_int_equal(lr_sm_snapshot(sm, &b, err, sizeof err), -1);
  lr_buf_free(&b);
  lr_sm_free(sm);
}

static void test_digest_majority_condemns_only_the_odd_one(void **state) {
  (void)state;
  struct lr_sm *sm = new_sm(0, 0, 4);
  struct lr_sm_result res;
  apply_config(sm, 1, 3);
  for (raft_index i = 2; i <= 4; i++)
    assert_int_equal(apply_cmd(sm, i, "x", &res), 0);
  assert_true(lr_sm_digest_due(sm));
  struct lr_buf b;
  lr_buf_init(&b);
  assert_int_equal(lr_sm_digest_envelope(sm, &b), 0);
  assert_false(lr_sm_digest_due(sm));
  struct lr_env env;
  assert_int_equal(lr_env_decode(b.data, b.len, &env), 0);
  assert_int_equal(env.kind, LR_ENV_DIGEST);
  assert_int_equal(env.origin, 1);
  assert_memory_equal(env.cmd + 8, "n=3", 3);
  lr_buf_free(&b);
  /* one other node disagrees: no majority for it, nothing happens */
  report(sm, 5, 2, 4, "n=99", &res);
  assert_int_equal(res.status, LR_SM_NONE);
  assert_false(lr_sm_halted(sm));
  /* a learner or unknown node does not count */
  report(sm, 6, 9, 4, "n=99", &res);
  assert_false(lr_sm_halted(sm));
  /* a second voter agrees with the first: a majority against this node */
  report(sm, 7, 3, 4, "n=99", &res);
  assert_int_equal(res.status, LR_SM_HALTED);
  assert_true(lr_sm_halted(sm));
  struct lr_sm_status st;
  lr_sm_status(sm, &st);
  assert_true(st.diverged);
  assert_int_equal(st.diverged_index, 4);
  assert_memory_equal(st.mine, "n=3", 3);
  assert_memory_equal(st.majority, "n=99", 4);
  assert_int_equal(st.digest_mismatches, 1);
  assert_int_equal(lr_sm_applied_index(sm), 7);
  lr_sm_free(sm);
}

static void test_digest_agreement_is_counted(void **state) {
  (void)state;
  struct lr_sm *sm = new_sm(0, 0, 2);
  struct lr_sm_result res;
  apply_config(sm, 1, 3);
  assert_int_equal(apply_cmd(sm, 2, "x", &res), 0);
  report(sm, 3, 1, 2, "n=1", &res);
  report(sm, 4, 1, 2, "n=1", &res); /* a duplicate counts once */
  report(sm, 5, 2, 2, "n=1", &res);
  struct lr_sm_status st;
  lr_sm_status(sm, &st);
  assert_int_equal(st.digests_taken, 1);
  assert_int_equal(st.digests_matched, 1);
  assert_false(st.halted);
  /* index 4 and 5 were reports (not checkpoints); index 6 is */
  assert_int_equal(apply_cmd(sm, 6, "x", &res), 0);
  lr_sm_status(sm, &st);
  assert_int_equal(st.digests_taken, 2);
  lr_sm_free(sm);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_budget_stops_a_runaway_apply_the_same_way_every_time),
      cmocka_unit_test(test_memory_limit_halts_and_keeps_the_applied_index),
      cmocka_unit_test(test_digest_majority_condemns_only_the_odd_one),
      cmocka_unit_test(test_digest_agreement_is_counted),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
