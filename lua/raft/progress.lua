-- Progress lines for long work (luaraft bench, scripts/soak, scripts/chaos):
--
--   local p = require("raft.progress").new { label = "soak", total = 1000, unit = "seeds" }
--   p:update(done [, "3 failed"])   -- prints at most once every `every` seconds
--   p:done([extra])                 -- a last line
--
-- A line: "soak: 120/1000 seeds (12%), 24.1 seeds/s, ETA 36s, 3 failed".
-- With time_total (seconds) instead of total, the work is bounded by time
-- (scripts/chaos): "chaos: 2m10s/10m (21%), ETA 7m50s, round 3".
-- Lines go to stderr (out), so they never mix with a command's results.
local M = {}
M.__index = M

local function default_clock()
  local ok, uv = pcall(require, "luv")
  if ok then return function() return uv.hrtime() / 1e9 end end
  return os.time
end

-- "45s", "2m05s", "1h02m"
function M.duration(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.max(0, math.floor(s + 0.5))
  if s < 60 then return s .. "s" end
  if s < 3600 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%dh%02dm"):format(s // 3600, s % 3600 // 60)
end

local function rate_text(r)
  if r >= 100 then return ("%.0f"):format(r) end
  if r >= 10 then return ("%.1f"):format(r) end
  return ("%.2f"):format(r)
end

--- progress.new { label, total | time_total, unit = "", every = 5 (s; 0:
-- never print), out = io.stderr, clock = fn() -> seconds }
function M.new(opts)
  local clock = opts.clock or default_clock()
  local env = tonumber(os.getenv("LUARAFT_PROGRESS") or "")
  local t = clock()
  return setmetatable({
    label = opts.label or "progress", total = opts.total, time_total = opts.time_total,
    unit = opts.unit and " " .. opts.unit or "", every = opts.every or env or 5,
    out = opts.out or io.stderr, clock = clock, t0 = t, last = t, lines = 0,
  }, M)
end

function M:line(done, extra)
  local elapsed = self.clock() - self.t0
  local parts
  if self.time_total then
    local frac = math.min(1, elapsed / self.time_total)
    parts = { ("%s/%s (%d%%)"):format(M.duration(elapsed), M.duration(self.time_total),
      math.floor(frac * 100)), "ETA " .. M.duration(self.time_total - elapsed) }
    if done then table.insert(parts, 2, ("%d%s"):format(done, self.unit)) end
  else
    local rate = elapsed > 0 and done / elapsed or 0
    parts = { ("%d/%d%s (%d%%)"):format(done, self.total, self.unit,
      self.total > 0 and math.floor(done * 100 / self.total) or 100),
      rate_text(rate) .. self.unit .. "/s",
      "ETA " .. (rate > 0 and M.duration((self.total - done) / rate) or "?") }
  end
  if extra and extra ~= "" then parts[#parts + 1] = extra end
  return self.label .. ": " .. table.concat(parts, ", ")
end

-- Prints a line if `every` seconds passed since the last one. -> printed?
function M:update(done, extra)
  if self.every <= 0 then return false end
  local now = self.clock()
  if now - self.last < self.every then return false end
  self.last = now
  self.out:write(self:line(done, extra), "\n")
  self.out:flush()
  self.lines = self.lines + 1
  return true
end

function M:done(done, extra)
  if self.every <= 0 or self.lines == 0 then return end -- short work: no progress wanted
  self.out:write(self:line(done, extra), "\n")
  self.out:flush()
end

return M
