/* libFuzzer target for the state machine runner's snapshot format
 * (src/sm/sm_snapshot.c): each input is handed to lr_sm_restore() as the
 * blob of a snapshot installed from the leader (InstallSnapshot, once
 * durable) or read back from raft.db at boot (src/drive/apply.c,
 * lr__drive_restore). The runner holds a real state (sessions, origin
 * windows, script data) made by applying entries; for every input:
 *   - a refusal says why, leaves that state exactly as it was (its snapshot
 *     is byte for byte the one before) and does not halt the runner;
 *   - an accepted blob holds only what a runner can hold (no duplicate
 *     clients or origins, at most max_sessions sessions, seq > 0, every
 *     origin window has a request), and the runner's snapshot of it is the
 *     input itself (the format is canonical: nothing is dropped or
 *     reinterpreted on the way in); the runner then applies the next entry
 *     (a retry of a session and a forwarded duplicate), and its snapshot
 *     after that restores again (what it writes, it reads back);
 *   - nothing crashes or leaks (ASan, UBSan, LeakSanitizer).
 * Both modes of the runner get every input: a script (restore builds a
 * fresh Lua state aside) and the in-state mode (restore(data) on the
 * caller's own table; one that raises halts that runner, by design, and it
 * is made again).
 * Seeds: fuzz/corpus/snapshot/ (made by fuzz/make_corpus_snapshot.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "sm/sm_int.h"

/* The script (also the in-state table): its state is one string, so restore(data) followed by
 * snapshot() gives data back unchanged; a state starting with "!" makes
 * restore raise (a script that refuses what it was given). */
static const char SCRIPT[] =
    "local state = ''\n"
    "return {\n"
    "  apply = function(cmd) state = state .. tostring(cmd); return #state end,\n"
    "  query = function() return state end,\n"
    "  snapshot = function() return state end,\n"
    "  restore = function(d)\n"
    "    if d:byte(1) == 33 then error('restore refused this state') end\n"
    "    state = d\n"
    "  end,\n"
    "}\n";

#define MAX_SESSIONS 8

/* One runner under test, and the state every input is restored over. */
struct runner {
  struct lr_sm *sm;
  lua_State *caller; /* in-state mode: the caller's state (holds the table) */
  struct lr_buf base;
  raft_index base_index;
};

static struct runner script_runner, table_runner;
static struct lr_buf chunk, snap, ebuf;

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud) {
  (void)L;
  return lr_buf_append(ud, p, n);
}

static void quiet(void *ud, int level, const char *msg) {
  (void)ud;
  (void)level;
  (void)msg;
}

/* One NORMAL entry at index carrying the command string cmd. */
static void entry(struct raft_entry *e, raft_index index, uint64_t origin, uint64_t req,
                  const char *client, size_t client_len, uint64_t seq, const char *cmd) {
  lua_State *L = luaL_newstate();
  lua_pushstring(L, cmd);
  struct lr_buf c;
  lr_buf_init(&c);
  char err[128];
  if (lr_encode(L, -1, &c, err, sizeof err) != 0) abort();
  lua_close(L);
  struct lr_env env = {.origin = origin,
                       .req = req,
                       .time_ms = 1000,
                       .client = client,
                       .client_len = client_len,
                       .seq = seq,
                       .cmd = c.data,
                       .cmd_len = c.len};
  ebuf.len = 0;
  if (lr_env_encode(&env, &ebuf) != 0) abort();
  lr_buf_free(&c);
  *e = (struct raft_entry){.term = 1,
                           .index = index,
                           .type = RAFT_ENTRY_NORMAL,
                           .len = (uint32_t)ebuf.len,
                           .data = (uint8_t *)ebuf.data};
}

static void apply(struct lr_sm *sm, raft_index index, uint64_t origin, uint64_t req,
                  const char *client, size_t client_len, uint64_t seq, const char *cmd) {
  struct raft_entry e;
  struct lr_sm_result res;
  entry(&e, index, origin, req, client, client_len, seq, cmd);
  if (lr_sm_apply(sm, &e, &res) != 0 || lr_sm_halted(sm)) abort();
}

static void take(struct lr_sm *sm, struct lr_buf *out) {
  char err[256];
  out->len = 0;
  if (lr_sm_snapshot(sm, out, err, sizeof err) != 0) {
    fprintf(stderr, "snapshot: %s\n", err);
    abort();
  }
}

/* Makes the runner (in_state: on a fresh caller state) and its base state:
 * two sessions, two origins. */
static void make(struct runner *r, bool in_state) {
  struct lr_sm_options o = {
      .id = 1, .max_sessions = MAX_SESSIONS, .digest_entries = LR_SM_DIGEST_OFF, .log = quiet};
  if (in_state) {
    r->caller = luaL_newstate();
    luaL_openlibs(r->caller);
    if (luaL_dostring(r->caller, SCRIPT) != LUA_OK) abort();
    lua_State *T = lua_newthread(r->caller);
    lua_insert(r->caller, -2);
    lua_xmove(r->caller, T, 1); /* T holds the table; the caller the thread */
    o.thread = T;
  } else {
    o.chunk = chunk.data;
    o.chunk_len = chunk.len;
  }
  char err[256];
  if (lr_sm_new(&o, &r->sm, err, sizeof err) != 0) {
    fprintf(stderr, "lr_sm_new: %s\n", err);
    abort();
  }
  apply(r->sm, 1, 1, 1, "alice", 5, 1, "a");
  apply(r->sm, 2, 2, 1, "bob", 3, 1, "b");
  apply(r->sm, 3, 1, 3, "alice", 5, 2, "c");
  apply(r->sm, 4, 2, 2, NULL, 0, 0, "d");
  lr_buf_init(&r->base);
  take(r->sm, &r->base);
  r->base_index = lr_sm_applied_index(r->sm);
}

static void unmake(struct runner *r) {
  lr_sm_free(r->sm);
  if (r->caller) lua_close(r->caller);
  lr_buf_free(&r->base);
  memset(r, 0, sizeof *r);
}

static void setup(void) {
  lr_buf_init(&chunk);
  lr_buf_init(&snap);
  lr_buf_init(&ebuf);
  lua_State *L = luaL_newstate();
  if (luaL_loadstring(L, SCRIPT) != LUA_OK || lua_dump(L, dump_writer, &chunk, 1) != 0) abort();
  lua_close(L);
  make(&script_runner, false);
  make(&table_runner, true);
}

/* What an accepted blob may hold: what lr_sm_apply could have built. */
static void check_invariants(const struct lr_sm *sm) {
  const struct lr__sm_sessions *t = &sm->sessions;
  if (t->count > t->max) abort();
  uint32_t n = 0;
  for (const struct lr__sm_session *s = t->oldest; s != NULL; s = s->next, n++) {
    if (s->seq == 0 || s->client_len > LR_ENV_CLIENT_MAX) abort();
    for (const struct lr__sm_session *o = t->oldest; o != s; o = o->next)
      if (o->client_len == s->client_len && memcmp(o->client, s->client, s->client_len) == 0)
        abort();
  }
  if (n != t->count) abort();
  for (uint32_t i = 0; i < sm->n_origins; i++) {
    if (sm->origins[i].last == 0) abort();
    for (uint32_t j = 0; j < i; j++)
      if (sm->origins[j].origin == sm->origins[i].origin) abort();
  }
}

static void restore_or_die(struct lr_sm *sm, const struct lr_buf *b) {
  char err[256];
  if (lr_sm_restore(sm, b->data, b->len, err, sizeof err) != 0) {
    fprintf(stderr, "a snapshot the runner wrote does not restore: %s\n", err);
    abort();
  }
}

static void one(struct runner *r, const uint8_t *data, size_t size) {
  struct lr_sm *sm = r->sm;
  char err[256] = "";
  if (lr_sm_restore(sm, data, size, err, sizeof err) != 0) {
    if (err[0] == 0) abort();
    if (lr_sm_halted(sm)) {
      /* only the in-state mode halts, and only when restore() raised */
      if (r->caller == NULL || strstr(err, "restore refused this state") == NULL) {
        fprintf(stderr, "halted by a refused snapshot: %s\n", err);
        abort();
      }
      unmake(r);
      make(r, true);
      return;
    }
    if (lr_sm_applied_index(sm) != r->base_index) abort();
    take(sm, &snap);
    if (snap.len != r->base.len || memcmp(snap.data, r->base.data, r->base.len) != 0) {
      fprintf(stderr, "a refused snapshot changed the state\n");
      abort();
    }
    return;
  }
  check_invariants(sm);
  take(sm, &snap);
  if (snap.len != size || memcmp(snap.data, data, size) != 0) {
    fprintf(stderr, "restore then snapshot changed the bytes (%zu in, %zu out)\n", size, snap.len);
    abort();
  }
  raft_index index = lr_sm_applied_index(sm);
  if (index < UINT64_MAX - 2) {
    /* the restored sessions and windows at work: a retry, a duplicate, new */
    const struct lr__sm_session *s = sm->sessions.oldest;
    uint64_t origin = sm->n_origins ? sm->origins[0].origin : 9;
    uint64_t req = sm->n_origins ? sm->origins[0].last : 1;
    apply(sm, index + 1, origin, req, s ? s->client : NULL, s ? s->client_len : 0, s ? s->seq : 0,
          "x");
    apply(sm, index + 2, 9, 1, "carol", 5, 1, "y");
    check_invariants(sm);
    take(sm, &snap);
    restore_or_die(sm, &snap);
  }
  restore_or_die(sm, &r->base); /* back to the base state for the next input */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (chunk.data == NULL) setup();
  one(&script_runner, data, size);
  one(&table_runner, data, size);
  return 0;
}
