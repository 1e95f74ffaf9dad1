/* The snapshot format of the state machine runner: the user's snapshot()
 * bytes framed with the replicated runner state (client sessions and the
 * per-origin request windows), and restore, which builds a new Lua state
 * aside and swaps it in only once restore() succeeded (sm.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "sm/bytes.h"
#include "sm/sm_int.h"

static int append_session(struct lr_buf *b, const struct lr__sm_session *s) {
  char h[2 + 8 + 8 + 1 + 4];
  lr__put16(h, (uint16_t)s->client_len);
  if (lr_buf_append(b, h, 2) || lr_buf_append(b, s->client, s->client_len)) return -1;
  lr__put64(h, s->seq);
  lr__put64(h + 8, s->last_index);
  lr__put8(h + 16, (uint8_t)s->status);
  lr__put32(h + 17, (uint32_t)s->result_len);
  if (lr_buf_append(b, h, 21) || lr_buf_append(b, s->result, s->result_len)) return -1;
  return 0;
}

int lr_sm_snapshot(struct lr_sm *sm, struct lr_buf *out, char *err, size_t errlen) {
  lua_State *L = sm->L;
  size_t start = out->len;
  if (!sm->can_snapshot) {
    snprintf(err, errlen, "the state machine has no snapshot/restore functions");
    return -1;
  }
  if (sm->halted) {
    snprintf(err, errlen, "the state machine is halted: %s", sm->reason);
    return -1;
  }
  uint64_t hard = sm->mem->hard;
  lua_getfield(L, S_TABLE, "snapshot");
  struct lr__sm_ctx *c = &sm->ctx;
  c->seeded = false;
  c->seed1 = (lua_Integer)sm->applied;
  c->seed2 = -3;
  lr__sm_mark_enter(sm);
  int rc = lua_pcall(L, 0, 1, S_HANDLER);
  lr__sm_call_end(sm, L, sm->mem, hard, rc);
  if (sm->halted) {
    snprintf(err, errlen, "the state machine is halted: %s", sm->reason);
    lua_settop(L, S_TOP);
    return -1;
  }
  if (rc != LUA_OK) {
    snprintf(err, errlen, "snapshot: %s", lua_tostring(L, -1));
    lua_settop(L, S_TOP);
    return -1;
  }
  if (lua_type(L, -1) != LUA_TSTRING) {
    snprintf(err, errlen, "snapshot must return a string, got %s", luaL_typename(L, -1));
    lua_settop(L, S_TOP);
    return -1;
  }
  size_t n;
  const char *data = lua_tolstring(L, -1, &n);
  char h[4 + 1 + 8 + 8 + 4];
  memcpy(h, LR__SM_SNAP_MAGIC, 4);
  lr__put8(h + 4, LR__SM_SNAP_VERSION);
  lr__put64(h + 5, sm->applied);
  lr__put64(h + 13, sm->applied_term);
  lr__put32(h + 21, sm->sessions.count);
  if (lr_buf_append(out, h, sizeof h)) goto nomem;
  for (struct lr__sm_session *s = sm->sessions.oldest; s != NULL; s = s->next)
    if (append_session(out, s)) goto nomem;
  lr__put32(h, sm->n_origins);
  if (lr_buf_append(out, h, 4)) goto nomem;
  for (uint32_t i = 0; i < sm->n_origins; i++) {
    char o[24];
    lr__put64(o, sm->origins[i].origin);
    lr__put64(o + 8, sm->origins[i].last);
    lr__put64(o + 16, sm->origins[i].window);
    if (lr_buf_append(out, o, 24)) goto nomem;
  }
  lr__put32(h, (uint32_t)n);
  if (lr_buf_append(out, h, 4) || lr_buf_append(out, data, n)) goto nomem;
  lua_settop(L, S_TOP);
  return 0;
nomem: /* UNTESTED */
  out->len = start;
  lua_settop(L, S_TOP);
  snprintf(err, errlen, "snapshot: out of memory");
  return -1;
}

/* Parses the sessions of a blob into t. -1: malformed or no memory. */
static int read_sessions(struct lr__rd *r, uint32_t count, struct lr__sm_sessions *t) {
  for (uint32_t i = 0; i < count; i++) {
    size_t clen = (size_t)lr__getn(r, 2);
    const char *client = lr__get(r, clen);
    uint64_t seq = lr__getn(r, 8), last = lr__getn(r, 8);
    int status = (int)lr__getn(r, 1);
    size_t rlen = (size_t)lr__getn(r, 4);
    const char *res = lr__get(r, rlen);
    if (r->bad || client == NULL || res == NULL || clen > LR_ENV_CLIENT_MAX ||
        (status > LR_SM_BAD_REQUEST && status != LR_SM_TOO_LARGE) || seq == 0)
      return -1;
    if (lr__sm_sessions_get(t, client, clen) != NULL) return -1; /* duplicate */
    if (lr__sm_sessions_put(t, client, clen, seq, last, status, res, rlen)) return -1;
  }
  return 0;
}

/* In-state mode: restore(data) on the caller's table itself. There is no
 * fresh state to fall back to, so a restore that raises leaves the table in
 * an unknown state: the runner halts. */
static int restore_table(struct lr_sm *sm, raft_index index, const char *user, size_t ulen,
                         char *err, size_t errlen) {
  lua_State *L = sm->L;
  if (!sm->can_snapshot) {
    snprintf(err, errlen, "restore: the state machine has no snapshot/restore functions");
    return -1;
  }
  lua_getfield(L, S_TABLE, "restore");
  lua_pushlstring(L, user, ulen);
  sm->ctx.seeded = false;
  sm->ctx.seed1 = (lua_Integer)index;
  sm->ctx.seed2 = -4;
  lr__sm_mark_enter(sm);
  int rc = lua_pcall(L, 1, 0, S_HANDLER);
  lr__sm_call_end(sm, L, sm->mem, sm->mem->hard, rc);
  if (rc != LUA_OK && !sm->halted) {
    const char *msg = lua_tostring(L, -1);
    lr__sm_halt(sm, false,
                "restore(data) of the state machine table raised: %s; the table may hold "
                "part of the old state and part of the new one, so this node stops applying; fix "
                "restore (it must replace the whole state) and restart the node",
                msg ? msg : "(error object is not a string)");
  }
  lua_settop(L, S_TOP);
  if (sm->halted) {
    snprintf(err, errlen, "restore: %s", sm->reason);
    return -1;
  }
  return 0;
}

int lr_sm_restore(struct lr_sm *sm, const void *p, size_t n, char *err, size_t errlen) {
  struct lr__rd r;
  struct lr__sm_sessions t;
  lr__rd_init(&r, p, n);
  const char *magic = lr__get(&r, 4);
  if (magic == NULL || memcmp(magic, LR__SM_SNAP_MAGIC, 4) != 0 ||
      lr__getn(&r, 1) != LR__SM_SNAP_VERSION) {
    snprintf(err, errlen, "restore: not a luaraft snapshot (or an unknown version)");
    return -1;
  }
  if (sm->halted) {
    snprintf(err, errlen, "restore: the state machine is halted: %s", sm->reason);
    return -1;
  }
  raft_index index = lr__getn(&r, 8);
  raft_term term = lr__getn(&r, 8);
  uint32_t count = (uint32_t)lr__getn(&r, 4);
  if (r.bad || count > r.n / 23 || count > sm->sessions.max) {
    snprintf(err, errlen, "restore: malformed snapshot header");
    return -1;
  }
  lr__sm_sessions_init(&t, sm->sessions.max);
  struct lr__sm_origin *origins = NULL;
  if (read_sessions(&r, count, &t) != 0) goto malformed;
  uint32_t n_origins = (uint32_t)lr__getn(&r, 4);
  if (r.bad || n_origins > LR__SM_ORIGINS_MAX || n_origins > r.n / 24) goto malformed;
  origins = raft_malloc((n_origins ? n_origins : 1) * sizeof *origins);
  if (origins == NULL) goto malformed; /* UNTESTED */
  for (uint32_t i = 0; i < n_origins; i++) {
    origins[i].origin = lr__getn(&r, 8);
    origins[i].last = lr__getn(&r, 8);
    origins[i].window = lr__getn(&r, 8);
    /* Only what apply builds: one window per origin, each made by a request
     * (req 0 means none and is never recorded). A second window for the
     * same origin would silently shadow the first (origin_seen takes the
     * last match): refused like a duplicate session (fuzz_snapshot checks). */
    if (origins[i].last == 0) goto malformed;
    for (uint32_t j = 0; j < i; j++)
      if (origins[j].origin == origins[i].origin) goto malformed;
  }
  size_t ulen = (size_t)lr__getn(&r, 4);
  const char *user = lr__get(&r, ulen);
  if (r.bad || r.n != 0) goto malformed;

  if (sm->in_state) {
    if (restore_table(sm, index, user, ulen, err, errlen) != 0) goto fail;
    goto replace;
  }
  struct lr__sm_mem *mem = NULL;
  lua_State *L = lr__sm_new_state(sm, &mem, err, errlen);
  if (L == NULL) goto fail;
  if (!sm->can_snapshot) {
    snprintf(err, errlen, "restore: the state machine has no snapshot/restore functions");
    lr__sm_close_state(L, mem);
    goto fail;
  }
  uint64_t hard = mem->hard;
  lua_getfield(L, S_TABLE, "restore");
  lua_pushlstring(L, user, ulen);
  sm->ctx.seeded = false;
  sm->ctx.seed1 = (lua_Integer)index;
  sm->ctx.seed2 = -4;
  int rc = lua_pcall(L, 1, 0, S_HANDLER);
  lr__sm_call_end(sm, L, mem, hard, rc);
  if (rc != LUA_OK || sm->halted) {
    snprintf(err, errlen, "restore: %s", sm->halted ? sm->reason : lua_tostring(L, -1));
    lr__sm_close_state(L, mem);
    goto fail;
  }
  lua_settop(L, S_TOP);
  lr__sm_close_state(sm->L, sm->mem);
  sm->L = L;
  sm->mem = mem;
replace:
  lr__sm_sessions_free(&sm->sessions);
  sm->sessions = t;
  raft_free(sm->origins);
  sm->origins = origins;
  sm->n_origins = n_origins;
  sm->applied = index;
  sm->applied_term = term;
  return 0;
malformed:
  snprintf(err, errlen, "restore: malformed snapshot");
fail:
  raft_free(origins);
  lr__sm_sessions_free(&t);
  return -1;
}
