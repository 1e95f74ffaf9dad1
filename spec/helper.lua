-- Loaded by busted before the specs (.busted). Points package.cpath at the
-- build under test (LUARAFT_BUILD, set by scripts/test; default build/) and
-- package.path at the pure-Lua sources.
local build = os.getenv("LUARAFT_BUILD") or "build"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;spec/?.lua;" .. package.path
