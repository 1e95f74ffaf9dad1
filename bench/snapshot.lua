-- A snapshot of a 100 MB state reaches a new follower (release build, real
-- processes):   build/luaraft bench/snapshot.lua [MB=100]
-- Builds the state on a 3-node raft.cluster of examples/kv.lua (ceil(MB/0.9)
-- writes of 900 KB values: under the 1 MiB entry and HTTP body limits); the
-- automatic snapshot (snapshot_entries) falls due on every node during the
-- small writes that follow, and is made by a forked child while the nodes
-- serve them: the bench checks that no election happened across it (the
-- term and every node's elections_total unchanged) and prints how long it
-- took. Then it starts a 4th node with --join, adds it as a learner through
-- the leader and measures the time until it has caught up (reads the last
-- key) and how it got there.
package.path = "spec/?.lua;" .. package.path
local uv = require "luv"
local writers = require "support.writers"

local mb = tonumber(arg and arg[1]) or 100
local count = math.ceil(mb * 1e6 / 9e5)
local function now() return uv.hrtime() / 1e9 end
local function say(fmt, ...) print(string.format(fmt, ...)) io.stdout:flush() end

local build = os.getenv("LUARAFT_RELEASE_BUILD") or "build"
-- the snapshot is due at applied index count + 100: within the small writes
local c = raft.cluster { nodes = 3, state_machine = "examples/kv.lua", binary = build .. "/luaraft",
  election_ms = 1000, heartbeat_ms = 100, snapshot_entries = count + 100 }
local function metric(id, name)
  return tonumber((c:node(id):metrics() or ""):match("\nluaraft_" .. name .. " (%d+)"))
end
local ok, err = pcall(function()
  local l = assert(c:leader(15))
  local value = string.rep("v", 900 * 1000)
  local t = now()
  local acked, errs = writers.run { addr = c:http_address(l), total = count, workers = 4, timeout = 60,
    command = function(i) return { op = "set", key = "big" .. i, value = i .. value } end }
  assert(acked == count, table.concat(errs, "\n"))
  say("state: %d values of 900 KB (%.1f MB) written in %.1f s", count, count * 0.9, now() - t)
  local term0 = assert(c:node(l):status()).term
  local elections0 = {}
  for _, id in ipairs(c:ids()) do elections0[id] = metric(id, "elections_total") end
  -- small writes: the automatic snapshot falls due among them, and the log
  -- behind it (100 trailing entries) no longer reaches back to the start
  t = now()
  acked = writers.run { addr = c:http_address(l), total = 200, workers = 8,
    command = function(i) return { op = "set", key = "s" .. i, value = i } end }
  assert(acked == 200)
  say("200 small writes answered in %.2f s while the snapshot was due", now() - t)
  assert(c:wait_for(function()
    for _, id in ipairs(c:ids()) do
      local st = c:node(id):status()
      if not st or st.snapshot_index < count then return false end
    end
    return true
  end, 300), "snapshots not taken")
  say("snapshot on 3 nodes taken in %.1f s (leader snapshot_index %d)", now() - t,
    c:node(l):status().snapshot_index)
  local changed = {}
  for _, id in ipairs(c:ids()) do
    local st = assert(c:node(id):status())
    if st.term ~= term0 or metric(id, "elections_total") ~= elections0[id] then
      changed[#changed + 1] = ("node %d: term %d (was %d), elections %d (was %d)"):format(id, st.term, term0,
        metric(id, "elections_total"), elections0[id])
    end
  end
  say("elections across the snapshot: %s", #changed == 0 and ("none (term %d throughout)"):format(term0)
    or table.concat(changed, "; "))
  if #changed > 0 then
    for _, id in ipairs(c:ids()) do
      for line in c:log(id):gmatch("[^\n]+") do
        if line:find("snapshot", 1, true) or line:find("role ", 1, true) then print(line) end
      end
    end
  end
  assert(#changed == 0, "an election happened across the snapshot")
  local addr = c:add_node(4)
  t = now()
  assert(c:wait_for(function() return c:node(assert(c:leader(15))):add_member(4, addr, { learner = true }) end, 30))
  local last = "s200"
  assert(c:wait_for(function()
    return c:node(4):read({ key = last }, { consistency = "stale", timeout = 5 }) == 200
  end, 600), "node 4 did not catch up\n" .. c:log(4):sub(-3000))
  local secs = now() - t
  local v = c:node(4):read({ key = "big" .. count }, { consistency = "stale", timeout = 10 })
  assert(v == count .. value, "node 4 has the wrong value for big" .. count)
  local log = c:log(4)
  local size = tonumber(log:match("receiving a snapshot at index %d+ %((%d+) bytes%)")) or 0
  assert(log:match("restored snapshot at index"), "node 4 did not get a snapshot\n" .. log)
  say("new follower caught up through a %.1f MB snapshot in %.2f s (%.0f MB/s, add_member to caught up)",
    size / 1e6, secs, size / 1e6 / secs)
end)
c:close()
if not ok then error(err, 0) end
