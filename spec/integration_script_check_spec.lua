-- Real processes: `luaraft run` checks its state machine script before the
-- node starts, in the sandbox and on the instruction budget, so a top level
-- that loops, writes files or exits is refused in bounded time with exit 2
-- before anything happens (no data directory, no file written).
local procs = require "support.procs"

describe("luaraft run's script check", function()
  local dir
  before_each(function() dir = procs.mkdtemp() end)
  after_each(function() procs.rmdir(dir) end)

  local function write(name, text)
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
    return dir .. "/" .. name
  end

  local function exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
  end

  local function run(script, extra)
    local cmd = ("%s run --id 1 --peers 1=127.0.0.1:%d --data %s/data %s %s"):format(procs.binary(),
      procs.free_port(), dir, extra or "", script)
    -- the outer bound (60 s) only keeps a regression from hanging the suite
    local t0 = os.time()
    local code, out = procs.run(cmd, 60)
    return code, out, os.time() - t0
  end

  it("refuses a top level that never returns, on the budget, with exit 2", function()
    local code, out, took = run(write("loop.lua", "while true do end\nreturn { apply = function() end }\n"))
    assert.equal(2, code, out)
    assert.truthy(out:find("instruction budget exceeded", 1, true), out)
    assert.truthy(took < 50, "took " .. took .. " s")
    assert.is_false(exists(dir .. "/data"))
  end)

  it("bounds the check even with --apply-budget 0 (no budget for the node's calls)", function()
    local code, out = run(write("loop.lua", "while true do end\nreturn { apply = function() end }\n"),
      "--apply-budget 0")
    assert.equal(2, code, out)
    assert.truthy(out:find("instruction budget exceeded", 1, true), out)
  end)

  it("refuses a top level that writes a file, before writing it", function()
    local target = dir .. "/written"
    local code, out = run(write("side.lua", ("local f = io.open(%q, 'w') f:write('x') f:close()\n" ..
      "return { apply = function() end }\n"):format(target)))
    assert.equal(2, code, out)
    assert.truthy(out:find("io.open is not available in a state machine", 1, true), out)
    assert.is_false(exists(target))
    assert.is_false(exists(dir .. "/data"))
  end)

  it("refuses a top level that calls os.exit(0), with exit 2 and a message", function()
    local code, out = run(write("exit.lua", "os.exit(0)\nreturn { apply = function() end }\n"))
    assert.equal(2, code, out)
    assert.truthy(out:find("os.exit is not available in a state machine", 1, true), out)
    assert.is_false(exists(dir .. "/data"))
  end)

  it("still refuses a script that returns no state machine", function()
    local code, out = run(write("none.lua", "return 42\n"))
    assert.equal(2, code, out)
    assert.truthy(out:find("none.lua", 1, true), out)
  end)
end)
