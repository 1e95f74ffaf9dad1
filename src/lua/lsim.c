/* The simulator binding: core.sim_new(options) -> a "luaraft.sim" userdata
 * with the low-level methods lua/raft/sim.lua builds raft.sim from. Thin:
 * converts arguments, calls src/sim/, returns plain values. */
#include <string.h>

#include "lua/lraft.h"
#include "sim/sim.h"

#define SIM_MT "luaraft.sim"

struct lsim {
  struct lr_sim *s;
  struct lr_buf buf; /* encoded commands/queries */
};

static struct lsim *check(lua_State *L) {
  struct lsim *ls = luaL_checkudata(L, 1, SIM_MT);
  if (ls->s == NULL) luaL_error(L, "the simulator is closed");
  return ls;
}

static raft_id check_id(lua_State *L, int idx) {
  lua_Integer id = luaL_checkinteger(L, idx);
  luaL_argcheck(L, id > 0, idx, "node ids are positive integers");
  return (raft_id)id;
}

static uint32_t opt_u32(lua_State *L, int t, const char *field, uint32_t def) {
  lua_getfield(L, t, field);
  lua_Integer v = luaL_optinteger(L, -1, def);
  if (v < 0 || v > UINT32_MAX) luaL_error(L, "option %s must be a non-negative integer", field);
  lua_pop(L, 1);
  return (uint32_t)v;
}

static bool opt_bool(lua_State *L, int t, const char *field, bool def) {
  lua_getfield(L, t, field);
  bool v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static void opt_range(lua_State *L, int t, const char *field, uint32_t *lo, uint32_t *hi) {
  lua_getfield(L, t, field);
  if (lua_istable(L, -1)) {
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    *lo = (uint32_t)luaL_checkinteger(L, -2);
    *hi = (uint32_t)luaL_optinteger(L, -1, *lo);
    lua_pop(L, 2);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "option %s must be a {lo, hi} table of milliseconds", field);
  }
  lua_pop(L, 1);
}

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  return lr_buf_append(ud, p, sz) == 0 ? 0 : 1;
}

/* A factory function travels to each node's Lua state as bytecode, which
 * only works when it needs nothing from this state but globals. */
static void dump_factory(lua_State *L, int idx, struct lr_buf *out) {
  const char *name;
  if (lua_iscfunction(L, idx))
    luaL_error(L, "state_machine must be a Lua function or a path to a script");
  for (int i = 1; (name = lua_getupvalue(L, idx, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      luaL_error(L,
                 "state_machine function uses the local '%s' from outside: each node runs "
                 "it in its own Lua state, where only globals exist; move the locals inside "
                 "the function or give a path (state_machine = \"sm.lua\")",
                 name);
  }
  lua_pushvalue(L, idx);
  if (lua_dump(L, dump_writer, out, 0) != 0) luaL_error(L, "cannot dump state_machine: no memory");
  lua_pop(L, 1);
}

static int sim_new(lua_State *L) {
  struct lr_sim_options o;
  struct lr_buf chunk;
  char err[256];
  memset(&o, 0, sizeof o);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "nodes");
  if (lua_istable(L, -1)) {
    lua_Integer n = luaL_len(L, -1);
    luaL_argcheck(L, n >= 1 && n <= LR_SIM_NODES_MAX, 1, "nodes: 1 to 32 ids");
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      o.ids[i - 1] = (raft_id)luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    }
    o.n_nodes = (uint32_t)n;
  } else {
    lua_Integer n = luaL_optinteger(L, -1, 3);
    luaL_argcheck(L, n >= 1 && n <= LR_SIM_NODES_MAX, 1, "nodes: a count from 1 to 32");
    for (lua_Integer i = 1; i <= n; i++)
      o.ids[i - 1] = (raft_id)i;
    o.n_nodes = (uint32_t)n;
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "seed");
  o.seed = (uint64_t)luaL_optinteger(L, -1, 1);
  lua_pop(L, 1);
  o.raft.election_ms = opt_u32(L, 1, "election_ms", 300);
  o.raft.heartbeat_ms = opt_u32(L, 1, "heartbeat_ms", 50);
  o.raft.pre_vote = opt_bool(L, 1, "pre_vote", true);
  o.raft.check_quorum = opt_bool(L, 1, "check_quorum", true);
  o.raft.max_entry_bytes = opt_u32(L, 1, "max_entry_bytes", 0);
  o.raft.max_inflight_msgs = opt_u32(L, 1, "max_inflight_msgs", 0);
  o.raft.max_append_bytes = opt_u32(L, 1, "max_append_bytes", 0);
  o.raft.snapshot_chunk_bytes = opt_u32(L, 1, "snapshot_chunk_bytes", 0);
  o.raft.snapshot_trailing = opt_u32(L, 1, "snapshot_trailing", 0);
  o.snapshot_entries = opt_u32(L, 1, "snapshot_entries", 10000);
  o.sm.max_sessions = opt_u32(L, 1, "max_sessions", 0);
  o.disk_lo = 0;
  o.disk_hi = 2;
  opt_range(L, 1, "disk_ms", &o.disk_lo, &o.disk_hi);
  o.net_lo = 1;
  o.net_hi = 5;
  opt_range(L, 1, "delay", &o.net_lo, &o.net_hi);
  o.no_checks = !opt_bool(L, 1, "checks", true);
  /* determinism guards (README "Deterministic state machines") */
  lua_getfield(L, 1, "apply_budget");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    o.sm.apply_budget = LR_SM_BUDGET_OFF;
  else if (!lua_isnil(L, -1)) {
    lua_Integer b = luaL_checkinteger(L, -1);
    luaL_argcheck(L, b > 0, 1, "apply_budget must be a positive number of instructions or false");
    o.sm.apply_budget = (uint64_t)b;
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "digest_entries");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    o.sm.digest_entries = LR_SM_DIGEST_OFF;
  else
    o.sm.digest_entries = opt_u32(L, 1, "digest_entries", 0);
  lua_pop(L, 1);
  lua_getfield(L, 1, "memory_max");
  if (!lua_isnil(L, -1)) {
    lua_Integer m = luaL_checkinteger(L, -1);
    luaL_argcheck(L, m >= 65536, 1, "memory_max must be at least 65536 bytes");
    o.sm.memory_max = (size_t)m;
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "node_memory_max"); /* { [id] = bytes }: a node with less memory */
  if (lua_istable(L, -1)) {
    for (uint32_t i = 0; i < o.n_nodes; i++) {
      lua_rawgeti(L, -1, (lua_Integer)o.ids[i]);
      if (!lua_isnil(L, -1)) {
        lua_Integer m = luaL_checkinteger(L, -1);
        luaL_argcheck(L, m >= 65536, 1, "node_memory_max values must be at least 65536 bytes");
        o.node_memory_max[i] = (size_t)m;
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "trace");
  if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "messages") == 0)
    o.trace = LR_SIM_TRACE_MESSAGES;
  else
    o.trace = (lua_isnil(L, -1) || lua_toboolean(L, -1)) ? LR_SIM_TRACE_EVENTS : LR_SIM_TRACE_OFF;
  lua_pop(L, 1);

  lr_buf_init(&chunk);
  lua_getfield(L, 1, "state_machine");
  int smi = lua_gettop(L);
  if (lua_type(L, smi) == LUA_TSTRING) {
    o.sm.path = lua_tostring(L, smi);
  } else if (lua_isfunction(L, smi)) {
    dump_factory(L, smi, &chunk); /* raises before anything is allocated but chunk */
    o.sm.chunk = chunk.data;
    o.sm.chunk_len = chunk.len;
    o.sm.chunkname = "=state_machine";
  } else if (lua_istable(L, smi)) {
    return luaL_argerror(L, 1,
                         "state_machine cannot be a table in raft.sim: each simulated "
                         "node runs it in its own Lua state, so give a path or a function "
                         "returning a fresh table (tables work with raft.node)");
  } else {
    return luaL_argerror(L, 1,
                         "state_machine must be a path or a function returning the "
                         "state machine table");
  }
  struct lsim *ls = lua_newuserdatauv(L, sizeof *ls, 0);
  memset(ls, 0, sizeof *ls);
  luaL_setmetatable(L, SIM_MT);
  int rc = lr_sim_new(&o, &ls->s, err, sizeof err);
  lr_buf_free(&chunk);
  if (rc != 0) {
    ls->s = NULL;
    return luaL_error(L, "raft.sim: %s", err);
  }
  lr_buf_init(&ls->buf);
  return 1;
}

static int sim_gc(lua_State *L) {
  struct lsim *ls = luaL_checkudata(L, 1, SIM_MT);
  if (ls->s) {
    lr_sim_free(ls->s);
    lr_buf_free(&ls->buf);
    ls->s = NULL;
  }
  return 0;
}

static int sim_now(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lr_sim_now(check(L)->s));
  return 1;
}

static int sim_run(lua_State *L) {
  struct lsim *ls = check(L);
  lua_Integer until = luaL_checkinteger(L, 2);
  if (until > (lua_Integer)lr_sim_now(ls->s)) lr_sim_run(ls->s, (uint64_t)until);
  return 0;
}

static int sim_step(lua_State *L) {
  struct lsim *ls = check(L);
  lua_pushboolean(L, lr_sim_step(ls->s, (uint64_t)luaL_checkinteger(L, 2)));
  return 1;
}

static const char *encode_arg(lua_State *L, struct lsim *ls, int idx, size_t *len) {
  char err[256];
  ls->buf.len = 0;
  if (lr_encode(L, idx, &ls->buf, err, sizeof err) != 0) luaL_argerror(L, idx, err);
  *len = ls->buf.len;
  return ls->buf.data;
}

/* propose(node, cmd, client|nil, seq|nil, timeout_ms) -> id */
static int sim_propose(lua_State *L) {
  struct lsim *ls = check(L);
  raft_id node = check_id(L, 2);
  size_t len, clen = 0;
  const char *client = luaL_optlstring(L, 4, NULL, &clen);
  lua_Integer seq = luaL_optinteger(L, 5, 0);
  lua_Integer timeout = luaL_optinteger(L, 6, 5000);
  luaL_argcheck(L, client == NULL || (clen > 0 && clen <= LR_ENV_CLIENT_MAX), 4,
                "client must be a non-empty string of at most 256 bytes");
  luaL_argcheck(L, client == NULL || seq > 0, 5, "seq must be a positive integer");
  const char *cmd = encode_arg(L, ls, 3, &len);
  uint64_t id = lr_sim_propose(ls->s, node, cmd, len, client, clen, (uint64_t)seq,
                               (uint64_t)(timeout > 0 ? timeout : 1));
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* propose_many(node, cmd, n, client|nil, seq|nil, timeout_ms) -> first id:
 * n proposals of cmd (encoded once), ids first .. first + n - 1; with a
 * client, sequence numbers seq .. seq + n - 1 */
static int sim_propose_many(lua_State *L) {
  struct lsim *ls = check(L);
  raft_id node = check_id(L, 2);
  lua_Integer n = luaL_checkinteger(L, 4);
  size_t len, clen = 0;
  const char *client = luaL_optlstring(L, 5, NULL, &clen);
  lua_Integer seq = luaL_optinteger(L, 6, 0);
  lua_Integer timeout = luaL_optinteger(L, 7, 5000);
  luaL_argcheck(L, n >= 0 && n <= UINT32_MAX, 4, "n must be a non-negative integer");
  luaL_argcheck(L, client == NULL || (clen > 0 && clen <= LR_ENV_CLIENT_MAX), 5,
                "client must be a non-empty string of at most 256 bytes");
  luaL_argcheck(L, client == NULL || seq > 0, 6, "seq must be a positive integer");
  luaL_argcheck(L, client == NULL || seq <= LUA_MAXINTEGER - n, 6, "seq + n is too large");
  const char *cmd = encode_arg(L, ls, 3, &len);
  uint64_t id = lr_sim_propose_many(ls->s, node, cmd, len, (uint32_t)n, client, clen, (uint64_t)seq,
                                    (uint64_t)(timeout > 0 ? timeout : 1));
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* read(node, consistency, q, timeout_ms) -> id */
static int sim_read(lua_State *L) {
  static const char *const kinds[] = {"linearizable", "lease", "stale", "barrier", NULL};
  struct lsim *ls = check(L);
  raft_id node = check_id(L, 2);
  /* the order of LR_READ_* (drive.h), the one read-mode enum */
  int mode = luaL_checkoption(L, 3, "linearizable", kinds);
  lua_Integer timeout = luaL_optinteger(L, 5, 5000);
  size_t len;
  const char *q = encode_arg(L, ls, 4, &len);
  uint64_t id = lr_sim_read(ls->s, node, mode, q, len, (uint64_t)(timeout > 0 ? timeout : 1));
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* change(node, "add_voter"|"add_learner"|"promote"|"remove", target, address, timeout, force) */
static int sim_change(lua_State *L) {
  static const char *const kinds[] = {"add_voter", "add_learner", "promote", "remove", NULL};
  struct lsim *ls = check(L);
  raft_id node = check_id(L, 2);
  int kind = luaL_checkoption(L, 3, NULL, kinds) + 1;
  raft_id target = check_id(L, 4);
  const char *address = luaL_optstring(L, 5, "");
  lua_Integer timeout = luaL_optinteger(L, 6, 5000);
  unsigned flags = lua_toboolean(L, 7) ? RAFT_CHANGE_FORCE : 0;
  uint64_t id = lr_sim_change(ls->s, node, kind, target, address, flags,
                              (uint64_t)(timeout > 0 ? timeout : 1));
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

/* completion() -> id, time, code|false, data, index, term, leader | nil */
static int sim_completion(lua_State *L) {
  struct lsim *ls = check(L);
  struct lr_sim_completion c;
  if (!lr_sim_next_completion(ls->s, &c)) return 0;
  lua_pushinteger(L, (lua_Integer)c.id);
  lua_pushinteger(L, (lua_Integer)c.time);
  if (c.code)
    lua_pushstring(L, c.code);
  else
    lua_pushboolean(L, 0);
  lua_pushlstring(L, c.data ? c.data : "", c.len);
  lua_pushinteger(L, (lua_Integer)c.index);
  lua_pushinteger(L, (lua_Integer)c.term);
  lua_pushinteger(L, (lua_Integer)c.leader);
  return 7;
}

static int sim_transfer(lua_State *L) {
  struct lsim *ls = check(L);
  return luaraft__push_rv(
      L, lr_sim_transfer(ls->s, check_id(L, 2), (raft_id)luaL_optinteger(L, 3, 0)));
}

static int sim_step_down(lua_State *L) {
  struct lsim *ls = check(L);
  return luaraft__push_rv(L, lr_sim_step_down(ls->s, check_id(L, 2)));
}

static int push_err(lua_State *L, int rc, const char *err) {
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

static int sim_snapshot(lua_State *L) {
  struct lsim *ls = check(L);
  char err[256] = "";
  int rc = lr_sim_snapshot_now(ls->s, check_id(L, 2), err, sizeof err);
  return push_err(L, rc, err);
}

static int sim_crash(lua_State *L) {
  struct lsim *ls = check(L);
  return push_err(L, lr_sim_crash(ls->s, check_id(L, 2)), "no such running node");
}

static int sim_restart(lua_State *L) {
  struct lsim *ls = check(L);
  char err[256] = "";
  int rc = lr_sim_restart(ls->s, check_id(L, 2), err, sizeof err);
  return push_err(L, rc, err);
}

static int sim_add_node(lua_State *L) {
  struct lsim *ls = check(L);
  char err[256] = "";
  int rc = lr_sim_add_node(ls->s, check_id(L, 2), err, sizeof err);
  return push_err(L, rc, err);
}

/* fail_writes(id, n): the next n disk writes of the node fail */
static int sim_fail_writes(lua_State *L) {
  struct lsim *ls = check(L);
  lua_Integer n = luaL_checkinteger(L, 3);
  luaL_argcheck(L, n >= 0 && n <= UINT32_MAX, 3, "a count of writes");
  return luaraft__push_rv(L, lr_sim_fail_writes(ls->s, check_id(L, 2), (uint32_t)n));
}

/* partition(ids, groups) */
static int sim_partition(lua_State *L) {
  struct lsim *ls = check(L);
  raft_id ids[LR_SIM_NODES_MAX];
  int groups[LR_SIM_NODES_MAX];
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 2);
  luaL_argcheck(L, n <= LR_SIM_NODES_MAX, 2, "too many nodes");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    lua_rawgeti(L, 3, i);
    ids[i - 1] = (raft_id)luaL_checkinteger(L, -2);
    groups[i - 1] = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 2);
  }
  lr_sim_partition(ls->s, ids, groups, (uint32_t)n);
  return 0;
}

static int sim_heal(lua_State *L) {
  lr_sim_heal(check(L)->s);
  return 0;
}

/* net(drop, duplicate, lo, hi, reorder) */
static int sim_net(lua_State *L) {
  struct lsim *ls = check(L);
  lr_sim_net(ls->s, luaL_optnumber(L, 2, 0), luaL_optnumber(L, 3, 0),
             (uint32_t)luaL_optinteger(L, 4, 1), (uint32_t)luaL_optinteger(L, 5, 5),
             lua_toboolean(L, 6));
  return 0;
}

/* link(a, b, drop|nil (nil: clear), lo, hi) */
static int sim_link(lua_State *L) {
  struct lsim *ls = check(L);
  double drop = lua_isnoneornil(L, 4) ? -1 : luaL_checknumber(L, 4);
  int rv = lr_sim_link(ls->s, check_id(L, 2), check_id(L, 3), drop,
                       (uint32_t)luaL_optinteger(L, 5, 1), (uint32_t)luaL_optinteger(L, 6, 5));
  return luaraft__push_rv(L, rv);
}

/* status(id) -> the node:status() table (API.md), plus up/incarnation */
static int sim_status(lua_State *L) {
  struct lsim *ls = check(L);
  raft_id id = check_id(L, 2);
  struct lr_sim_node_status st;
  if (lr_sim_status(ls->s, id, &st) != 0) return 0;
  lua_createtable(L, 0, 16);
  luaraft__set_int(L, "id", id);
  lua_pushboolean(L, st.up);
  lua_setfield(L, -2, "up");
  luaraft__set_int(L, "incarnation", st.incarnation);
  if (!st.up) {
    lua_pushliteral(L, "stopped");
    lua_setfield(L, -2, "role");
    return 1;
  }
  lua_pushstring(L, luaraft__role_name(st.raft.role, st.raft.is_learner));
  lua_setfield(L, -2, "role");
  luaraft__set_int(L, "term", st.raft.term);
  if (st.raft.leader) luaraft__set_int(L, "leader", st.raft.leader);
  luaraft__set_int(L, "vote", st.raft.vote);
  luaraft__set_int(L, "commit_index", st.raft.commit);
  luaraft__set_int(L, "applied_index", st.applied);
  luaraft__set_int(L, "last_index", st.raft.last_index);
  luaraft__set_int(L, "snapshot_index", st.raft.snapshot_index);
  luaraft__set_int(L, "sessions", st.sessions);
  /* the state machine's guards: halted/diverged, digests, memory */
  lua_pushboolean(L, st.sm.halted);
  lua_setfield(L, -2, "halted");
  if (st.sm.halted) {
    lua_pushstring(L, st.sm.reason);
    lua_setfield(L, -2, "halt_reason");
  }
  if (st.sm.diverged) {
    lua_createtable(L, 0, 3);
    luaraft__set_int(L, "index", st.sm.diverged_index);
    lua_pushlstring(L, st.sm.mine, st.sm.mine_len);
    lua_setfield(L, -2, "mine");
    lua_pushlstring(L, st.sm.majority, st.sm.majority_len);
    lua_setfield(L, -2, "majority");
    lua_setfield(L, -2, "diverged");
  }
  lua_createtable(L, 0, 3);
  luaraft__set_int(L, "taken", st.sm.digests_taken);
  luaraft__set_int(L, "matched", st.sm.digests_matched);
  luaraft__set_int(L, "mismatches", st.sm.digest_mismatches);
  lua_setfield(L, -2, "digests");
  luaraft__set_int(L, "budget_exceeded", st.sm.budget_exceeded);
  luaraft__set_int(L, "memory_used", st.sm.memory_used);
  luaraft__set_int(L, "memory_max", st.sm.memory_max);
  lua_pushboolean(L, st.raft.is_member);
  lua_setfield(L, -2, "is_member");
  lua_newtable(L);
  const struct raft_config *c = st.raft.config;
  for (uint32_t i = 0; c && i < c->n; i++) {
    lua_createtable(L, 0, 3);
    luaraft__set_int(L, "id", c->members[i].id);
    lua_pushstring(L, c->members[i].role == RAFT_LEARNER ? "learner" : "voter");
    lua_setfield(L, -2, "role");
    lua_pushstring(L, c->members[i].address ? c->members[i].address : "");
    lua_setfield(L, -2, "address");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "members");
  return 1;
}

/* metrics(id) -> the node:metrics() table of a real node | nil (down) */
static int sim_metrics(lua_State *L) {
  struct lsim *ls = check(L);
  struct lr_sim_node_metrics m;
  if (lr_sim_metrics(ls->s, check_id(L, 2), &m) != 0) return 0;
  struct luaraft_net_counts net = {.peers = m.peers, .peers_up = m.peers_up};
  luaraft__push_metrics(L, &m.drive, &net, m.progress, m.n_progress);
  return 1;
}

static int sim_nodes(lua_State *L) {
  raft_id ids[LR_SIM_NODES_MAX];
  uint32_t n = lr_sim_nodes(check(L)->s, ids);
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)ids[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int sim_leader(lua_State *L) {
  raft_id id = lr_sim_leader(check(L)->s);
  if (id == 0) return 0;
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

static int sim_violation(lua_State *L) {
  const char *v = lr_sim_violation(check(L)->s);
  if (v == NULL) return 0;
  lua_pushstring(L, v);
  return 1;
}

static int sim_trace(lua_State *L) {
  size_t len;
  const char *t = lr_sim_trace(check(L)->s, &len);
  lua_pushlstring(L, t, len);
  return 1;
}

static int sim_trace_line(lua_State *L) {
  struct lsim *ls = check(L);
  lr_sim_trace_line(ls->s, "%s", luaL_checkstring(L, 2));
  return 0;
}

static int sim_applied_total(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)lr_sim_applied_total(check(L)->s));
  return 1;
}

static int sim_random(lua_State *L) {
  struct lsim *ls = check(L);
  lua_Integer lo = luaL_checkinteger(L, 2), hi = luaL_checkinteger(L, 3);
  luaL_argcheck(L, lo <= hi, 3, "empty interval");
  uint64_t r = lr_sim_random(ls->s);
  lua_pushinteger(L, lo + (lua_Integer)(r % ((uint64_t)(hi - lo) + 1)));
  return 1;
}

static const luaL_Reg methods[] = {{"now", sim_now},
                                   {"run", sim_run},
                                   {"step", sim_step},
                                   {"propose", sim_propose},
                                   {"propose_many", sim_propose_many},
                                   {"read", sim_read},
                                   {"change", sim_change},
                                   {"completion", sim_completion},
                                   {"transfer", sim_transfer},
                                   {"step_down", sim_step_down},
                                   {"snapshot", sim_snapshot},
                                   {"crash", sim_crash},
                                   {"restart", sim_restart},
                                   {"add_node", sim_add_node},
                                   {"partition", sim_partition},
                                   {"heal", sim_heal},
                                   {"net", sim_net},
                                   {"link", sim_link},
                                   {"status", sim_status},
                                   {"metrics", sim_metrics},
                                   {"fail_writes", sim_fail_writes},
                                   {"nodes", sim_nodes},
                                   {"leader", sim_leader},
                                   {"violation", sim_violation},
                                   {"trace", sim_trace},
                                   {"trace_line", sim_trace_line},
                                   {"applied_total", sim_applied_total},
                                   {"random", sim_random},
                                   {"close", sim_gc},
                                   {NULL, NULL}};

void luaraft__sim_open(lua_State *L) {
  luaraft__new_metatable(L, SIM_MT, methods, sim_gc);
  lua_pushcfunction(L, sim_new);
  lua_setfield(L, -2, "sim_new");
}
