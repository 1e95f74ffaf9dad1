/* The Lua binding: thin, converts types, checks arguments, calls through.
 * Each part adds its functions to the table on top of the stack (the internal
 * `raft.core` table that lua/raft/init.lua builds the public module from). */
#ifndef LUARAFT_LUA_LRAFT_H
#define LUARAFT_LUA_LRAFT_H

#include <stdbool.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

void luaraft__sim_open(lua_State *L);  /* sim_new and the sim metatable */
void luaraft__node_open(lua_State *L); /* node_new, loop functions */
void luaraft__http_open(lua_State *L); /* http_listen */
void luaraft__loop_open(lua_State *L); /* use_luv, loop_run, loop_run_once, loop_stop, loop_now,
                                       loop_backend_fd, loop_backend_timeout */

/* The loop every raft handle of this Lua state must be created on: the
 * default loop, or luv's after raft.use_luv(). Never call uv_default_loop()
 * directly in the binding. */
uv_loop_t *luaraft__loop(lua_State *L);

/* Calls the function below its nargs arguments in protected mode with a
 * traceback; on error leaves the message on the stack and returns non-zero.
 * Every call into user Lua goes through here. */
int luaraft__pcall(lua_State *L, int nargs, int nresults);

/* Calls the function (and nargs args) on top of the main thread in protected
 * mode; an error is logged, never thrown through libuv. */
void luaraft__call_main(lua_State *L, int nargs, const char *what);
lua_State *luaraft__main_thread(lua_State *L);
/* A metatable with `methods` in __index and `gc` as __gc and __close. */
void luaraft__new_metatable(lua_State *L, const char *name, const luaL_Reg *methods,
                            lua_CFunction gc);
void luaraft__handles_open(lua_State *L);
/* The role as the API names it: a pre-candidate is a "candidate"; a
 * follower that is a learner is a "learner". */
const char *luaraft__role_name(int role, bool learner); /* timer, signal, log, wall_ms */

/* node:metrics() of real and simulated nodes alike (the keys /metrics
 * exports): the driver's counters, the transport's, the leader's progress. */
struct lr_drive_metrics;
struct raft_progress_info;
struct luaraft_net_counts {
  uint64_t bad_frames, handshake_failures, frames_dropped;
  uint32_t peers, peers_up;
};
void luaraft__push_metrics(lua_State *L, const struct lr_drive_metrics *m,
                           const struct luaraft_net_counts *net,
                           const struct raft_progress_info *progress, uint32_t n_progress);
/* 0 -> true; a RAFT_E* code -> nil, code (API.md), message. */
int luaraft__push_rv(lua_State *L, int rv);
/* t[k] = v on the table on top of the stack (status, stats, metrics). */
void luaraft__set_int(lua_State *L, const char *k, uint64_t v);

#endif
