/* The state machine runner (src/sm): envelope strictness, apply, apply
 * errors as deterministic results, client sessions, the forwarded-duplicate
 * filter and snapshot round trips. */
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

static const char *KV = "local kv = {}\n"
                        "return {\n"
                        "  apply = function(cmd, meta)\n"
                        "    if cmd == 'boom' then error('boom at ' .. meta.index) end\n"
                        "    if cmd == 'fn' then return print end\n"
                        "    if type(cmd) == 'table' then kv[cmd.k] = cmd.v return cmd.v end\n"
                        "    return meta.time\n"
                        "  end,\n"
                        "  query = function(q) return kv[q] end,\n"
                        "  snapshot = function() return raft.encode(kv) end,\n"
                        "  restore = function(d) kv = raft.decode(d) end,\n"
                        "}\n";

static char path[256];

static int setup(void **state) {
  assert_int_equal(tmp_file_write(".lua", KV, path, sizeof path), 0);
  return 0;
}
static int teardown(void **state) {
  remove(path);
  return 0;
}

static struct lr_sm *new_sm(uint32_t max_sessions) {
  struct lr_sm_options o = {.id = 1, .path = path, .max_sessions = max_sessions};
  struct lr_sm *sm;
  char err[256];
  int rc = lr_sm_new(&o, &sm, err, sizeof err);
  if (rc != 0) fail_msg("lr_sm_new: %s", err);
  return sm;
}

/* Encodes the Lua expression `expr` with lr_encode. */
static void encode(const char *expr, struct lr_buf *out) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  char chunk[256];
  snprintf(chunk, sizeof chunk, "return %s", expr);
  assert_int_equal(luaL_dostring(L, chunk), 0);
  char err[128];
  assert_int_equal(lr_encode(L, -1, out, err, sizeof err), 0);
  lua_close(L);
}

static void entry(struct raft_entry *e, struct lr_buf *b, raft_index index, uint64_t req,
                  const char *client, uint64_t seq, const char *expr) {
  struct lr_buf cmd;
  lr_buf_init(&cmd);
  encode(expr, &cmd);
  struct lr_env env = {.origin = 1,
                       .req = req,
                       .time_ms = 1000 + index,
                       .client = client,
                       .client_len = client ? strlen(client) : 0,
                       .seq = seq,
                       .cmd = cmd.data,
                       .cmd_len = cmd.len};
  b->len = 0;
  assert_int_equal(lr_env_encode(&env, b), 0);
  lr_buf_free(&cmd);
  *e = (struct raft_entry){.term = 1,
                           .index = index,
                           .type = RAFT_ENTRY_NORMAL,
                           .len = (uint32_t)b->len,
                           .data = (uint8_t *)b->data};
}

/* decodes res into a Lua string via tostring, for comparisons */
static void result_text(const struct lr_sm_result *res, char *out, size_t n) {
  lua_State *L = luaL_newstate();
  char err[128];
  if (lr_decode(L, res->data, res->len, err, sizeof err) != 0) {
    snprintf(out, n, "<undecodable>");
  } else {
    snprintf(out, n, "%s", luaL_tolstring(L, -1, NULL));
  }
  lua_close(L);
}

static void test_envelope_round_trip_and_strictness(void **state) {
  struct lr_buf b;
  lr_buf_init(&b);
  struct lr_env e = {.origin = 7,
                     .req = 9,
                     .time_ms = 123,
                     .client = "c",
                     .client_len = 1,
                     .seq = 4,
                     .cmd = "xyz",
                     .cmd_len = 3};
  assert_int_equal(lr_env_encode(&e, &b), 0);
  struct lr_env d;
  assert_int_equal(lr_env_decode(b.data, b.len, &d), 0);
  assert_int_equal(d.origin, 7);
  assert_int_equal(d.req, 9);
  assert_int_equal(d.time_ms, 123);
  assert_int_equal(d.seq, 4);
  assert_memory_equal(d.client, "c", 1);
  assert_memory_equal(d.cmd, "xyz", 3);
  /* every truncation and one trailing byte are refused */
  for (size_t n = 0; n < b.len; n++)
    assert_int_equal(lr_env_decode(b.data, n, &d), -1);
  lr_buf_append(&b, "!", 1);
  assert_int_equal(lr_env_decode(b.data, b.len, &d), -1);
  b.len--;
  b.data[0] = 2; /* unknown version */
  assert_int_equal(lr_env_decode(b.data, b.len, &d), -1);
  b.data[0] = 1;
  b.data[1] = 3; /* unknown flag */
  assert_int_equal(lr_env_decode(b.data, b.len, &d), -1);
  lr_buf_free(&b);
}

static void test_apply_passes_meta_and_returns_result(void **state) {
  struct lr_sm *sm = new_sm(0);
  struct lr_buf b;
  lr_buf_init(&b);
  struct raft_entry e;
  struct lr_sm_result res;
  char text[128];
  entry(&e, &b, 1, 1, NULL, 0, "'time?'");
  assert_int_equal(lr_sm_apply(sm, &e, &res), 0);
  assert_int_equal(res.status, LR_SM_OK);
  assert_int_equal(res.env.req, 1);
  result_text(&res, text, sizeof text);
  assert_string_equal(text, "1001"); /* meta.time from the envelope */
  struct raft_entry noop = {.term = 1, .index = 2, .type = RAFT_ENTRY_NOOP};
  assert_int_equal(lr_sm_apply(sm, &noop, &res), 0);
  assert_int_equal(res.status, LR_SM_NONE);
  assert_int_equal(lr_sm_applied_index(sm), 2);
  lr_buf_free(&b);
  lr_sm_free(sm);
}

static void test_apply_error_is_deterministic_result(void **state) {
  struct lr_sm *sm = new_sm(0);
  struct lr_buf b;
  lr_buf_init(&b);
  struct raft_entry e;
  struct lr_sm_result res;
  entry(&e, &b, 1, 1, NULL, 0, "'boom'");
  assert_int_equal(lr_sm_apply(sm, &e, &res), 0);
  assert_int_equal(res.status, LR_SM_APPLY_ERROR);
  char msg[256];
  snprintf(msg, sizeof msg, "%.*s", (int)res.len, res.data);
  assert_non_null(strstr(msg, ":4: boom at 1"));
  assert_null(strstr(msg, "traceback"));
  /* a result that cannot be encoded is an apply error too */
  entry(&e, &b, 2, 2, NULL, 0, "'fn'");
  assert_int_equal(lr_sm_apply(sm, &e, &res), 0);
  assert_int_equal(res.status, LR_SM_APPLY_ERROR);
  /* a malformed envelope is a bad request, and the index still advances */
  struct raft_entry bad = {
      .term = 1, .index = 3, .type = RAFT_ENTRY_NORMAL, .len = 2, .data = (uint8_t *)"xx"};
  assert_int_equal(lr_sm_apply(sm, &bad, &res), 0);
  assert_int_equal(res.status, LR_SM_BAD_REQUEST);
  assert_int_equal(lr_sm_applied_index(sm), 3);
  lr_buf_free(&b);
  lr_sm_free(sm);
}

static void test_sessions_answer_retries_without_applying(void **state) {
  struct lr_sm *sm = new_sm(2);
  struct lr_buf b;
  lr_buf_init(&b);
  struct raft_entry e;
  struct lr_sm_result res;
  char text[64];
  entry(&e, &b, 1, 1, "a", 1, "{k = 'x', v = 1}");
  lr_sm_apply(sm, &e, &res);
  entry(&e, &b, 2, 2, "a", 1, "{k = 'x', v = 2}"); /* retry: not applied */
  lr_sm_apply(sm, &e, &res);
  assert_true(res.duplicate);
  result_text(&res, text, sizeof text);
  assert_string_equal(text, "1");
  entry(&e, &b, 3, 3, "a", 2, "{k = 'x', v = 3}");
  lr_sm_apply(sm, &e, &res);
  entry(&e, &b, 4, 4, "a", 1, "{k = 'x', v = 4}"); /* older: stale */
  lr_sm_apply(sm, &e, &res);
  assert_int_equal(res.status, LR_SM_BAD_REQUEST);
  struct lr_buf q;
  lr_buf_init(&q);
  encode("'x'", &q);
  lr_sm_query(sm, q.data, q.len, &res);
  result_text(&res, text, sizeof text);
  assert_string_equal(text, "3");
  /* bounded: the least recently used session expires */
  entry(&e, &b, 5, 5, "b", 1, "{k = 'y', v = 1}");
  lr_sm_apply(sm, &e, &res);
  entry(&e, &b, 6, 6, "c", 1, "{k = 'y', v = 2}");
  lr_sm_apply(sm, &e, &res);
  assert_int_equal(lr_sm_session_count(sm), 2);
  entry(&e, &b, 7, 7, "a", 2, "{k = 'x', v = 9}"); /* "a" expired: applied again */
  lr_sm_apply(sm, &e, &res);
  assert_false(res.duplicate);
  lr_buf_free(&q);
  lr_buf_free(&b);
  lr_sm_free(sm);
}

static void test_duplicated_forwarded_entry_is_skipped(void **state) {
  struct lr_sm *sm = new_sm(0);
  struct lr_buf b;
  lr_buf_init(&b);
  struct raft_entry e;
  struct lr_sm_result res;
  entry(&e, &b, 1, 10, NULL, 0, "{k = 'n', v = 1}");
  lr_sm_apply(sm, &e, &res);
  assert_int_equal(res.status, LR_SM_OK);
  entry(&e, &b, 2, 10, NULL, 0, "{k = 'n', v = 1}");
  lr_sm_apply(sm, &e, &res);
  assert_int_equal(res.status, LR_SM_SKIPPED);
  entry(&e, &b, 3, 12, NULL, 0, "{k = 'n', v = 2}");
  lr_sm_apply(sm, &e, &res);
  assert_int_equal(res.status, LR_SM_OK);
  entry(&e, &b, 4, 11, NULL, 0, "{k = 'n', v = 3}"); /* reordered, in the window */
  lr_sm_apply(sm, &e, &res);
  assert_int_equal(res.status, LR_SM_OK);
  lr_buf_free(&b);
  lr_sm_free(sm);
}

static void test_snapshot_round_trip_replaces_state(void **state) {
  struct lr_sm *a = new_sm(0), *c = new_sm(0);
  struct lr_buf b, snap, q;
  lr_buf_init(&b);
  lr_buf_init(&snap);
  lr_buf_init(&q);
  struct raft_entry e;
  struct lr_sm_result res;
  char err[256], text[64];
  entry(&e, &b, 1, 1, "s", 1, "{k = 'x', v = 'one'}");
  lr_sm_apply(a, &e, &res);
  entry(&e, &b, 1, 1, NULL, 0, "{k = 'other', v = 'gone'}");
  lr_sm_apply(c, &e, &res);
  assert_int_equal(lr_sm_snapshot(a, &snap, err, sizeof err), 0);
  assert_int_equal(lr_sm_restore(c, snap.data, snap.len, err, sizeof err), 0);
  assert_int_equal(lr_sm_applied_index(c), 1);
  assert_int_equal(lr_sm_session_count(c), 1);
  encode("'other'", &q);
  lr_sm_query(c, q.data, q.len, &res);
  result_text(&res, text, sizeof text);
  assert_string_equal(text, "nil"); /* replaced, not merged */
  /* the session came along: a retry is answered from it */
  entry(&e, &b, 2, 2, "s", 1, "{k = 'x', v = 'two'}");
  lr_sm_apply(c, &e, &res);
  assert_true(res.duplicate);
  /* every truncation is refused and leaves the state alone */
  for (size_t n = 0; n < snap.len; n++)
    assert_int_equal(lr_sm_restore(c, snap.data, n, err, sizeof err), -1);
  assert_int_equal(lr_sm_applied_index(c), 2);
  lr_buf_free(&b);
  lr_buf_free(&snap);
  lr_buf_free(&q);
  lr_sm_free(a);
  lr_sm_free(c);
}

/* A blob with two windows for one origin (the second would shadow the
 * first) or a window that no request made (last 0) is refused, and the
 * runner keeps its state; apply never builds either (fuzz_snapshot). */
static void test_snapshot_with_inconsistent_origins_is_refused(void **state) {
  struct lr_sm *a = new_sm(0), *c = new_sm(0);
  struct lr_buf b, snap, bad;
  lr_buf_init(&b);
  lr_buf_init(&snap);
  lr_buf_init(&bad);
  struct raft_entry e;
  struct lr_sm_result res;
  char err[256];
  entry(&e, &b, 1, 7, NULL, 0, "{k = 'x', v = 'one'}"); /* origin 1, req 7 */
  lr_sm_apply(a, &e, &res);
  assert_int_equal(lr_sm_snapshot(a, &snap, err, sizeof err), 0);
  assert_int_equal(lr_sm_restore(c, snap.data, snap.len, err, sizeof err), 0);
  /* header 25 bytes, 0 sessions, then u32 n_origins and one 24-byte window */
  const size_t at = 25 + 4;
  assert_int_equal((unsigned char)snap.data[25], 1);
  lr_buf_append(&bad, snap.data, at + 24);
  lr_buf_append(&bad, snap.data + at, 24); /* the same origin again */
  lr_buf_append(&bad, snap.data + at + 24, snap.len - at - 24);
  bad.data[25] = 2;
  assert_int_equal(lr_sm_restore(c, bad.data, bad.len, err, sizeof err), -1);
  assert_string_equal(err, "restore: malformed snapshot");
  bad.data[at + 24] ^= 1; /* two different origins: fine */
  assert_int_equal(lr_sm_restore(c, bad.data, bad.len, err, sizeof err), 0);
  memset(snap.data + at + 8, 0, 8); /* last = 0 */
  assert_int_equal(lr_sm_restore(c, snap.data, snap.len, err, sizeof err), -1);
  assert_string_equal(err, "restore: malformed snapshot");
  assert_int_equal(lr_sm_applied_index(c), 1);
  lr_buf_free(&b);
  lr_buf_free(&snap);
  lr_buf_free(&bad);
  lr_sm_free(a);
  lr_sm_free(c);
}

/* max_result_bytes: a result over it is dropped, the entry still applies,
 * the session keeps the verdict and a snapshot carrying it restores. */
static void test_result_over_the_bound_is_dropped_but_applied(void **state) {
  struct lr_sm_options o = {.id = 1, .path = path, .max_result_bytes = 64};
  struct lr_sm *sm, *c = new_sm(0);
  char err[256], text[64];
  assert_int_equal(lr_sm_new(&o, &sm, err, sizeof err), 0);
  struct lr_buf b, snap, q;
  lr_buf_init(&b);
  lr_buf_init(&snap);
  lr_buf_init(&q);
  struct raft_entry e;
  struct lr_sm_result res;
  entry(&e, &b, 1, 1, "big", 1, "{k = 'x', v = string.rep('y', 65)}");
  lr_sm_apply(sm, &e, &res);
  assert_int_equal(res.status, LR_SM_TOO_LARGE);
  assert_string_equal(lr_sm_code(res.status), "too_large");
  char msg[256];
  snprintf(msg, sizeof msg, "%.*s", (int)res.len, res.data);
  assert_non_null(strstr(msg, "over max_result_bytes (64)"));
  assert_int_equal(lr_sm_applied_index(sm), 1);
  encode("'x'", &q);
  lr_sm_query(sm, q.data, q.len, &res); /* the query's result is over it too */
  assert_int_equal(res.status, LR_SM_TOO_LARGE);
  entry(&e, &b, 2, 2, NULL, 0, "{k = 'x', v = string.rep('y', 10)}");
  lr_sm_apply(sm, &e, &res);
  assert_int_equal(res.status, LR_SM_OK);                  /* under it: delivered */
  entry(&e, &b, 3, 3, "big", 1, "{k = 'x', v = 'retry'}"); /* retry: the same verdict */
  lr_sm_apply(sm, &e, &res);
  assert_true(res.duplicate);
  assert_int_equal(res.status, LR_SM_TOO_LARGE);
  assert_int_equal(lr_sm_snapshot(sm, &snap, err, sizeof err), 0);
  assert_int_equal(lr_sm_restore(c, snap.data, snap.len, err, sizeof err), 0);
  entry(&e, &b, 4, 4, "big", 1, "{k = 'x', v = 'again'}");
  lr_sm_apply(c, &e, &res);
  assert_true(res.duplicate);
  assert_int_equal(res.status, LR_SM_TOO_LARGE);
  lr_sm_query(c, q.data, q.len, &res);
  result_text(&res, text, sizeof text);
  assert_string_equal(text, "yyyyyyyyyy");
  lr_buf_free(&b);
  lr_buf_free(&snap);
  lr_buf_free(&q);
  lr_sm_free(sm);
  lr_sm_free(c);
}

static void test_script_without_apply_is_refused(void **state) {
  const char *bad = "return { nope = true }";
  char p[256];
  assert_int_equal(tmp_file_write(".lua", bad, p, sizeof p), 0);
  struct lr_sm_options o = {.id = 1, .path = p};
  struct lr_sm *sm;
  char err[256];
  assert_int_equal(lr_sm_new(&o, &sm, err, sizeof err), -1);
  assert_non_null(strstr(err, "must return a table with an apply function"));
  remove(p);
}

/* In-state mode (sm.h): the caller's own table runs in the caller's state,
 * under the budget, and the runner never touches that state after free. */
static void test_in_state_mode_runs_the_callers_table(void **state) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  assert_int_equal(luaL_dostring(L, "seen = {}\n"
                                    "return { apply = function(cmd, meta)\n"
                                    "  if cmd == 'spin' then while true do end end\n"
                                    "  seen[#seen + 1] = cmd return #seen end,\n"
                                    "  query = function(q) return seen[q] end }"),
                   0);
  lua_State *T = lua_newthread(L);
  lua_insert(L, -2);
  lua_xmove(L, T, 1); /* T holds the table; L the thread */
  struct lr_sm_options o = {.id = 1, .thread = T, .apply_budget = 100000};
  struct lr_sm *sm;
  char err[256], text[64];
  assert_int_equal(lr_sm_new(&o, &sm, err, sizeof err), 0);
  struct lr_buf b, q;
  lr_buf_init(&b);
  lr_buf_init(&q);
  struct raft_entry e;
  struct lr_sm_result res;
  entry(&e, &b, 1, 1, NULL, 0, "'a'");
  assert_int_equal(lr_sm_apply(sm, &e, &res), 0);
  assert_int_equal(res.status, LR_SM_OK);
  result_text(&res, text, sizeof text);
  assert_string_equal(text, "1");
  lua_getglobal(L, "seen"); /* the caller's own global changed */
  lua_rawgeti(L, -1, 1);
  assert_string_equal(lua_tostring(L, -1), "a");
  lua_pop(L, 2);
  entry(&e, &b, 2, 2, NULL, 0, "'spin'");
  assert_int_equal(lr_sm_apply(sm, &e, &res), 0);
  assert_int_equal(res.status, LR_SM_APPLY_ERROR);
  snprintf(text, sizeof text, "%.*s", (int)res.len, res.data);
  assert_non_null(strstr(text, "instruction budget exceeded"));
  assert_null(lua_gethook(T)); /* the hook came off */
  assert_null(lua_gethook(L));
  assert_false(lr_sm_in_call(L));
  encode("1", &q);
  assert_int_equal(lr_sm_query(sm, q.data, q.len, &res), 0);
  result_text(&res, text, sizeof text);
  assert_string_equal(text, "a");
  struct lr_sm_status st;
  lr_sm_status(sm, &st);
  assert_int_equal(st.guards, 0);
  assert_int_equal(st.memory_max, 0);
  assert_int_equal(st.budget_exceeded, 1);
  lua_close(L); /* the caller's state goes first: free must not touch it */
  lr_sm_free(sm);
  lr_buf_free(&b);
  lr_buf_free(&q);
}

static void test_in_state_table_without_apply_is_refused(void **state) {
  lua_State *L = luaL_newstate();
  lua_State *T = lua_newthread(L);
  lua_newtable(T);
  struct lr_sm_options o = {.id = 1, .thread = T};
  struct lr_sm *sm;
  char err[256];
  assert_int_equal(lr_sm_new(&o, &sm, err, sizeof err), -1);
  assert_non_null(strstr(err, "state_machine table must have an apply function"));
  lua_close(L);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_envelope_round_trip_and_strictness),
      cmocka_unit_test(test_apply_passes_meta_and_returns_result),
      cmocka_unit_test(test_apply_error_is_deterministic_result),
      cmocka_unit_test(test_sessions_answer_retries_without_applying),
      cmocka_unit_test(test_duplicated_forwarded_entry_is_skipped),
      cmocka_unit_test(test_snapshot_round_trip_replaces_state),
      cmocka_unit_test(test_snapshot_with_inconsistent_origins_is_refused),
      cmocka_unit_test(test_result_over_the_bound_is_dropped_but_applied),
      cmocka_unit_test(test_script_without_apply_is_refused),
      cmocka_unit_test(test_in_state_mode_runs_the_callers_table),
      cmocka_unit_test(test_in_state_table_without_apply_is_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
