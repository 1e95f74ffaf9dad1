/* The state machine runner (see sm.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "codec/codec.h"
#include "sm/bytes.h"
#include "sm/session.h"
#include "sm/sm_int.h"

const char *lr_sm_code(int status) {
  switch (status) {
  case LR_SM_OK:
    return "ok";
  case LR_SM_APPLY_ERROR:
    return "apply_error";
  case LR_SM_BAD_REQUEST:
    return "bad_request";
  case LR_SM_HALTED:
    return "stopped";
  case LR_SM_TOO_LARGE:
    return "too_large";
  default:
    return "none";
  }
}

/* Message handler: the error as "file:line: message" without a traceback, so
 * the message is the same on every replica. */
static int msghandler(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) return 1;
  if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
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

static int panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "luaraft: PANIC: unprotected error in a state machine (%s)\n", msg ? msg : "?");
  return 0; /* abort() follows */
}

static void warn_off(void *ud, const char *msg, int tocont) {
  (void)ud, (void)msg, (void)tocont;
}

/* ---- halting ------------------------------------------------------------- */
void lr__sm_log(struct lr_sm *sm, int level, const char *msg) {
  if (sm->o.log)
    sm->o.log(sm->o.log_ud, level, msg);
  else
    fprintf(stderr, "luaraft: node %llu: %s\n", (unsigned long long)sm->o.id, msg);
}

void lr__sm_halt(struct lr_sm *sm, bool memory, const char *fmt, ...) {
  if (sm->halted) return;
  sm->halted = true;
  sm->mem_exceeded = memory;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sm->reason, sizeof sm->reason, fmt, ap);
  va_end(ap);
  char line[600];
  snprintf(line, sizeof line, "state machine HALTED: %s", sm->reason);
  lr__sm_log(sm, RAFT_LOG_ERROR, line);
}

static void halt_memory(struct lr_sm *sm) {
  if (sm->in_state) {
    lr__sm_halt(sm, true,
                "out of memory in the Lua state the state machine table runs in; this node "
                "stops applying; restart the node");
    return;
  }
  lr__sm_halt(sm, true,
              "memory limit reached: the Lua state needs more than %llu bytes (memory_max); "
              "this is not deterministic, so this node stops applying; raise memory_max or fix the "
              "state machine, then restart the node",
              (unsigned long long)sm->mem->max);
}

/* ---- the instruction budget ---------------------------------------------- */
/* A count hook: deterministic, since every replica runs the same
 * instructions. It fires every `chunk` instructions; once over the budget it
 * fires at every instruction, so a pcall in the script cannot swallow it. */
static void budget_charge(lua_State *L, struct lr__sm_ctx *c, lua_Hook hook) {
  if (!c->budget_on) return;
  c->spent += c->chunk;
  if (c->spent < c->budget && !c->budget_hit) return;
  c->budget_hit = true;
  lua_sethook(L, hook, LUA_MASKCOUNT, 1);
  luaL_where(L, 0);
  lua_pushfstring(L,
                  "instruction budget exceeded: more than %I Lua instructions in one call "
                  "(apply_budget)",
                  (lua_Integer)c->budget);
  lua_concat(L, 2);
  lua_error(L);
}

static void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  budget_charge(L, lr__sm_ctx_of(L), budget_hook);
}

/* ---- the in-state mode: the call marker ------------------------------------
 * While an in-state runner calls into its table, the caller's registry holds
 * [&call_key] = the runner's ctx (light userdata): lr_sm_in_call() reads it,
 * and the count hook finds the budget through it, in the runner's thread and
 * in any coroutine made during the call (which inherits the hook but shares
 * no extra space with the runner). Outside a call the marker is nil, and a
 * coroutine that still carries the hook drops it the first time it fires. */
static const char call_key = 0;

bool lr_sm_in_call(lua_State *L) {
  bool in = lua_rawgetp(L, LUA_REGISTRYINDEX, &call_key) != LUA_TNIL;
  lua_pop(L, 1);
  return in;
}

static void table_budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &call_key);
  struct lr__sm_ctx *c = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (c == NULL) {
    lua_sethook(L, NULL, 0, 0); /* the embedder's code: never limited */
    return;
  }
  budget_charge(L, c, table_budget_hook);
}

/* Sets the marker (in-state mode); nested runners restore the outer one. */
void lr__sm_mark_enter(struct lr_sm *sm) {
  if (!sm->in_state) return;
  lua_State *L = sm->L;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &call_key);
  sm->outer = lua_touserdata(L, -1);
  lua_pop(L, 1);
  lua_pushlightuserdata(L, &sm->ctx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &call_key);
}

static void mark_leave(struct lr_sm *sm) {
  if (!sm->in_state) return;
  lua_State *L = sm->L;
  if (sm->outer)
    lua_pushlightuserdata(L, sm->outer);
  else
    lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &call_key);
  sm->outer = NULL;
}

/* Starts a call into the script: its seed and its budget. */
void lr__sm_call_begin(struct lr_sm *sm, lua_State *L, lua_Integer seed1, lua_Integer seed2) {
  struct lr__sm_ctx *c = &sm->ctx;
  c->seeded = false;
  c->seed1 = seed1;
  c->seed2 = seed2;
  lr__sm_mark_enter(sm);
  if (sm->budget == LR_SM_BUDGET_OFF) return;
  c->budget_on = true;
  c->budget_hit = false;
  c->budget = sm->budget;
  c->spent = 0;
  c->chunk = sm->budget < (1u << 20) ? sm->budget : (1u << 20);
  lua_sethook(L, sm->in_state ? table_budget_hook : budget_hook, LUA_MASKCOUNT, (int)c->chunk);
}

/* Ends it; halts the runner if the Lua state ran out of memory. */
void lr__sm_call_end(struct lr_sm *sm, lua_State *L, struct lr__sm_mem *mem, uint64_t hard,
                     int rc) {
  if (sm->ctx.budget_on) {
    lua_sethook(L, NULL, 0, 0);
    sm->ctx.budget_on = false;
    if (sm->ctx.budget_hit) sm->budget_hits++;
  }
  mark_leave(sm);
  if (rc == LUA_ERRMEM || mem->hard != hard) {
    struct lr__sm_mem *cur = sm->mem;
    sm->mem = mem; /* for the message */
    halt_memory(sm);
    sm->mem = cur;
  }
}

static int init_slots(lua_State *L, struct lr_sm *sm);

/* The `raft` a state machine sees: the codec and the version, nothing of the
 * binding (no nodes, simulator, HTTP or loop: a state machine has no use for
 * them, and the runner must not depend on the layer above it). Preloaded, so
 * `require "raft"` in a script gets this same table; also the global `raft`. */
static int open_sm_raft(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, LUARAFT_VERSION);
  lua_setfield(L, -2, "version");
  lr_codec_open(L);
  return 1;
}

/* Runs in protected mode in the new state: opens the libraries and `raft`,
 * runs the script or factory and leaves S_HANDLER..S_QUERY on the stack. */
static int init_state(lua_State *L) {
  struct lr_sm *sm = lua_touserdata(L, 1);
  lua_settop(L, 0);
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_sm_raft);
  lua_setfield(L, -2, "raft");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "raft");
  lua_call(L, 1, 1);
  lua_setglobal(L, "raft");
  lr__sm_sandbox_install(L);

  lua_pushcfunction(L, msghandler); /* S_HANDLER */
  int rc;
  if (sm->path != NULL)
    rc = luaL_loadfilex(L, sm->path, "t");
  else
    rc = luaL_loadbufferx(L, sm->chunk, sm->o.chunk_len,
                          sm->chunkname ? sm->chunkname : "=state_machine", "b");
  if (rc != LUA_OK) return lua_error(L);
  /* the script's top level runs guarded, seeded and on a budget too */
  lr__sm_call_begin(sm, L, 0, 0);
  rc = lua_pcall(L, 0, 1, S_HANDLER);
  if (sm->ctx.budget_on) {
    lua_sethook(L, NULL, 0, 0);
    sm->ctx.budget_on = false;
  }
  if (rc != LUA_OK) return lua_error(L);
  return init_slots(L, sm);
}

/* The fixed slots from S_APPLY on, below them S_HANDLER and the table. */
static int init_slots(lua_State *L, struct lr_sm *sm) {
  if (!lua_istable(L, S_TABLE)) goto bad;
  lua_getfield(L, S_TABLE, "apply"); /* S_APPLY */
  if (!lua_isfunction(L, -1)) goto bad;
  /* in-state mode: no sandbox, so nothing to lift (`unsafe` is ignored) */
  sm->guards = sm->in_state ? 0 : lr__sm_sandbox_relax(L, S_TABLE);
  lua_createtable(L, 0, 3);           /* S_META */
  lua_getfield(L, S_TABLE, "query");  /* S_QUERY */
  lua_getfield(L, S_TABLE, "digest"); /* S_DIGEST */
  if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
    return luaL_error(L, "state machine: digest must be a function returning a string");
  lua_getfield(L, S_TABLE, "snapshot");
  lua_getfield(L, S_TABLE, "restore");
  sm->can_snapshot = lua_isfunction(L, -1) && lua_isfunction(L, -2);
  lua_pop(L, 2);
  lua_pushliteral(L, "index"); /* S_KINDEX: meta keys, pushed once */
  lua_pushliteral(L, "term");
  lua_pushliteral(L, "time");
  return lua_gettop(L); /* S_HANDLER..S_TOP become pcall's results */
bad:
  if (sm->in_state) return luaL_error(L, "state_machine table must have an apply function");
  return luaL_error(L, "state machine script must return a table with an apply function");
}

/* In-state mode, in protected mode on the runner's thread: [table, sm]. */
static int init_table(lua_State *L) {
  struct lr_sm *sm = lua_touserdata(L, 2);
  lua_settop(L, 1);
  lua_pushcfunction(L, msghandler); /* S_HANDLER */
  lua_insert(L, 1);
  return init_slots(L, sm);
}

/* In-state mode: the slots on the caller's thread (sm.h). 0 or -1 + err. */
static int init_thread(struct lr_sm *sm, char *err, size_t errlen) {
  lua_State *L = sm->o.thread;
  if (lua_gettop(L) != 1 || !lua_istable(L, 1) || lua_status(L) != LUA_OK) {
    snprintf(err, errlen, "state machine: internal error: the thread must hold just the table");
    return -1;
  }
  lua_sethook(L, NULL, 0, 0); /* a hook inherited from the thread's creator */
  lua_pushcfunction(L, init_table);
  lua_insert(L, 1);
  lua_pushlightuserdata(L, sm);
  int rc = lua_pcall(L, 2, LUA_MULTRET, 0);
  if (rc != LUA_OK || lua_gettop(L) != S_TOP) {
    const char *msg = rc != LUA_OK ? lua_tostring(L, -1) : "internal error: bad stack";
    snprintf(err, errlen, "%s", msg ? msg : "(error object is not a string)");
    lua_settop(L, 0);
    return -1;
  }
  sm->L = L;
  return 0;
}

void lr__sm_close_state(lua_State *L, struct lr__sm_mem *mem) {
  if (L) lua_close(L);
  lr__sm_mem_free(mem);
}

/* A fresh guarded Lua state with the script loaded; *memp gets its
 * allocator. NULL with err (and maybe the runner halted: memory). */
lua_State *lr__sm_new_state(struct lr_sm *sm, struct lr__sm_mem **memp, char *err, size_t errlen) {
  struct lr__sm_mem *mem = raft_malloc(sizeof *mem);
  if (mem == NULL) {
    snprintf(err, errlen, "cannot create a Lua state: not enough memory");
    return NULL;
  }
  memset(mem, 0, sizeof *mem);
  mem->max = sm->o.memory_max;
  lua_State *L = lua_newstate(lr__sm_alloc, mem);
  if (L == NULL) {
    snprintf(err, errlen, "cannot create a Lua state: not enough memory (memory_max %llu)",
             (unsigned long long)mem->max);
    lr__sm_mem_free(mem);
    return NULL;
  }
  lua_atpanic(L, panic);
  lua_setwarnf(L, warn_off, NULL);
  /* Generational: an apply makes short-lived garbage (the decoded command,
   * its locals) and the state machine's data lives long, the case this mode
   * is for (about 7% of the simulator benchmark over incremental). The
   * sandbox lets a script call collectgarbage("count") only, so it cannot
   * switch modes; the memory limit works the same in both. */
  lua_gc(L, LUA_GCGEN, 0, 0);
  *(struct lr__sm_ctx **)lua_getextraspace(L) = &sm->ctx;
  lua_pushcfunction(L, init_state);
  lua_pushlightuserdata(L, sm);
  int rc = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (rc != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    snprintf(err, errlen, "state machine: %s", msg ? msg : "(error object is not a string)");
    if (rc == LUA_ERRMEM || mem->hard > 0) {
      struct lr__sm_mem *cur = sm->mem;
      sm->mem = mem;
      halt_memory(sm);
      sm->mem = cur;
    }
    lr__sm_close_state(L, mem);
    return NULL;
  }
  if (lua_gettop(L) != S_TOP) {
    snprintf(err, errlen, "state machine: internal error: bad stack");
    lr__sm_close_state(L, mem);
    return NULL;
  }
  *memp = mem;
  return L;
}

int lr_sm_new(const struct lr_sm_options *o, struct lr_sm **out, char *err, size_t errlen) {
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
  } else if (o->thread != NULL) {
    sm->in_state = true;
  } else {
    snprintf(err, errlen, "state_machine must be a path, a function or a table");
    goto fail;
  }
  uint32_t max = o->max_sessions ? o->max_sessions : LR_SM_SESSIONS_DEFAULT;
  if (max > LR_SM_SESSIONS_MAX) {
    snprintf(err, errlen, "max_sessions must be at most %d", LR_SM_SESSIONS_MAX);
    goto fail;
  }
  sm->budget = o->apply_budget ? o->apply_budget : LR_SM_BUDGET_DEFAULT;
  sm->o.memory_max = o->memory_max ? o->memory_max : LR_SM_MEMORY_DEFAULT;
  sm->digest_entries = o->digest_entries ? o->digest_entries : LR_SM_DIGEST_ENTRIES_DEFAULT;
  sm->max_result = o->max_result_bytes ? o->max_result_bytes : LR_SM_RESULT_DEFAULT;
  if (sm->in_state) {
    /* no memory limit: the memory is the caller's state's; a counter that
     * never moves keeps the paths shared with the own mode simple */
    sm->o.memory_max = 0;
    if ((sm->mem = raft_malloc(sizeof *sm->mem)) == NULL) goto nomem;
    memset(sm->mem, 0, sizeof *sm->mem);
    sm->mem->max = SIZE_MAX;
    lr__sm_sessions_init(&sm->sessions, max);
    lr_buf_init(&sm->out);
    if (init_thread(sm, err, errlen) != 0) {
      raft_free(sm->mem);
      goto fail;
    }
    *out = sm;
    return 0;
  }
  if (sm->o.memory_max < 64 * 1024) {
    snprintf(err, errlen, "memory_max must be at least 65536 bytes");
    goto fail;
  }
  lr__sm_sessions_init(&sm->sessions, max);
  lr_buf_init(&sm->out);
  if ((sm->L = lr__sm_new_state(sm, &sm->mem, err, errlen)) == NULL) goto fail;
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
  /* in-state mode: the thread and the table are the caller's (and its state
   * may be closed already): touch neither */
  lr__sm_close_state(sm->in_state ? NULL : sm->L, sm->mem);
  lr__sm_sessions_free(&sm->sessions);
  raft_free(sm->origins);
  lr_buf_free(&sm->out);
  raft_free(sm->path);
  raft_free(sm->chunk);
  raft_free(sm->chunkname);
  raft_free(sm);
}

static void set_result(struct lr_sm *sm, struct lr_sm_result *res, int status, const char *p,
                       size_t n) {
  sm->out.len = 0;
  if (n > 0 && lr_buf_append(&sm->out, p, n) != 0) n = 0; /* UNTESTED: OOM */
  res->status = status;
  res->data = sm->out.data;
  res->len = n;
}

static void set_message(struct lr_sm *sm, struct lr_sm_result *res, int status, const char *fmt,
                        const char *arg) {
  char msg[512];
  snprintf(msg, sizeof msg, fmt, arg);
  set_result(sm, res, status, msg, strlen(msg));
}

static void set_halted(struct lr_sm *sm, struct lr_sm_result *res) {
  set_result(sm, res, LR_SM_HALTED, sm->reason, strlen(sm->reason));
}

/* Encodes the result on top of L into sm->out, within max_result_bytes.
 * -> 0 encoded, 1 too large (res holds LR_SM_TOO_LARGE and a message),
 * -1 not encodable (err set). A long string is refused before it is copied. */
static int encode_result(struct lr_sm *sm, struct lr_sm_result *res, char *err, size_t errlen) {
  lua_State *L = sm->L;
  size_t n = 0;
  int rc = 0;
  if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > sm->max_result)
    n = lua_rawlen(L, -1);
  else if ((rc = lr_encode(L, -1, &sm->out, err, errlen)) == 0 && sm->out.len > sm->max_result)
    n = sm->out.len;
  if (rc != 0) return -1;
  if (n == 0) return 0;
  char msg[200];
  snprintf(msg, sizeof msg, "the result (%zu bytes) is over max_result_bytes (%zu) and was dropped",
           n, sm->max_result);
  set_result(sm, res, LR_SM_TOO_LARGE, msg, strlen(msg));
  return 1;
}

/* What apply_protected needs; `decoding` tells a failed decode of the
 * command (bad_request) from an error of apply() (apply_error). */
struct apply_call {
  const struct lr_env *env;
  bool decoding, malformed;
  char err[256];
};

/* Runs under the one lua_pcall of an apply: [apply, meta, call] -> decodes
 * the command and calls apply(cmd, meta). Decoding inside the same protected
 * call saves a second pcall per entry; a malformed command is recorded, not
 * raised. */
static int apply_protected(lua_State *L) {
  struct apply_call *c = lua_touserdata(L, 3);
  lua_settop(L, 2);
  c->decoding = true;
  if (lr_decode_unprotected(L, c->env->cmd, c->env->cmd_len, c->err, sizeof c->err) != 0) {
    c->malformed = true;
    return 0;
  }
  c->decoding = false;
  lua_insert(L, 2); /* apply, cmd, meta */
  lua_call(L, 2, 1);
  return 1;
}

static void set_meta(lua_State *L, const struct raft_entry *e, uint64_t time_ms) {
  lua_pushvalue(L, S_KINDEX);
  lua_pushinteger(L, (lua_Integer)e->index);
  lua_rawset(L, S_META);
  lua_pushvalue(L, S_KTERM);
  lua_pushinteger(L, (lua_Integer)e->term);
  lua_rawset(L, S_META);
  lua_pushvalue(L, S_KTIME);
  lua_pushinteger(L, (lua_Integer)time_ms);
  lua_rawset(L, S_META);
}

/* Calls apply(cmd, meta) with the decoded command; fills res. */
static void call_apply(struct lr_sm *sm, const struct raft_entry *e, struct lr_sm_result *res) {
  lua_State *L = sm->L;
  char err[256];
  uint64_t hard = sm->mem->hard;
  struct apply_call c; /* not `= {...}`: that would clear err[] on every entry */
  c.env = &res->env;
  c.decoding = c.malformed = false;
  c.err[0] = 0;
  set_meta(L, e, res->env.time_ms);
  lua_pushcfunction(L, apply_protected);
  lua_pushvalue(L, S_APPLY);
  lua_pushvalue(L, S_META);
  lua_pushlightuserdata(L, &c);
  lr__sm_call_begin(sm, L, (lua_Integer)e->index, (lua_Integer)e->term);
  int rc = lua_pcall(L, 3, 1, S_HANDLER);
  lr__sm_call_end(sm, L, sm->mem, hard, rc);
  if (sm->halted) {
    lua_settop(L, S_TOP);
    return;
  }
  if (c.malformed || (rc != LUA_OK && c.decoding)) {
    const char *why = c.malformed ? c.err : lua_tostring(L, -1);
    set_message(sm, res, LR_SM_BAD_REQUEST, "malformed command: %s", why ? why : "?");
    lua_settop(L, S_TOP);
    return;
  }
  if (rc != LUA_OK) {
    size_t n;
    const char *msg = lua_tolstring(L, -1, &n);
    set_result(sm, res, LR_SM_APPLY_ERROR, msg, n);
    lua_settop(L, S_TOP);
    return;
  }
  sm->out.len = 0;
  if (lua_isnil(L, -1)) { /* the usual result: 2 bytes, no encoder set-up */
    lua_settop(L, S_TOP);
    set_result(sm, res, LR_SM_OK, LR_CODEC_NIL, LR_CODEC_NIL_LEN);
    return;
  }
  int enc = encode_result(sm, res, err, sizeof err);
  lua_settop(L, S_TOP);
  if (enc < 0) {
    set_message(sm, res, LR_SM_APPLY_ERROR, "apply returned a result that cannot be encoded: %s",
                err);
    return;
  }
  if (enc > 0) return; /* applied; the result was dropped (res says so) */
  res->status = LR_SM_OK;
  res->data = sm->out.data;
  res->len = sm->out.len;
}

bool lr_sm_halted(const struct lr_sm *sm) {
  return sm->halted;
}
void lr_sm_set_config(struct lr_sm *sm, const struct raft_config *c) {
  lr__sm_digest_config(&sm->dg, c);
}

void lr_sm_status(const struct lr_sm *sm, struct lr_sm_status *st) {
  memset(st, 0, sizeof *st);
  st->halted = sm->halted;
  st->reason = sm->halted ? sm->reason : "";
  st->memory_exceeded = sm->mem_exceeded;
  st->diverged = sm->dg.diverged;
  st->diverged_index = sm->dg.div_index;
  st->mine = sm->dg.div_mine.d;
  st->mine_len = sm->dg.div_mine.len;
  st->majority = sm->dg.div_majority.d;
  st->majority_len = sm->dg.div_majority.len;
  st->digests_taken = sm->dg.taken;
  st->digests_matched = sm->dg.matched;
  st->digest_mismatches = sm->dg.mismatches;
  st->budget_exceeded = sm->budget_hits;
  st->memory_used = sm->mem ? sm->mem->used : 0; /* in-state mode: 0 */
  st->memory_max = sm->o.memory_max;
  st->guards = sm->guards;
}

/* True if (origin, req) was applied before (or is too old to tell); else
 * records it. */
static bool origin_seen(struct lr_sm *sm, uint64_t origin, uint64_t req) {
  struct lr__sm_origin *o = NULL;
  for (uint32_t i = 0; i < sm->n_origins; i++)
    if (sm->origins[i].origin == origin) o = &sm->origins[i];
  if (o == NULL) {
    if (sm->n_origins >= LR__SM_ORIGINS_MAX) return false; /* UNTESTED: no filter */
    struct lr__sm_origin *a = raft_realloc(sm->origins, (sm->n_origins + 1) * sizeof *a);
    if (a == NULL) return false; /* UNTESTED */
    sm->origins = a;
    o = &a[sm->n_origins++];
    *o = (struct lr__sm_origin){origin, req, 0};
    return false;
  }
  if (req > o->last) {
    uint64_t shift = req - o->last;
    o->window = shift > 64    ? 0
                : shift == 64 ? (uint64_t)1 << 63
                              : (o->window << shift) | ((uint64_t)1 << (shift - 1));
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

/* The part of apply that runs for a command envelope (not a digest). */
static int apply_command(struct lr_sm *sm, const struct raft_entry *e, struct lr_sm_result *res) {
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
  if (sm->halted) return 0;
  if (res->env.client != NULL &&
      lr__sm_sessions_put(&sm->sessions, res->env.client, res->env.client_len, res->env.seq,
                          e->index, res->status, res->data, res->len) != 0)
    return -1; /* UNTESTED: OOM */
  return 0;
}

int lr_sm_apply(struct lr_sm *sm, const struct raft_entry *e, struct lr_sm_result *res) {
  memset(res, 0, sizeof *res);
  res->status = LR_SM_NONE;
  if (sm->halted) {
    set_halted(sm, res);
    return 0;
  }
  raft_index prev = sm->applied;
  raft_term prev_term = sm->applied_term;
  sm->applied = e->index;
  sm->applied_term = e->term;
  if (e->type == RAFT_ENTRY_CONFIG) {
    struct raft_config c;
    if (raft_config_decode(e->data, e->len, &c) == 0) {
      lr__sm_digest_config(&sm->dg, &c);
      raft_config_free(&c);
    }
  }
  if (e->type != RAFT_ENTRY_NORMAL) return 0;
  int rc = 0;
  if (lr_env_decode(e->data, e->len, &res->env) != 0) {
    memset(&res->env, 0, sizeof res->env);
    set_message(sm, res, LR_SM_BAD_REQUEST, "%s", "malformed entry envelope");
  } else if (res->env.kind == LR_ENV_DIGEST) {
    lr__sm_apply_digest(sm, &res->env);  /* applied either way; no waiter */
    if (sm->halted) set_halted(sm, res); /* it showed this replica diverged */
    return 0;                            /* a report is no checkpoint */
  } else {
    rc = apply_command(sm, e, res);
  }
  if (sm->halted) { /* out of memory in this entry: it did not apply */
    sm->applied = prev;
    sm->applied_term = prev_term;
    set_halted(sm, res);
    return 0;
  }
  /* A checkpoint: a multiple of digest_entries holding a client entry (so
   * the DIGEST entries a checkpoint causes never make the next one). */
  if (lua_isfunction(sm->L, S_DIGEST) && sm->digest_entries != LR_SM_DIGEST_OFF &&
      e->index % sm->digest_entries == 0)
    lr__sm_take_digest(sm, e->index);
  return rc;
}

int lr_sm_query(struct lr_sm *sm, const void *q, size_t qlen, struct lr_sm_result *res) {
  lua_State *L = sm->L;
  char err[256];
  memset(res, 0, sizeof *res);
  if (sm->halted) {
    set_halted(sm, res);
    return 0;
  }
  if (!lua_isfunction(L, S_QUERY)) {
    set_message(sm, res, LR_SM_BAD_REQUEST, "%s", "the state machine has no query function");
    return 0;
  }
  uint64_t hard = sm->mem->hard;
  lua_pushvalue(L, S_QUERY);
  if (lr_decode(L, q, qlen, err, sizeof err) != 0) {
    lua_settop(L, S_TOP);
    if (sm->mem->hard != hard) {
      halt_memory(sm);
      set_halted(sm, res);
      return 0;
    }
    set_message(sm, res, LR_SM_BAD_REQUEST, "malformed query: %s", err);
    return 0;
  }
  lr__sm_call_begin(sm, L, (lua_Integer)sm->applied, -2);
  int rc = lua_pcall(L, 1, 1, S_HANDLER);
  lr__sm_call_end(sm, L, sm->mem, hard, rc);
  if (sm->halted) {
    lua_settop(L, S_TOP);
    set_halted(sm, res);
    return 0;
  }
  if (rc != LUA_OK) {
    size_t n;
    const char *msg = lua_tolstring(L, -1, &n);
    set_result(sm, res, LR_SM_BAD_REQUEST, msg, n);
    lua_settop(L, S_TOP);
    return 0;
  }
  sm->out.len = 0;
  int enc = encode_result(sm, res, err, sizeof err);
  lua_settop(L, S_TOP);
  if (enc < 0) {
    set_message(sm, res, LR_SM_BAD_REQUEST, "query returned a result that cannot be encoded: %s",
                err);
    return 0;
  }
  if (enc > 0) return 0;
  res->status = LR_SM_OK;
  res->data = sm->out.data;
  res->len = sm->out.len;
  return 0;
}

bool lr_sm_can_snapshot(const struct lr_sm *sm) {
  return sm->can_snapshot;
}

raft_index lr_sm_applied_index(const struct lr_sm *sm) {
  return sm->applied;
}
raft_term lr_sm_applied_term(const struct lr_sm *sm) {
  return sm->applied_term;
}
void lr_sm_set_applied(struct lr_sm *sm, raft_index index, raft_term term) {
  sm->applied = index;
  sm->applied_term = term;
}
uint32_t lr_sm_session_count(const struct lr_sm *sm) {
  return sm->sessions.count;
}
lua_State *lr_sm_lua(struct lr_sm *sm) {
  return sm->L;
}
