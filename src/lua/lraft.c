/* luaopen_raft: builds the internal `raft.core` table from the C parts,
 * registers the embedded pure-Lua modules (lua/raft/ files) in package.preload
 * and returns require("raft.init")(core). */
#include <string.h>

#include "codec/codec.h"
#include "host/host.h" /* lr_log */
#include "lua/lraft.h"

struct luaraft__embedded {
  const char *name, *chunkname, *src;
  size_t len;
};
extern const struct luaraft__embedded luaraft__embedded[];

static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int luaraft__pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int rc = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return rc;
}

/* Calls the function (and args) on top of the main thread in protected mode;
 * an error is reported on stderr, never thrown through libuv. */
void luaraft__call_main(lua_State *L, int nargs, const char *what) {
  if (luaraft__pcall(L, nargs, 0) != LUA_OK) {
    lr_log(RAFT_LOG_ERROR, 0, RAFT_LOG_ERROR, "error in %s: %s", what, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}

lua_State *luaraft__main_thread(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  lua_State *M = lua_tothread(L, -1);
  lua_pop(L, 1);
  return M;
}

/* A metatable with methods in __index and `gc` as both __gc and __close. */
void luaraft__new_metatable(lua_State *L, const char *name, const luaL_Reg *methods,
                            lua_CFunction gc) {
  if (luaL_newmetatable(L, name)) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
}

const char *luaraft__role_name(int role, bool learner) {
  switch (role) {
  case RAFT_LEADER:
    return "leader";
  case RAFT_CANDIDATE:
  case RAFT_PRE_CANDIDATE:
    return "candidate";
  default:
    return learner ? "learner" : "follower";
  }
}

/* package.preload loader for an embedded module: upvalue 1 is its index. */
static int load_embedded(lua_State *L) {
  int i = (int)lua_tointeger(L, lua_upvalueindex(1));
  const struct luaraft__embedded *e = &luaraft__embedded[i];
  if (luaL_loadbufferx(L, e->src, e->len, e->chunkname, "t") != LUA_OK) return lua_error(L);
  lua_pushstring(L, e->name);
  lua_call(L, 1, 1);
  return 1;
}

static void register_embedded(lua_State *L) {
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (int i = 0; luaraft__embedded[i].name != NULL; i++) {
    lua_pushinteger(L, i);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, luaraft__embedded[i].name);
  }
  lua_pop(L, 1);
}

/* The one public symbol of raft.so and luaraft (everything else is built
 * with hidden visibility, see CMakeLists.txt). */
__attribute__((visibility("default"))) int luaopen_raft(lua_State *L) {
  register_embedded(L);
  lua_newtable(L); /* core */
  lua_pushliteral(L, LUARAFT_VERSION);
  lua_setfield(L, -2, "version");
  lr_codec_open(L);
  luaraft__sim_open(L);
  luaraft__node_open(L);
  luaraft__http_open(L);
  luaraft__loop_open(L);
  luaraft__handles_open(L);
  /* package.loaded["raft.core"] = core, for the pure-Lua parts */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "raft.core");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "raft.init");
  lua_call(L, 1, 1);
  return 1;
}
