/* The libuv loop every raft handle of a Lua state runs on.
 *
 * By default it is uv_default_loop(). raft.use_luv() switches to luv's loop so
 * an embedder that runs `uv.run()` drives raft too: luv keeps its own loop,
 * reachable from C only through luv_loop(L), which we look up in the already
 * loaded luv.so (dlopen with RTLD_NOLOAD; Lua loads C modules RTLD_LOCAL).
 * Handles created before the switch stay on the loop they were created on, so
 * call raft.use_luv() before creating nodes or servers.
 */
#include <dlfcn.h>

#include "lua/lraft.h"

static const char loop_key = 'L';

uv_loop_t *luaraft__loop(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &loop_key);
  uv_loop_t *loop = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return loop ? loop : uv_default_loop();
}

/* core.use_luv(path_of_luv_so): the Lua side requires luv first. */
static int l_use_luv(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
  if (lib == NULL) return luaL_error(L, "raft.use_luv: luv is not loaded from %s", path);
  uv_loop_t *(*get_loop)(lua_State *) = (uv_loop_t * (*)(lua_State *)) dlsym(lib, "luv_loop");
  if (get_loop == NULL) {
    dlclose(lib);
    return luaL_error(L, "raft.use_luv: %s has no luv_loop", path);
  }
  uv_loop_t *loop = get_loop(L);
  dlclose(lib); /* luv.so stays loaded: Lua holds its own reference */
  lua_pushlightuserdata(L, loop);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &loop_key);
  return 0;
}

static int l_run(lua_State *L) {
  lua_pushboolean(L, uv_run(luaraft__loop(L), UV_RUN_DEFAULT) != 0);
  return 1;
}

static int l_run_once(lua_State *L) {
  int nowait = lua_toboolean(L, 1);
  lua_pushboolean(L, uv_run(luaraft__loop(L), nowait ? UV_RUN_NOWAIT : UV_RUN_ONCE) != 0);
  return 1;
}

static int l_stop(lua_State *L) {
  uv_stop(luaraft__loop(L));
  return 0;
}

/* For embedding in a poll-based loop of another library (cqueues, a select()
 * loop ...): the fd that becomes readable when the loop has I/O to handle, and
 * the milliseconds until its next timer (-1: none, 0: work is pending). The
 * loop time is refreshed first: libuv caches it per iteration, and a stale
 * time would make the timeout too long by however long the embedder slept.
 * The step itself is loop_run_once(true), uv_run(UV_RUN_NOWAIT). */
static int l_backend_fd(lua_State *L) {
  lua_pushinteger(L, uv_backend_fd(luaraft__loop(L)));
  return 1;
}

static int l_backend_timeout(lua_State *L) {
  uv_loop_t *loop = luaraft__loop(L);
  uv_update_time(loop);
  lua_pushinteger(L, uv_backend_timeout(loop));
  return 1;
}

static int l_now(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_now(luaraft__loop(L)));
  return 1;
}

void luaraft__loop_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"use_luv", l_use_luv},
                                 {"loop_run", l_run},
                                 {"loop_run_once", l_run_once},
                                 {"loop_stop", l_stop},
                                 {"loop_now", l_now},
                                 {"loop_backend_fd", l_backend_fd},
                                 {"loop_backend_timeout", l_backend_timeout},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
