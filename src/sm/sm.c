/* The state machine runner (see sm.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "sm/bytes.h"
#include "sm/session.h"
#include "sm/sm.h"

int luaopen_raft(lua_State *L);

/* The node's Lua state keeps these at fixed stack slots for the whole life of
 * the state, so the per-entry path never touches the registry. */
enum { S_HANDLER = 1, S_TABLE, S_APPLY, S_META, S_QUERY, S_KINDEX, S_KTERM, S_KTIME,
       S_TOP = S_KTIME };

/* Request ids per origin node: the last one applied and a window of the 64
 * before it. A proposal travels to the leader in a message the network may
 * deliver twice, so the same envelope can be appended twice; its second copy
 * (or one older than the window) is skipped, the same way on every replica. */
struct lr__sm_origin {
  uint64_t origin, last, window; /* bit i: last - 1 - i was applied */
};
#define ORIGINS_MAX 4096

#define SNAP_MAGIC "LRSN"
#define SNAP_VERSION 1

struct lr_sm {
  lua_State *L;
  struct lr_sm_options o;
  char *path, *chunk, *chunkname; /* owned copies */
  raft_index applied;
  raft_term applied_term;
  struct lr__sm_sessions sessions;
  struct lr__sm_origin *origins; /* replicated: forwarded-duplicate filter */
  uint32_t n_origins;
  bool can_snapshot;
  struct lr_buf out; /* result bytes, reused */
};

const char *lr_sm_code(int status) {
  switch (status) {
  case LR_SM_OK: return "ok";
  case LR_SM_APPLY_ERROR: return "apply_error";
  case LR_SM_BAD_REQUEST: return "bad_request";
  default: return "none";
  }
}

/* Message handler: the error as "file:line: message" without a traceback, so
 * the message is the same on every replica. */
static int msghandler(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) return 1;
  if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
    return 1;
  lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

static char *dup_mem(const char *p, size_t n) {
  char *c = raft_malloc(n + 1);
  if (c == NULL) return NULL;
  memcpy(c, p, n);
  c[n] = 0;
  return c;
}

/* Runs in protected mode in the new state: opens the libraries and `raft`,
 * runs the script or factory and leaves S_HANDLER..S_QUERY on the stack. */
static int init_state(lua_State *L) {
  struct lr_sm *sm = lua_touserdata(L, 1);
  lua_settop(L, 0);
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_raft);
  lua_setfield(L, -2, "raft");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "raft");
  lua_call(L, 1, 1);
  lua_setglobal(L, "raft");

  lua_pushcfunction(L, msghandler); /* S_HANDLER */
  int rc;
  if (sm->path != NULL)
    rc = luaL_loadfilex(L, sm->path, "t");
  else
    rc = luaL_loadbufferx(L, sm->chunk, sm->o.chunk_len,
                          sm->chunkname ? sm->chunkname : "=state_machine", "b");
  if (rc != LUA_OK) return lua_error(L);
  if (lua_pcall(L, 0, 1, S_HANDLER) != LUA_OK) return lua_error(L);
  if (!lua_istable(L, -1)) goto bad;
  lua_getfield(L, S_TABLE, "apply"); /* S_APPLY */
  if (!lua_isfunction(L, -1)) goto bad;
  lua_createtable(L, 0, 3); /* S_META */
  lua_getfield(L, S_TABLE, "query"); /* S_QUERY */
  lua_getfield(L, S_TABLE, "snapshot");
  lua_getfield(L, S_TABLE, "restore");
  sm->can_snapshot = lua_isfunction(L, -1) && lua_isfunction(L, -2);
  lua_pop(L, 2);
  lua_pushliteral(L, "index"); /* S_KINDEX: meta keys, pushed once */
  lua_pushliteral(L, "term");
  lua_pushliteral(L, "time");
  return lua_gettop(L); /* S_HANDLER..S_TOP become pcall's results */
bad:
  return luaL_error(L, "state machine script must return a table with an apply function");
}

static lua_State *new_state(struct lr_sm *sm, char *err, size_t errlen) {
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    snprintf(err, errlen, "cannot create a Lua state: not enough memory");
    return NULL;
  }
  lua_pushcfunction(L, init_state);
  lua_pushlightuserdata(L, sm);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    snprintf(err, errlen, "state machine: %s", msg ? msg : "(error object is not a string)");
    lua_close(L);
    return NULL;
  }
  if (lua_gettop(L) != S_TOP) {
    snprintf(err, errlen, "state machine: internal error: bad stack");
    lua_close(L);
    return NULL;
  }
  return L;
}

int lr_sm_new(const struct lr_sm_options *o, struct lr_sm **out, char *err,
              size_t errlen) {
  struct lr_sm *sm = raft_malloc(sizeof *sm);
  if (sm == NULL) goto nomem;
  memset(sm, 0, sizeof *sm);
  sm->o = *o;
  if (o->path != NULL) {
    if ((sm->path = dup_mem(o->path, strlen(o->path))) == NULL) goto nomem;
  } else if (o->chunk != NULL) {
    if ((sm->chunk = dup_mem(o->chunk, o->chunk_len)) == NULL) goto nomem;
    if (o->chunkname && (sm->chunkname = dup_mem(o->chunkname, strlen(o->chunkname))) == NULL)
      goto nomem;
  } else {
    snprintf(err, errlen, "state_machine must be a path or a function");
    goto fail;
  }
  uint32_t max = o->max_sessions ? o->max_sessions : LR_SM_SESSIONS_DEFAULT;
  if (max > LR_SM_SESSIONS_MAX) {
    snprintf(err, errlen, "max_sessions must be at most %d", LR_SM_SESSIONS_MAX);
    goto fail;
  }
  lr__sm_sessions_init(&sm->sessions, max);
  lr_buf_init(&sm->out);
  if ((sm->L = new_state(sm, err, errlen)) == NULL) goto fail;
  *out = sm;
  return 0;
nomem:
  snprintf(err, errlen, "out of memory");
fail:
  if (sm) {
    raft_free(sm->path);
    raft_free(sm->chunk);
    raft_free(sm->chunkname);
    raft_free(sm);
  }
  return -1;
}

void lr_sm_free(struct lr_sm *sm) {
  if (sm == NULL) return;
  if (sm->L) lua_close(sm->L);
  lr__sm_sessions_free(&sm->sessions);
  raft_free(sm->origins);
  lr_buf_free(&sm->out);
  raft_free(sm->path);
  raft_free(sm->chunk);
  raft_free(sm->chunkname);
  raft_free(sm);
}

static void set_result(struct lr_sm *sm, struct lr_sm_result *res, int status,
                       const char *p, size_t n) {
  sm->out.len = 0;
  if (n > 0 && lr_buf_append(&sm->out, p, n) != 0) n = 0; /* UNTESTED: OOM */
  res->status = status;
  res->data = sm->out.data;
  res->len = n;
}

static void set_message(struct lr_sm *sm, struct lr_sm_result *res, int status,
                        const char *fmt, const char *arg) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, arg);
  set_result(sm, res, status, msg, strlen(msg));
}

/* Calls apply(cmd, meta) with the decoded command; fills res. */
static void call_apply(struct lr_sm *sm, const struct raft_entry *e,
                       struct lr_sm_result *res) {
  lua_State *L = sm->L;
  char err[256];
  lua_pushvalue(L, S_APPLY);
  if (lr_decode(L, res->env.cmd, res->env.cmd_len, err, sizeof err) != 0) {
    lua_settop(L, S_TOP);
    set_message(sm, res, LR_SM_BAD_REQUEST, "malformed command: %s", err);
    return;
  }
  lua_pushvalue(L, S_KINDEX);
  lua_pushinteger(L, (lua_Integer)e->index);
  lua_rawset(L, S_META);
  lua_pushvalue(L, S_KTERM);
  lua_pushinteger(L, (lua_Integer)e->term);
  lua_rawset(L, S_META);
  lua_pushvalue(L, S_KTIME);
  lua_pushinteger(L, (lua_Integer)res->env.time_ms);
  lua_rawset(L, S_META);
  lua_pushvalue(L, S_META);
  if (lua_pcall(L, 2, 1, S_HANDLER) != LUA_OK) {
    size_t n;
    const char *msg = lua_tolstring(L, -1, &n);
    set_result(sm, res, LR_SM_APPLY_ERROR, msg, n);
    lua_settop(L, S_TOP);
    return;
  }
  sm->out.len = 0;
  if (lr_encode(L, -1, &sm->out, err, sizeof err) != 0) {
    lua_settop(L, S_TOP);
    set_message(sm, res, LR_SM_APPLY_ERROR, "apply returned a result that cannot be encoded: %s", err);
    return;
  }
  lua_settop(L, S_TOP);
  res->status = LR_SM_OK;
  res->data = sm->out.data;
  res->len = sm->out.len;
}

/* True if (origin, req) was applied before (or is too old to tell); else
 * records it. */
static bool origin_seen(struct lr_sm *sm, uint64_t origin, uint64_t req) {
  struct lr__sm_origin *o = NULL;
  for (uint32_t i = 0; i < sm->n_origins; i++)
    if (sm->origins[i].origin == origin) o = &sm->origins[i];
  if (o == NULL) {
    if (sm->n_origins >= ORIGINS_MAX) return false; /* UNTESTED: no filter */
    struct lr__sm_origin *a = raft_realloc(sm->origins, (sm->n_origins + 1) * sizeof *a);
    if (a == NULL) return false; /* UNTESTED */
    sm->origins = a;
    o = &a[sm->n_origins++];
    *o = (struct lr__sm_origin){origin, req, 0};
    return false;
  }
  if (req > o->last) {
    uint64_t shift = req - o->last;
    o->window = shift > 64 ? 0 : shift == 64 ? (uint64_t)1 << 63 : (o->window << shift) | ((uint64_t)1 << (shift - 1));
    o->last = req;
    return false;
  }
  if (req == o->last) return true;
  uint64_t back = o->last - req - 1;
  if (back >= 64) return true;
  if (o->window & ((uint64_t)1 << back)) return true;
  o->window |= (uint64_t)1 << back;
  return false;
}

int lr_sm_apply(struct lr_sm *sm, const struct raft_entry *e,
                struct lr_sm_result *res) {
  memset(res, 0, sizeof *res);
  res->status = LR_SM_NONE;
  sm->applied = e->index;
  sm->applied_term = e->term;
  if (e->type != RAFT_ENTRY_NORMAL) return 0;
  if (lr_env_decode(e->data, e->len, &res->env) != 0) {
    memset(&res->env, 0, sizeof res->env);
    set_message(sm, res, LR_SM_BAD_REQUEST, "%s", "malformed entry envelope");
    return 0;
  }
  if (res->env.req != 0 && origin_seen(sm, res->env.origin, res->env.req)) {
    res->status = LR_SM_SKIPPED;
    res->duplicate = true;
    return 0;
  }
  struct lr__sm_session *s = NULL;
  if (res->env.client != NULL) {
    s = lr__sm_sessions_get(&sm->sessions, res->env.client, res->env.client_len);
    if (s != NULL && res->env.seq <= s->seq) {
      lr__sm_sessions_touch(&sm->sessions, s, e->index);
      res->duplicate = true;
      if (res->env.seq == s->seq)
        set_result(sm, res, s->status, s->result, s->result_len);
      else
        set_message(sm, res, LR_SM_BAD_REQUEST, "%s", "stale sequence number");
      return 0;
    }
  }
  call_apply(sm, e, res);
  if (res->env.client != NULL &&
      lr__sm_sessions_put(&sm->sessions, res->env.client, res->env.client_len,
                       res->env.seq, e->index, res->status, res->data, res->len) != 0)
    return -1; /* UNTESTED: OOM */
  return 0;
}

int lr_sm_query(struct lr_sm *sm, const void *q, size_t qlen,
                struct lr_sm_result *res) {
  lua_State *L = sm->L;
  char err[256];
  memset(res, 0, sizeof *res);
  if (!lua_isfunction(L, S_QUERY)) {
    set_message(sm, res, LR_SM_BAD_REQUEST, "%s", "the state machine has no query function");
    return 0;
  }
  lua_pushvalue(L, S_QUERY);
  if (lr_decode(L, q, qlen, err, sizeof err) != 0) {
    lua_settop(L, S_TOP);
    set_message(sm, res, LR_SM_BAD_REQUEST, "malformed query: %s", err);
    return 0;
  }
  if (lua_pcall(L, 1, 1, S_HANDLER) != LUA_OK) {
    size_t n;
    const char *msg = lua_tolstring(L, -1, &n);
    set_result(sm, res, LR_SM_BAD_REQUEST, msg, n);
    lua_settop(L, S_TOP);
    return 0;
  }
  sm->out.len = 0;
  if (lr_encode(L, -1, &sm->out, err, sizeof err) != 0) {
    lua_settop(L, S_TOP);
    set_message(sm, res, LR_SM_BAD_REQUEST, "query returned a result that cannot be encoded: %s", err);
    return 0;
  }
  lua_settop(L, S_TOP);
  res->status = LR_SM_OK;
  res->data = sm->out.data;
  res->len = sm->out.len;
  return 0;
}

bool lr_sm_can_snapshot(const struct lr_sm *sm) { return sm->can_snapshot; }

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
  lua_getfield(L, S_TABLE, "snapshot");
  if (lua_pcall(L, 0, 1, S_HANDLER) != LUA_OK) {
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
  memcpy(h, SNAP_MAGIC, 4);
  lr__put8(h + 4, SNAP_VERSION);
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
        status > LR_SM_BAD_REQUEST || seq == 0)
      return -1;
    if (lr__sm_sessions_get(t, client, clen) != NULL) return -1; /* duplicate */
    if (lr__sm_sessions_put(t, client, clen, seq, last, status, res, rlen)) return -1;
  }
  return 0;
}

int lr_sm_restore(struct lr_sm *sm, const void *p, size_t n, char *err,
                  size_t errlen) {
  struct lr__rd r;
  struct lr__sm_sessions t;
  lr__rd_init(&r, p, n);
  const char *magic = lr__get(&r, 4);
  if (magic == NULL || memcmp(magic, SNAP_MAGIC, 4) != 0 ||
      lr__getn(&r, 1) != SNAP_VERSION) {
    snprintf(err, errlen, "restore: not a luaraft snapshot (or an unknown version)");
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
  if (r.bad || n_origins > ORIGINS_MAX || n_origins > r.n / 24) goto malformed;
  origins = raft_malloc((n_origins ? n_origins : 1) * sizeof *origins);
  if (origins == NULL) goto malformed; /* UNTESTED */
  for (uint32_t i = 0; i < n_origins; i++) {
    origins[i].origin = lr__getn(&r, 8);
    origins[i].last = lr__getn(&r, 8);
    origins[i].window = lr__getn(&r, 8);
  }
  size_t ulen = (size_t)lr__getn(&r, 4);
  const char *user = lr__get(&r, ulen);
  if (r.bad || r.n != 0) goto malformed;

  lua_State *L = new_state(sm, err, errlen);
  if (L == NULL) goto fail;
  if (!sm->can_snapshot) {
    snprintf(err, errlen, "restore: the state machine has no snapshot/restore functions");
    lua_close(L);
    goto fail;
  }
  lua_getfield(L, S_TABLE, "restore");
  lua_pushlstring(L, user, ulen);
  if (lua_pcall(L, 1, 0, S_HANDLER) != LUA_OK) {
    snprintf(err, errlen, "restore: %s", lua_tostring(L, -1));
    lua_close(L);
    goto fail;
  }
  lua_settop(L, S_TOP);
  lua_close(sm->L);
  sm->L = L;
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

raft_index lr_sm_applied_index(const struct lr_sm *sm) { return sm->applied; }
raft_term lr_sm_applied_term(const struct lr_sm *sm) { return sm->applied_term; }
void lr_sm_set_applied(struct lr_sm *sm, raft_index index, raft_term term) {
  sm->applied = index;
  sm->applied_term = term;
}
uint32_t lr_sm_session_count(const struct lr_sm *sm) { return sm->sessions.count; }
lua_State *lr_sm_lua(struct lr_sm *sm) { return sm->L; }
