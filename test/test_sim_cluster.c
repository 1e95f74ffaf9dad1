/* The simulator's C plumbing (src/sim): a cluster elects a leader, a proposal
 * completes at its origin with the apply result, a crash ends waiting
 * requests with `stopped`, and equal seeds give byte-identical traces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>

#include "sim/sim.h"

static char path[64];

static int setup(void **state) {
  snprintf(path, sizeof path, "/tmp/test_sim_%d.lua", (int)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("local n = 0\nreturn { apply = function(cmd) n = n + 1 return n end,\n"
        "query = function() return n end,\n"
        "snapshot = function() return tostring(n) end,\n"
        "restore = function(d) n = tonumber(d) end }\n",
        f);
  fclose(f);
  return 0;
}
static int teardown(void **state) {
  remove(path);
  return 0;
}

static struct lr_sim *new_sim(uint64_t seed) {
  struct lr_sim_options o;
  memset(&o, 0, sizeof o);
  o.n_nodes = 3;
  for (int i = 0; i < 3; i++)
    o.ids[i] = (raft_id)i + 1;
  o.seed = seed;
  o.raft.election_ms = 300;
  o.raft.heartbeat_ms = 50;
  o.raft.pre_vote = true;
  o.raft.check_quorum = true;
  o.sm.path = path;
  o.disk_hi = 2;
  o.net_lo = 1;
  o.net_hi = 5;
  o.trace = LR_SIM_TRACE_EVENTS;
  o.snapshot_entries = 20;
  struct lr_sim *s;
  char err[256];
  if (lr_sim_new(&o, &s, err, sizeof err) != 0) fail_msg("lr_sim_new: %s", err);
  return s;
}

static raft_id elect(struct lr_sim *s) {
  for (int i = 0; i < 100 && lr_sim_leader(s) == 0; i++)
    lr_sim_run(s, lr_sim_now(s) + 100);
  assert_int_not_equal(lr_sim_leader(s), 0);
  return lr_sim_leader(s);
}

/* the encoding of the string "x", made by the codec */
static void cmd_x(struct lr_buf *b) {
  lua_State *L = luaL_newstate();
  char err[64];
  lua_pushliteral(L, "x");
  assert_int_equal(lr_encode(L, -1, b, err, sizeof err), 0);
  lua_close(L);
}

static void test_proposal_completes_at_origin_with_result(void **state) {
  struct lr_sim *s = new_sim(1);
  raft_id leader = elect(s);
  struct lr_buf cmd;
  lr_buf_init(&cmd);
  cmd_x(&cmd);
  uint64_t ids[30];
  for (int i = 0; i < 30; i++)
    ids[i] = lr_sim_propose(s, leader, cmd.data, cmd.len, NULL, 0, 0, 5000);
  lr_sim_run(s, lr_sim_now(s) + 1000);
  struct lr_sim_completion c;
  int done = 0;
  while (lr_sim_next_completion(s, &c)) {
    assert_null(c.code);
    assert_int_equal(c.id, ids[done]);
    done++;
  }
  assert_int_equal(done, 30);
  struct lr_sim_node_status st;
  lr_sim_status(s, leader, &st);
  assert_true(st.snapshot_index >= 20); /* snapshot_entries = 20 */
  assert_null(lr_sim_violation(s));
  lr_buf_free(&cmd);
  lr_sim_free(s);
}

static void test_crash_stops_waiting_requests(void **state) {
  struct lr_sim *s = new_sim(2);
  raft_id leader = elect(s);
  struct lr_buf cmd;
  lr_buf_init(&cmd);
  cmd_x(&cmd);
  uint64_t id = lr_sim_propose(s, leader, cmd.data, cmd.len, NULL, 0, 0, 5000);
  assert_int_equal(lr_sim_crash(s, leader), 0);
  struct lr_sim_completion c;
  assert_true(lr_sim_next_completion(s, &c));
  assert_int_equal(c.id, id);
  assert_string_equal(c.code, "stopped");
  char err[128];
  assert_int_equal(lr_sim_restart(s, leader, err, sizeof err), 0);
  lr_sim_run(s, lr_sim_now(s) + 3000);
  assert_int_not_equal(lr_sim_leader(s), 0);
  assert_null(lr_sim_violation(s));
  lr_buf_free(&cmd);
  lr_sim_free(s);
}

static void test_equal_seeds_give_equal_traces(void **state) {
  size_t la, lb;
  struct lr_sim *a = new_sim(7), *b = new_sim(7);
  lr_sim_net(a, 0.1, 0.1, 1, 30, true);
  lr_sim_net(b, 0.1, 0.1, 1, 30, true);
  lr_sim_run(a, 10000);
  lr_sim_run(b, 10000);
  const char *ta = lr_sim_trace(a, &la), *tb = lr_sim_trace(b, &lb);
  assert_true(la > 0);
  assert_int_equal(la, lb);
  assert_memory_equal(ta, tb, la);
  lr_sim_free(a);
  lr_sim_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_proposal_completes_at_origin_with_result),
      cmocka_unit_test(test_crash_stops_waiting_requests),
      cmocka_unit_test(test_equal_seeds_give_equal_traces),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
