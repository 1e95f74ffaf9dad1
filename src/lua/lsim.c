/* placeholder until the simulator binding lands */
#include "lua/lraft.h"
void luaraft__sim_open(lua_State *L) { (void)L; }
