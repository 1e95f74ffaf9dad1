/* placeholder until the node binding lands */
#include "lua/lraft.h"
void luaraft__node_open(lua_State *L) { (void)L; }
