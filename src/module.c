/* raft.so: the Lua 5.4 C module. Everything lives in the static library; this
 * file only gives the shared object its entry point (see src/lua/lraft.c). */
#include <lua.h>

int luaopen_raft(lua_State *L);

/* Referenced so the linker keeps the entry point from the static library. */
int (*const luaraft__module_entry)(lua_State *) = luaopen_raft;
