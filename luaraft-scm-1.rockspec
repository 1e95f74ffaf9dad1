-- LuaRocks build of luaraft from a clone: `luarocks make --tree T` (Lua 5.4).
-- CMake builds raft.so (the pure-Lua parts are embedded in it) and the
-- luaraft executable; the install rules put them in the rock's lib/ and bin/,
-- which LuaRocks deploys to T/lib/lua/5.4 and T/bin.
-- C libraries come from the system (Debian 12: scripts/setup installs them):
-- libuv, SQLite 3, libsodium, http-parser, zlib; found by pkg-config.
rockspec_format = "3.0"
package = "luaraft"
version = "scm-1"
source = {
  url = "git+file://.", -- built from the checkout with `luarocks make`
}
description = {
  summary = "Lua-scriptable embedded Raft runtime",
  detailed = [[
A Raft consensus runtime in C whose replicated state machines are written in
Lua: a node host (TCP transport, SQLite storage, HTTP API), a module for
embedding nodes in Lua servers, and a deterministic simulator for testing
state machines and failover scripts.]],
}
dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson",
  "luv",
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "RelWithDebInfo",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUARAFT_INSTALL_CMOD = "$(LIBDIR)",
    LUARAFT_INSTALL_BIN = "$(BINDIR)",
    LUARAFT_TESTS = "OFF",
  },
}
