/* Lua binding of the node host (src/host):
 *
 *   core.node_new(opts, handler) -> node | nil, message
 *   core.sm_check(path, guards) -> true | nil, message
 *
 * (timers, signals, the log line and the wall clock are the loop binding's:
 * lhandles.c)
 *
 * Everything goes on luaraft__loop(L) (lloop.c: the default loop or luv's).
 * The node userdata's methods take a request id chosen by lua/raft/node.lua
 * and return true or nil, code, message at once; outcomes arrive later
 * through handler(event, ...), always called from a loop callback on the
 * main thread, never from inside one of these calls.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "host/host.h"
#include "lua/lraft.h"
#include "sm/sm.h"

#define NODE_MT "raft.node_handle"

/* ---- the node ------------------------------------------------------------ */
struct lnode {
  struct lr_node *n; /* NULL once stopped */
  lua_State *L;      /* the main thread */
  int handler_ref;
  /* state_machine = TABLE (sm.h, the in-state mode): the runner's thread,
   * which holds the table; released when the node stops, never during a
   * call into the table (those refuse node methods) */
  int sm_ref;
};

/* The state machine's functions run inside the host's drain (a libuv
 * callback): a node method there would re-enter it, and a waiting call would
 * run the loop inside the loop. */
static void not_in_sm(lua_State *L) {
  if (lr_sm_in_call(L))
    luaL_error(L, "raft.node: node methods cannot be called from inside a state machine's "
                  "apply/query/snapshot/restore/digest");
}

static void release_sm(lua_State *L, struct lnode *ln) {
  if (ln->sm_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, ln->sm_ref);
    ln->sm_ref = LUA_NOREF;
  }
}

static const char *const event_names[] = {
    [LR_EV_DONE] = "done",       [LR_EV_FAIL_ALL] = "fail_all", [LR_EV_ROLE] = "role",
    [LR_EV_LEADER] = "leader",   [LR_EV_COMMIT] = "commit",     [LR_EV_APPLY] = "apply",
    [LR_EV_MEMBERS] = "members", [LR_EV_SNAPSHOT] = "snapshot", [LR_EV_STOPPED] = "stopped"};

static void push_opt_str(lua_State *L, const char *s, size_t len, bool has) {
  if (has)
    lua_pushlstring(L, s, len);
  else
    lua_pushnil(L);
}

static void on_event(void *data, const struct lr_event *ev) {
  struct lnode *ln = data;
  lua_State *L = ln->L;
  if (ln->handler_ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ln->handler_ref);
  lua_pushstring(L, event_names[ev->type]);
  int nargs = 1;
  switch (ev->type) {
  case LR_EV_DONE:
    lua_pushinteger(L, (lua_Integer)ev->req);
    if (ev->code)
      lua_pushstring(L, ev->code);
    else
      lua_pushnil(L);
    push_opt_str(L, ev->data, ev->len, ev->has_data);
    lua_pushinteger(L, (lua_Integer)ev->index);
    lua_pushinteger(L, (lua_Integer)ev->term);
    nargs += 5;
    break;
  case LR_EV_FAIL_ALL:
  case LR_EV_STOPPED:
    lua_pushstring(L, ev->code ? ev->code : "stopped");
    push_opt_str(L, ev->data, ev->len, ev->has_data);
    nargs += 2;
    break;
  case LR_EV_ROLE:
    lua_pushstring(L, luaraft__role_name(ev->role, false));
    lua_pushinteger(L, (lua_Integer)ev->term);
    nargs += 2;
    break;
  case LR_EV_LEADER:
    if (ev->leader)
      lua_pushinteger(L, (lua_Integer)ev->leader);
    else
      lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)ev->term);
    nargs += 2;
    break;
  default:
    lua_pushinteger(L, (lua_Integer)ev->index);
    lua_pushinteger(L, (lua_Integer)ev->term);
    nargs += 2;
    break;
  }
  luaraft__call_main(L, nargs, "a node event handler");
}

static struct lnode *check_node(lua_State *L) {
  struct lnode *ln = luaL_checkudata(L, 1, NODE_MT);
  if (ln->n == NULL) luaL_error(L, "the node is stopped");
  not_in_sm(L);
  return ln;
}

static lua_Integer opt_int(lua_State *L, int t, const char *k, lua_Integer def) {
  lua_getfield(L, t, k);
  lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

static bool opt_bool(lua_State *L, int t, const char *k, bool def) {
  lua_getfield(L, t, k);
  bool v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* opt_str leaves the string on the stack (it must outlive the call). */
static const char *opt_str(lua_State *L, int t, const char *k, size_t *len) {
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) return NULL;
  return luaL_checklstring(L, -1, len);
}

/* A peer address as every entry point checks it (lua/raft/options.lua's
 * options.address says the same in Lua): a non-empty host, ':', a port of
 * 1-65535 in decimal digits. The core sees addresses as opaque text, so a
 * bad one is refused here, where it comes from Lua, rather than turning into
 * a member nobody can reach. */
static bool valid_address(const char *s) {
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s || strlen(s) > RAFT_ADDRESS_MAX) return false;
  const char *p = colon + 1;
  long port = 0;
  if (*p == '\0') return false;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    port = port * 10 + (*p - '0');
    if (port > 65535) return false;
  }
  return port >= 1;
}

#define ADDRESS_WANT "(want HOST:PORT with a port of 1-65535)"

/* peers: { [id] = "host:port", ... } -> a raft_config (voters). */
static int read_peers(lua_State *L, int t, struct raft_config *c) {
  lua_getfield(L, t, "peers");
  int pt = lua_gettop(L);
  c->n = 0;
  c->members = NULL;
  if (lua_isnil(L, pt)) return 0;
  luaL_checktype(L, pt, LUA_TTABLE);
  uint32_t count = 0;
  lua_pushnil(L);
  while (lua_next(L, pt)) {
    count++;
    lua_pop(L, 1);
  }
  if (count > LR_NODE_PEERS_MAX) return -1;
  c->members = lua_newuserdatauv(L, (count ? count : 1) * sizeof *c->members, 0);
  lua_pushnil(L);
  while (lua_next(L, pt)) {
    if (!lua_isinteger(L, -2) || lua_tointeger(L, -2) <= 0 || lua_type(L, -1) != LUA_TSTRING)
      return -1;
    if (!valid_address(lua_tostring(L, -1)))
      return luaL_error(L, "bad address '%s' for peer %d " ADDRESS_WANT, lua_tostring(L, -1),
                        (int)lua_tointeger(L, -2));
    c->members[c->n].id = (raft_id)lua_tointeger(L, -2);
    c->members[c->n].role = RAFT_VOTER;
    c->members[c->n].address = (char *)lua_tostring(L, -1); /* anchored by peers */
    c->n++;
    lua_pop(L, 1);
  }
  return 0;
}

/* The runner's determinism options (node.lua checked them): apply_budget
 * (instructions or false), memory_max (bytes), digest_entries (or false). */
static void read_guards(lua_State *L, int t, struct lr_sm_options *so) {
  lua_getfield(L, t, "apply_budget");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    so->apply_budget = LR_SM_BUDGET_OFF;
  else if (!lua_isnil(L, -1))
    so->apply_budget = (uint64_t)luaL_checknumber(L, -1);
  lua_getfield(L, t, "memory_max");
  if (!lua_isnil(L, -1)) so->memory_max = (size_t)luaL_checknumber(L, -1);
  lua_getfield(L, t, "digest_entries");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    so->digest_entries = LR_SM_DIGEST_OFF;
  else if (!lua_isnil(L, -1))
    so->digest_entries = (uint32_t)luaL_checkinteger(L, -1);
  lua_getfield(L, t, "max_result_bytes"); /* false: no bound */
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    so->max_result_bytes = LR_SM_RESULT_OFF;
  else if (!lua_isnil(L, -1))
    so->max_result_bytes = (size_t)luaL_checkinteger(L, -1);
  lua_pop(L, 4);
}

static int l_node_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  not_in_sm(L);
  struct lr_node_options o;
  memset(&o, 0, sizeof o);
  o.loop = luaraft__loop(L);
  o.id = (raft_id)opt_int(L, 1, "id", 0);
  if (read_peers(L, 1, &o.peers) != 0)
    return luaL_error(L, "peers must map positive integer ids to \"host:port\" strings");
  o.join = opt_bool(L, 1, "join", false);
  o.listen = opt_str(L, 1, "listen", NULL);
  size_t len = 0;
  const char *storage = opt_str(L, 1, "storage", NULL);
  o.storage = storage && strcmp(storage, "memory") == 0 ? LR_STORE_MEMORY : LR_STORE_SQLITE;
  o.data_dir = opt_str(L, 1, "data_dir", NULL);
  o.election_ms = (uint32_t)opt_int(L, 1, "election_ms", 300);
  o.heartbeat_ms = (uint32_t)opt_int(L, 1, "heartbeat_ms", 50);
  o.pre_vote = opt_bool(L, 1, "pre_vote", true);
  o.check_quorum = opt_bool(L, 1, "check_quorum", true);
  o.snapshot_entries = (uint64_t)opt_int(L, 1, "snapshot_entries", 10000);
  o.secret = opt_str(L, 1, "secret", &len);
  o.secret_len = len;
  o.cluster_name = opt_str(L, 1, "cluster_name", NULL);
  o.tls_cert = opt_str(L, 1, "tls_cert", NULL);
  o.tls_key = opt_str(L, 1, "tls_key", NULL);
  o.tls_ca = opt_str(L, 1, "tls_ca", NULL);
  o.allow_faults = opt_bool(L, 1, "allow_faults", false);
  const char *level = opt_str(L, 1, "log_level", NULL);
  o.log_level = level ? lr_log_level_parse(level) : RAFT_LOG_INFO;
  if (o.log_level < 0) return luaL_error(L, "log_level must be error, warn, info or debug");
  o.sm_path = opt_str(L, 1, "sm_path", NULL);
  o.sm_chunk = opt_str(L, 1, "sm_chunk", &len);
  o.sm_chunk_len = len;
  struct lr_sm_options so = {.path = o.sm_path,
                             .chunk = o.sm_chunk,
                             .chunk_len = o.sm_chunk_len,
                             .chunkname = "=state_machine"};
  read_guards(L, 1, &so);
  lua_getfield(L, 1, "sm_table");
  int sm_table = lua_gettop(L);
  if (!lua_isnil(L, sm_table)) luaL_checktype(L, sm_table, LUA_TTABLE);

  struct lnode *ln = lua_newuserdatauv(L, sizeof *ln, 0);
  ln->n = NULL;
  ln->L = luaraft__main_thread(L);
  ln->handler_ref = LUA_NOREF;
  ln->sm_ref = LUA_NOREF;
  luaL_setmetatable(L, NODE_MT);
  if (lua_istable(L, sm_table)) {
    /* the runner's own thread of this state, holding just the table */
    lua_State *T = lua_newthread(L);
    lua_pushvalue(L, sm_table);
    lua_xmove(L, T, 1);
    ln->sm_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    so.thread = T;
  }
  o.sm = &so;
  char err[512];
  if (lr_node_start(&o, on_event, ln, &ln->n, err, sizeof err) != 0) {
    release_sm(L, ln);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushvalue(L, 2);
  ln->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

/* A halted state machine (sm.h) answers nothing: "stopped" with the reason. */
static int halted(lua_State *L, struct lnode *ln) {
  struct lr_sm_status sm;
  if (!lr_node_sm_status(ln->n, &sm)) return 0;
  lua_pushnil(L);
  lua_pushliteral(L, "stopped");
  lua_pushfstring(L, "the state machine halted: %s", sm.reason);
  return 3;
}

static uint64_t check_req(lua_State *L, int i) {
  return (uint64_t)luaL_checkinteger(L, i);
}

/* node:propose(req, cmd_bytes, client, seq, wait) */
static int l_propose(lua_State *L) {
  struct lnode *ln = check_node(L);
  uint64_t req = check_req(L, 2);
  size_t len, clen = 0;
  const char *cmd = luaL_checklstring(L, 3, &len);
  const char *client = luaL_optlstring(L, 4, NULL, &clen);
  uint64_t seq = (uint64_t)luaL_optinteger(L, 5, 0);
  int wait = lua_toboolean(L, 6) ? LR_WAIT_COMMIT : LR_WAIT_APPLY;
  if (halted(L, ln)) return 3;
  return luaraft__push_rv(L, lr_node_propose(ln->n, req, cmd, len, client, clen, seq, wait));
}

/* node:read(req, mode, q_bytes) */
static int l_read(lua_State *L) {
  static const char *const modes[] = {"linearizable", "lease", "stale", "barrier", NULL};
  struct lnode *ln = check_node(L);
  uint64_t req = check_req(L, 2);
  int mode = luaL_checkoption(L, 3, "linearizable", modes);
  size_t len = 0;
  const char *q = luaL_optlstring(L, 4, "", &len);
  if (halted(L, ln)) return 3;
  return luaraft__push_rv(L, lr_node_read(ln->n, req, mode, q, len));
}

/* node:change(req, "add"|"learner"|"promote"|"remove", id, address, force) */
static int l_change(lua_State *L) {
  static const char *const kinds[] = {"add", "learner", "promote", "remove", NULL};
  static const int kk[] = {RAFT_ADD_VOTER, RAFT_ADD_LEARNER, RAFT_PROMOTE, RAFT_REMOVE};
  struct lnode *ln = check_node(L);
  uint64_t req = check_req(L, 2);
  int kind = luaL_checkoption(L, 3, NULL, kinds);
  raft_id id = (raft_id)luaL_checkinteger(L, 4);
  const char *addr = luaL_optstring(L, 5, "");
  unsigned flags = lua_toboolean(L, 6) ? RAFT_CHANGE_FORCE : 0;
  if ((kk[kind] == RAFT_ADD_VOTER || kk[kind] == RAFT_ADD_LEARNER) && !valid_address(addr))
    return luaL_error(L, "bad address '%s' " ADDRESS_WANT, addr);
  return luaraft__push_rv(L, lr_node_change(ln->n, req, kk[kind], id, addr, flags));
}

static int l_transfer(lua_State *L) {
  struct lnode *ln = check_node(L);
  uint64_t req = check_req(L, 2);
  raft_id to = (raft_id)luaL_optinteger(L, 3, 0);
  return luaraft__push_rv(L, lr_node_transfer(ln->n, req, to));
}

/* node:forget(req): the request timed out; the driver stops sending it. */
static int l_forget(lua_State *L) {
  struct lnode *ln = check_node(L);
  lr_node_forget(ln->n, check_req(L, 2));
  return 0;
}

static int l_step_down(lua_State *L) {
  struct lnode *ln = check_node(L);
  return luaraft__push_rv(L, lr_node_step_down(ln->n));
}

static int l_snapshot(lua_State *L) {
  struct lnode *ln = check_node(L);
  char err[256];
  if (lr_node_snapshot(ln->n, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, "bad_request");
    lua_pushstring(L, err);
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* true, or nil, "bad_request", why for a node started without faults */
static int faults_result(lua_State *L, int rv) {
  if (rv != 0) {
    lua_pushnil(L);
    lua_pushstring(L, "bad_request");
    lua_pushstring(L, "faults are not allowed (start the node with --allow-faults)");
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* node:faults({ids}): drop all traffic with these peers ({} heals) */
static int l_faults(lua_State *L) {
  struct lnode *ln = check_node(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  raft_id ids[LR_NODE_PEERS_MAX];
  size_t count = 0;
  for (lua_Integer i = 1; count < LR_NODE_PEERS_MAX; i++) {
    lua_rawgeti(L, 2, i);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      break;
    }
    ids[count++] = (raft_id)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  return faults_result(L, lr_node_faults(ln->n, ids, count));
}

/* node:fail_writes(n): the next n storage writes fail (tests) */
static int l_fail_writes(lua_State *L) {
  struct lnode *ln = check_node(L);
  return faults_result(L, lr_node_fail_writes(ln->n, (int)luaL_checkinteger(L, 2)));
}

/* The state machine's guards at the top of status(), as raft.sim shows them
 * (API.md section 7): halted, halt_reason, diverged, digests, budget and
 * memory figures. */
static void push_guards(lua_State *L, const struct lr_sm_status *sm) {
  lua_pushboolean(L, sm->halted);
  lua_setfield(L, -2, "halted");
  if (sm->halted) {
    lua_pushstring(L, sm->reason);
    lua_setfield(L, -2, "halt_reason");
  }
  if (sm->diverged) {
    lua_createtable(L, 0, 3);
    luaraft__set_int(L, "index", sm->diverged_index);
    lua_pushlstring(L, sm->mine, sm->mine_len);
    lua_setfield(L, -2, "mine");
    lua_pushlstring(L, sm->majority, sm->majority_len);
    lua_setfield(L, -2, "majority");
    lua_setfield(L, -2, "diverged");
  }
  lua_createtable(L, 0, 3);
  luaraft__set_int(L, "taken", sm->digests_taken);
  luaraft__set_int(L, "matched", sm->digests_matched);
  luaraft__set_int(L, "mismatches", sm->digest_mismatches);
  lua_setfield(L, -2, "digests");
  luaraft__set_int(L, "budget_exceeded", sm->budget_exceeded);
  luaraft__set_int(L, "memory_used", sm->memory_used);
  luaraft__set_int(L, "memory_max", sm->memory_max);
}

/* core.sm_check(path, {apply_budget =, memory_max =}) -> true | nil, msg:
 * loads the script the way a node does (sandboxed, its top level on the
 * instruction budget and memory limit) and drops it, so a script that loops,
 * writes files or exits at its top level is refused before anything runs
 * outside the sandbox. */
static int l_sm_check(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct lr_sm_options so = {.path = path, .chunkname = "=state_machine"};
  if (lua_istable(L, 2)) read_guards(L, 2, &so);
  struct lr_sm *sm = NULL;
  char err[512];
  if (lr_sm_new(&so, &sm, err, sizeof err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lr_sm_free(sm);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_status(lua_State *L) {
  struct lnode *ln = check_node(L);
  struct raft_status s;
  lr_node_status(ln->n, &s);
  lua_createtable(L, 0, 12);
  luaraft__set_int(L, "id", s.id);
  char cid[17];
  snprintf(cid, sizeof cid, "%016llx", (unsigned long long)lr_node_cluster_id(ln->n));
  lua_pushstring(L, cid);
  lua_setfield(L, -2, "cluster_id");
  lua_pushstring(L, s.is_learner ? "learner" : luaraft__role_name(s.role, false));
  lua_setfield(L, -2, "role");
  luaraft__set_int(L, "term", s.term);
  if (s.leader) luaraft__set_int(L, "leader", s.leader);
  luaraft__set_int(L, "commit_index", s.commit);
  luaraft__set_int(L, "applied_index", lr_node_applied(ln->n));
  luaraft__set_int(L, "last_index", s.last_index);
  luaraft__set_int(L, "snapshot_index", s.snapshot_index);
  lua_pushboolean(L, s.is_member);
  lua_setfield(L, -2, "is_member");
  lua_createtable(L, s.config ? (int)s.config->n : 0, 0);
  for (uint32_t i = 0; s.config && i < s.config->n; i++) {
    const struct raft_member *m = &s.config->members[i];
    lua_createtable(L, 0, 4);
    luaraft__set_int(L, "id", m->id);
    lua_pushstring(L, m->address);
    lua_setfield(L, -2, "address");
    lua_pushstring(L, m->role == RAFT_LEARNER ? "learner" : "voter");
    lua_setfield(L, -2, "role");
    if (m->id != s.id) {
      lua_pushboolean(L, lr_node_peer_up(ln->n, m->id));
      lua_setfield(L, -2, "connected");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "members");
  struct lr_sm_status sm;
  lr_node_sm_status(ln->n, &sm);
  lua_createtable(L, 0, 8);
  lua_pushboolean(L, sm.halted);
  lua_setfield(L, -2, "halted");
  if (sm.halted) {
    lua_pushstring(L, sm.reason);
    lua_setfield(L, -2, "reason");
  }
  luaraft__set_int(L, "digests_taken", sm.digests_taken);
  luaraft__set_int(L, "digests_matched", sm.digests_matched);
  luaraft__set_int(L, "digest_mismatches", sm.digest_mismatches);
  luaraft__set_int(L, "budget_exceeded", sm.budget_exceeded);
  luaraft__set_int(L, "memory_used", sm.memory_used);
  luaraft__set_int(L, "memory_max", sm.memory_max);
  lua_setfield(L, -2, "state_machine");
  push_guards(L, &sm);
  /* snapshot transfers in progress (host.h), both ways */
  struct lr_snapshot_transfer xf[LR_NODE_PEERS_MAX];
  uint32_t nx = lr_node_snapshot_transfers(ln->n, xf, LR_NODE_PEERS_MAX);
  lua_createtable(L, (int)nx, 0);
  for (uint32_t i = 0; i < nx; i++) {
    lua_createtable(L, 0, 8);
    luaraft__set_int(L, "peer", xf[i].peer);
    lua_pushstring(L, xf[i].incoming ? "in" : "out");
    lua_setfield(L, -2, "direction");
    luaraft__set_int(L, "index", xf[i].index);
    luaraft__set_int(L, "bytes", xf[i].bytes);
    luaraft__set_int(L, "total", xf[i].total);
    lua_pushnumber(L, xf[i].rate);
    lua_setfield(L, -2, "rate");
    if (xf[i].eta_s >= 0) {
      lua_pushnumber(L, xf[i].eta_s);
      lua_setfield(L, -2, "eta_s");
    }
    luaraft__set_int(L, "idle_ms", xf[i].idle_ms);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "snapshot_transfers");
  uint64_t sent, received;
  lr_node_snapshot_bytes(ln->n, &sent, &received);
  luaraft__set_int(L, "snapshot_bytes_sent", sent);
  luaraft__set_int(L, "snapshot_bytes_received", received);
  return 1;
}

static int l_metrics(lua_State *L) {
  struct lnode *ln = check_node(L);
  struct lr_node_metrics m;
  lr_node_metrics(ln->n, &m);
  struct luaraft_net_counts net = {.bad_frames = m.net_bad_frames,
                                   .handshake_failures = m.net_handshake_failures,
                                   .frames_dropped = m.net_frames_dropped,
                                   .peers = m.peers,
                                   .peers_up = m.peers_up};
  struct raft_progress_info pi[LR_NODE_PEERS_MAX];
  uint32_t np = lr_node_progress(ln->n, pi, LR_NODE_PEERS_MAX);
  luaraft__push_metrics(L, &m.drive, &net, pi, np);
  return 1;
}

static int l_subscribe(lua_State *L) {
  struct lnode *ln = check_node(L);
  int type =
      luaL_checkoption(L, 2, NULL,
                       (const char *const[]){"done", "fail_all", "role", "leader", "commit",
                                             "apply", "members", "snapshot", "stopped", NULL}) +
      1;
  lr_node_subscribe(ln->n, type, lua_toboolean(L, 3));
  return 0;
}

static int l_node_stop(lua_State *L) {
  struct lnode *ln = luaL_checkudata(L, 1, NODE_MT);
  if (ln->n) {
    not_in_sm(L);
    lr_node_stop(ln->n); /* the runner makes no more calls (drive.c stops) */
    ln->n = NULL;
  }
  release_sm(L, ln);
  if (ln->handler_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, ln->handler_ref);
    ln->handler_ref = LUA_NOREF;
  }
  return 0;
}

static int l_node_id(lua_State *L) {
  struct lnode *ln = check_node(L);
  lua_pushinteger(L, (lua_Integer)lr_node_id(ln->n));
  return 1;
}

static int l_node_address(lua_State *L) {
  struct lnode *ln = check_node(L);
  const char *a = lr_node_address(ln->n, (raft_id)luaL_checkinteger(L, 2));
  if (a)
    lua_pushstring(L, a);
  else
    lua_pushnil(L);
  return 1;
}

void luaraft__node_open(lua_State *L) {
  static const luaL_Reg node_methods[] = {{"propose", l_propose},
                                          {"forget", l_forget},
                                          {"read", l_read},
                                          {"change", l_change},
                                          {"transfer", l_transfer},
                                          {"step_down", l_step_down},
                                          {"snapshot", l_snapshot},
                                          {"faults", l_faults},
                                          {"fail_writes", l_fail_writes},
                                          {"status", l_status},
                                          {"metrics", l_metrics},
                                          {"subscribe", l_subscribe},
                                          {"stop", l_node_stop},
                                          {"id", l_node_id},
                                          {"address", l_node_address},
                                          {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"node_new", l_node_new}, {"sm_check", l_sm_check}, {NULL, NULL}};
  luaraft__new_metatable(L, NODE_MT, node_methods, l_node_stop);
  luaL_setfuncs(L, funcs, 0);
}
