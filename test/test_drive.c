/* The driver (src/drive) stepped by hand through a fake io: group commit
 * (updates taken while a write is in flight join the one queued batch), a
 * snapshot acknowledged to the core only once its batch is durable, and the
 * driver's own rules, which abort in release builds too when broken. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "drive/drive.h"
#include "sm/sm.h"

/* The world of one node: a disk whose write completes when the test says. */
struct world {
  uint64_t now;
  struct lr_store_batch *writing;
  int writes, sends, done, done_err;
  uint64_t last_req;
  uint64_t snapshot_entries; /* automatic snapshots (0: none) */
  bool async_snapshots;      /* io.snapshot starts them; the test makes them */
  int snapshots_started;
  raft_index snapshot_at; /* the applied index when the last one started */
};

static uint64_t w_now(void *data) {
  return ((struct world *)data)->now;
}
static int w_write(void *data, struct lr_store_batch *b) {
  struct world *w = data;
  assert_null(w->writing); /* one write in flight */
  w->writing = b;
  w->writes++;
  return 0;
}
static void w_send(void *data, const struct raft_message *m) {
  ((struct world *)data)->sends++;
}
static void w_event(void *data, const struct lr_event *ev) {
  struct world *w = data;
  if (ev->type != LR_EV_DONE) return;
  w->done++;
  if (ev->code) w->done_err++;
  w->last_req = ev->req;
}

/* The real node's io.snapshot forks; this one only notes the start. */
static int w_snapshot(void *data, struct lr_sm *sm, struct lr_buf *out, char *err, size_t errlen) {
  struct world *w = data;
  w->snapshots_started++;
  w->snapshot_at = lr_sm_applied_index(sm);
  return 1;
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  return lr_buf_append(ud, p, sz) == 0 ? 0 : 1;
}

/* A one-node cluster, bootstrapped, its driver on the fake world. */
static struct lr_drive *new_drive(struct world *w, struct lr_buf *chunk) {
  lua_State *L = luaL_newstate();
  assert_int_equal(luaL_loadstring(L, "local n = 0\n"
                                      "return { apply = function() n = n + 1 return n end,\n"
                                      "  snapshot = function() return tostring(n) end,\n"
                                      "  restore = function(d) n = tonumber(d) end }\n"),
                   0);
  lr_buf_init(chunk);
  assert_int_equal(lua_dump(L, dump_writer, chunk, 0), 0);
  lua_close(L);
  char err[256];
  struct lr_sm_options so = {
      .id = 1, .chunk = chunk->data, .chunk_len = chunk->len, .chunkname = "=sm"};
  struct lr_sm *sm;
  assert_int_equal(lr_sm_new(&so, &sm, err, sizeof err), 0);
  struct raft_member me = {1, RAFT_VOTER, ""};
  struct raft_config c = {&me, 1};
  struct raft_entry e;
  assert_int_equal(raft_bootstrap_entry(&c, &e), 0);
  struct raft_boot boot = {.entries = &e, .n_entries = 1};
  struct raft_options ro = {.id = 1, .election_ms = 100, .heartbeat_ms = 10, .seed = 7};
  assert_int_equal(raft_options_check(&ro, err, sizeof err), 0);
  struct raft *r;
  assert_int_equal(raft_new(&ro, &boot, 0, &r), 0);
  raft_entry_free_data(&e);
  struct lr_drive_options o = {.id = 1,
                               .raft = r,
                               .sm = sm,
                               .config = &c,
                               .durable_last = 1,
                               .snapshot_entries = w->snapshot_entries,
                               .io = {.data = w,
                                      .snapshot = w->async_snapshots ? w_snapshot : NULL,
                                      .now = w_now,
                                      .wall = w_now,
                                      .write = w_write,
                                      .send = w_send,
                                      .event = w_event}};
  struct lr_drive *d;
  assert_int_equal(lr_drive_new(&o, &d, err, sizeof err), 0);
  return d;
}

/* The write in flight becomes durable (the thread pool's after-callback). */
static void complete(struct world *w, struct lr_drive *d) {
  assert_non_null(w->writing);
  w->writing = NULL;
  lr_drive_written(d, 0, 3.0);
}

static void settle(struct world *w, struct lr_drive *d) {
  for (int i = 0; i < 100 && w->writing; i++)
    complete(w, d);
  assert_null(w->writing);
}

static struct lr_drive *leader(struct world *w, struct lr_buf *chunk) {
  struct lr_drive *d = new_drive(w, chunk);
  for (int i = 0; i < 100 && lr_drive_role(d) != RAFT_LEADER; i++) {
    w->now = lr_drive_deadline(d);
    lr_drive_tick(d);
    settle(w, d);
  }
  assert_int_equal(lr_drive_role(d), RAFT_LEADER);
  return d;
}

/* A command as the binding makes it: lr_encode bytes. */
static void propose(struct lr_drive *d, uint64_t req) {
  lua_State *L = luaL_newstate();
  struct lr_buf cmd;
  char err[128];
  lr_buf_init(&cmd);
  lua_pushliteral(L, "x");
  assert_int_equal(lr_encode(L, -1, &cmd, err, sizeof err), 0);
  lua_close(L);
  assert_int_equal(lr_drive_propose(d, req, cmd.data, cmd.len, NULL, 0, 0, LR_WAIT_APPLY), 0);
  lr_buf_free(&cmd);
  lr_drive_run(d);
}

static void test_group_commit(void **state) {
  struct world w = {0};
  struct lr_buf chunk;
  struct lr_drive *d = leader(&w, &chunk);
  struct lr_drive_metrics m0, m;
  lr_drive_metrics(d, &m0);
  propose(d, 1); /* its write starts at once */
  assert_non_null(w.writing);
  int writes = w.writes;
  propose(d, 2); /* taken while the first write is in flight: one queued batch */
  propose(d, 3);
  propose(d, 4);
  assert_int_equal(w.writes, writes); /* nothing else started */
  lr_drive_metrics(d, &m);
  assert_int_equal(m.batches_merged - m0.batches_merged, 2);
  complete(&w, d); /* entry 1 durable: applied; the batch of 2..4 starts */
  assert_int_equal(w.done, 1);
  assert_int_equal(w.writes, writes + 1);
  complete(&w, d);
  assert_int_equal(w.done, 4);
  assert_int_equal(w.done_err, 0);
  assert_int_equal(w.last_req, 4);
  lr_drive_metrics(d, &m);
  assert_int_equal(m.fsyncs - m0.fsyncs, 2);
  assert_int_equal(m.entries_persisted - m0.entries_persisted, 4);
  assert_int_equal(m.applied_entries - m0.applied_entries, 4);
  assert_int_equal(m.fsync_buckets[2] - m0.fsync_buckets[2], 2); /* 3 ms: the <= 5 ms bucket */
  lr_drive_free(d);
  lr_buf_free(&chunk);
}

static void test_snapshot_acked_once_durable(void **state) {
  struct world w = {0};
  struct lr_buf chunk;
  struct lr_drive *d = leader(&w, &chunk);
  propose(d, 1);
  settle(&w, d);
  struct raft_status st;
  raft_status(lr_drive_raft(d), &st);
  raft_index applied = lr_sm_applied_index(lr_drive_sm(d));
  assert_true(applied >= 2);
  char err[256];
  assert_int_equal(lr_drive_snapshot(d, err, sizeof err), 0);
  assert_non_null(w.writing); /* the snapshot's own batch */
  raft_status(lr_drive_raft(d), &st);
  assert_int_equal(st.snapshot_index, 0); /* the core has not heard of it */
  assert_int_equal(lr_drive_snapshot_index(d), 0);
  assert_int_equal(lr_drive_snapshot(d, err, sizeof err), -1);
  assert_non_null(strstr(err, "already being written"));
  complete(&w, d);
  raft_status(lr_drive_raft(d), &st);
  assert_int_equal(st.snapshot_index, applied);
  assert_int_equal(lr_drive_snapshot_index(d), applied);
  struct lr_drive_metrics m;
  lr_drive_metrics(d, &m);
  assert_int_equal(m.snapshots_taken, 1);
  lr_drive_free(d);
  lr_buf_free(&chunk);
}

/* An automatic snapshot made elsewhere (io.snapshot returns 1: the real
 * node's forked child): proposals keep completing meanwhile, it covers the
 * index it started at, and the core hears of it once its batch is durable.
 * The stage histograms count what happened. */
static void test_snapshot_async(void **state) {
  struct world w = {.snapshot_entries = 4, .async_snapshots = true};
  struct lr_buf chunk;
  struct lr_drive *d = leader(&w, &chunk);
  for (uint64_t i = 1; i <= 3; i++) {
    propose(d, i);
    settle(&w, d);
  }
  assert_int_equal(w.snapshots_started, 1); /* due at applied index 4 */
  raft_index at = w.snapshot_at;
  assert_true(at >= 4);
  for (uint64_t i = 4; i <= 6; i++) { /* served while the snapshot is being made */
    propose(d, i);
    settle(&w, d);
  }
  assert_int_equal(w.done, 6);
  assert_int_equal(w.snapshots_started, 1); /* one at a time */
  char err[256];
  assert_int_equal(lr_drive_snapshot(d, err, sizeof err), -1);
  assert_non_null(strstr(err, "already being written"));
  assert_true(lr_sm_applied_index(lr_drive_sm(d)) > at);
  char *bytes = raft_malloc(1); /* the driver takes it */
  assert_non_null(bytes);
  bytes[0] = '4';
  lr_drive_snapshot_made(d, 0, bytes, 1, NULL);
  assert_non_null(w.writing); /* the snapshot's own batch */
  struct raft_status st;
  raft_status(lr_drive_raft(d), &st);
  assert_int_equal(st.snapshot_index, 0); /* not before it is durable */
  complete(&w, d);
  raft_status(lr_drive_raft(d), &st);
  assert_int_equal(st.snapshot_index, at);
  assert_int_equal(lr_drive_snapshot_index(d), at);
  struct lr_drive_metrics m;
  lr_drive_metrics(d, &m);
  assert_int_equal(m.snapshots_taken, 1);
  assert_int_equal(m.stages[LR_STAGE_SNAPSHOT].count, 1);
  assert_true(m.stages[LR_STAGE_LEADER_PERSIST].count >= 6);
  assert_true(m.stages[LR_STAGE_ACK_COMMIT].count >= 6);
  assert_true(m.stages[LR_STAGE_APPLY].count >= 6);
  assert_int_equal(m.stages[LR_STAGE_WRITE].count, m.fsyncs);
  assert_int_equal(m.stages[LR_STAGE_WRITE].buckets[6], m.fsyncs); /* 3 ms: the <= 5 ms bucket */
  assert_int_equal(m.stages[LR_STAGE_FOLLOWER_PERSIST].count, 0);
  lr_drive_free(d);
  lr_buf_free(&chunk);
}

/* A snapshot that failed elsewhere is logged and backed off: the next one
 * is tried once the back-off passed, not at the next entry; the node goes
 * on. */
static void test_snapshot_async_failed(void **state) {
  struct world w = {.snapshot_entries = 2, .async_snapshots = true};
  struct lr_buf chunk;
  struct lr_drive *d = leader(&w, &chunk);
  propose(d, 1);
  settle(&w, d);
  assert_int_equal(w.snapshots_started, 1);
  lr_drive_snapshot_made(d, -1, NULL, 0, "the child died");
  assert_null(w.writing);
  propose(d, 2);
  settle(&w, d);
  assert_int_equal(w.snapshots_started, 1); /* backing off */
  w.now += 1000;
  propose(d, 3);
  settle(&w, d);
  assert_int_equal(w.snapshots_started, 2); /* due again */
  struct lr_drive_metrics m;
  lr_drive_metrics(d, &m);
  assert_int_equal(m.snapshots_taken, 0);
  assert_int_equal(w.done, 3);
  lr_drive_free(d);
  lr_buf_free(&chunk);
}

/* A broken rule aborts, in every build: here an adapter that reports a
 * write completion the driver never started. */
static void test_rule_aborts(void **state) {
  struct world w = {0};
  struct lr_buf chunk;
  struct lr_drive *d = leader(&w, &chunk);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stderr);
    lr_drive_written(d, 0, 1.0);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
  lr_drive_free(d);
  lr_buf_free(&chunk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_group_commit),   cmocka_unit_test(test_snapshot_acked_once_durable),
      cmocka_unit_test(test_snapshot_async), cmocka_unit_test(test_snapshot_async_failed),
      cmocka_unit_test(test_rule_aborts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
