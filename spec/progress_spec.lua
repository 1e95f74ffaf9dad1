-- raft.progress: the progress lines of luaraft bench, scripts/soak and
-- scripts/chaos (done/total, rate, ETA), on a clock the spec moves.
local progress = require "raft.progress"

local function sink()
  local lines = {}
  return lines, { write = function(self, ...) lines[#lines + 1] = table.concat({ ... }):gsub("\n$", "") return self end,
                  flush = function() end }
end

describe("raft.progress", function()
  it("prints done/total, rate and ETA at most once per interval", function()
    local now = 100
    local lines, out = sink()
    local p = progress.new { label = "soak", total = 1000, unit = "seeds", every = 5, out = out,
                             clock = function() return now end }
    now = 102
    assert.is_false(p:update(40))
    now = 105
    assert.is_true(p:update(100, "0 failed"))
    now = 106
    assert.is_false(p:update(120))
    now = 110
    assert.is_true(p:update(200))
    assert.same({ "soak: 100/1000 seeds (10%), 20.0 seeds/s, ETA 45s, 0 failed",
                  "soak: 200/1000 seeds (20%), 20.0 seeds/s, ETA 40s" }, lines)
    now = 150
    p:done(1000, "0 failed")
    assert.equal("soak: 1000/1000 seeds (100%), 20.0 seeds/s, ETA 0s, 0 failed", lines[3])
  end)

  it("counts time for work bounded by time", function()
    local now = 0
    local lines, out = sink()
    local p = progress.new { label = "chaos", time_total = 600, unit = "rounds done", every = 5,
                             out = out, clock = function() return now end }
    now = 130
    assert.is_true(p:update(2, "seed 9, 0 failed"))
    assert.equal("chaos: 2m10s/10m00s (21%), 2 rounds done, ETA 7m50s, seed 9, 0 failed", lines[1])
  end)

  it("stays quiet with every = 0 and for work that ended before the first line", function()
    local now = 0
    local lines, out = sink()
    local p = progress.new { label = "x", total = 10, every = 0, out = out, clock = function() return now end }
    now = 100
    assert.is_false(p:update(5))
    p:done(10)
    local q = progress.new { label = "y", total = 10, every = 5, out = out, clock = function() return now end }
    q:done(10)
    assert.same({}, lines)
  end)

  it("writes durations as s, m and h", function()
    assert.equal("45s", progress.duration(45))
    assert.equal("2m05s", progress.duration(125))
    assert.equal("1h02m", progress.duration(3720))
    assert.equal("?", progress.duration(math.huge))
  end)
end)
