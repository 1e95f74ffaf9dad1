-- Loaded by busted before the specs (.busted). Points package.cpath at the
-- build under test (LUARAFT_BUILD, set by scripts/test; default build/) and
-- package.path at the pure-Lua sources.
local build = os.getenv("LUARAFT_BUILD") or "build"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "lua/?.lua;spec/?.lua;" .. package.path
-- luv is loaded once for the whole run, outside busted's per-file
-- insulation: a spec file that required it afresh would open luv a second
-- time, and collecting the first copy closes the default loop under the
-- second (a crash in uv_tcp_init_ex in a later file).
pcall(require, "luv")
