-- The `luaraft` executable and raft.so outside busted: a script runs with
-- `arg` set as lua5.4 sets it and `raft` preloaded; --help and --version;
-- a stock lua5.4 loads raft.so from package.cpath.
local procs = require "support.procs"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local function script(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

describe("the luaraft executable", function()
  local bin = procs.binary()

  it("runs a script with arg set as lua5.4 does and raft preloaded", function()
    local path = script([[
      io.write(#arg, " ", arg[1], " ", arg[2], " ", select("#", ...), " ",
               tostring(arg[-1] ~= nil), " ", require("raft") == raft and raft.version or "no raft")
    ]])
    local out, code = sh(bin .. " " .. path .. " a b")
    os.remove(path)
    assert.equal(0, code)
    assert.matches("^2 a b 2 true %d+%.%d+%.%d+$", out)
  end)

  it("exits 1 with the error and a traceback when the script raises", function()
    local path = script("local function f() error('boom') end f()")
    local out, code = sh(bin .. " " .. path)
    os.remove(path)
    assert.equal(1, code)
    assert.matches("boom", out)
    assert.matches("stack traceback", out)
  end)

  it("prints its version and usage, and refuses unknown options with exit 2", function()
    local out, code = sh(bin .. " --version")
    assert.equal(0, code)
    assert.matches("^luaraft %d+%.%d+%.%d+ %(Lua 5%.4", out)
    out, code = sh(bin .. " --help")
    assert.equal(0, code)
    assert.matches("luaraft run", out)
    out, code = sh(bin .. " --bogus")
    assert.equal(2, code)
    assert.matches("unknown option", out)
    out, code = sh(bin)
    assert.equal(2, code)
    assert.matches("usage", out)
  end)

  it("is loadable as raft.so by a stock lua5.4", function()
    local build = os.getenv("LUARAFT_RELEASE_BUILD") or "build"
    local out, code = sh("lua5.4 -e 'package.cpath=\"" .. build .. "/?.so;\"..package.cpath; " ..
      "local r = require(\"raft\"); io.write(r.version, \" \", r.decode(r.encode({1, x = 2})).x)'")
    assert.equal(0, code, out)
    assert.matches("^%d+%.%d+%.%d+ 2$", out)
  end)
end)
