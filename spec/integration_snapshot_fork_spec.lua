-- Snapshots off the loop thread (issue 12), on real `luaraft run` processes:
-- an automatic snapshot (snapshot_entries) is made by a forked child from a
-- copy-on-write view of the state, so a snapshot() that runs for seconds
-- (here: ~2 s of pure Lua over an 8 MB state, six election timeouts)
-- neither stops heartbeats nor costs the leadership, and the leader keeps
-- answering writes meanwhile. With LUARAFT_SNAPSHOT_FORK=0 (the snapshot on
-- the loop thread, as before) this spec fails: the followers campaign.
local cluster = require "raft.cluster"
local procs = require "support.procs"
local writers = require "support.writers"

-- A key-value store whose snapshot() serialises the state, then runs a
-- checksum loop long enough (3e8 iterations, about 2 s on a fast core;
-- longer under load) to outlast the 300 ms election timeout many times.
local SM = [[
local kv = {}
return {
  apply = function(cmd) kv[cmd.key] = cmd.value return true end,
  query = function(q) return kv[q.key] end,
  snapshot = function()
    local parts = {}
    for k, v in pairs(kv) do parts[#parts + 1] = string.pack(">s4s4", k, v) end
    local acc = 0
    for i = 1, 3e8 do acc = (acc * 31 + i) & 0xffffffff end
    parts[#parts + 1] = string.pack(">s4s4", "#checksum", tostring(acc))
    return table.concat(parts)
  end,
  restore = function(s)
    kv = {}
    local pos = 1
    while pos <= #s do
      local k, v
      k, v, pos = string.unpack(">s4s4", s, pos)
      kv[k] = v
    end
  end,
}
]]

local function metric(text, name)
  return tonumber((text or ""):match("\nluaraft_" .. name .. " (%d+)"))
end

describe("an automatic snapshot of a large state on a real node", function()
  local c, dir
  setup(function()
    local p = assert(io.popen("mktemp -d"))
    dir = p:read("l")
    p:close()
    local f = assert(io.open(dir .. "/slow_snapshot.lua", "w"))
    f:write(SM)
    f:close()
    c = cluster.new { nodes = 3, state_machine = dir .. "/slow_snapshot.lua", binary = procs.binary(),
      snapshot_entries = 40 }
  end)
  teardown(function()
    if c then c:close() end
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)

  it("is made in a forked child: no election, the same leader and term, writes answered meanwhile", function()
    local l = assert(c:leader(15))
    local term0 = assert(c:node(l):status()).term
    local elections0 = {}
    for _, id in ipairs(c:ids()) do elections0[id] = metric(c:node(id):metrics(), "elections_total") end
    -- 64 values of 128 KB (8 MB): the snapshot is due at applied index 40
    -- on every node, the rest are written while the children run
    local big = string.rep("x", 128 * 1024)
    local acked, errs = writers.run { addr = c:http_address(l), total = 64, workers = 1, timeout = 30,
      command = function(i) return { op = "set", key = "k" .. i, value = i .. big } end }
    assert.equal(64, acked, table.concat(errs, "\n"))
    -- the writes after the snapshot's index were answered before the
    -- snapshot was ready: the loop went on serving
    assert.equal(0, metric(c:node(l):metrics(), "snapshots_taken_total"),
      "the snapshot was ready before the writes behind it were answered\n" .. c:log(l))
    assert.truthy(c:wait_for(function()
      for _, id in ipairs(c:ids()) do
        local st = c:node(id):status()
        if not st or st.snapshot_index < 40 then return false end
      end
      return true
    end, 180), "the snapshots were not taken\n" .. c:log(l))
    for _, id in ipairs(c:ids()) do
      local st = assert(c:node(id):status())
      assert.equal(term0, st.term, "node " .. id .. " saw a new term\n" .. c:log(id))
      assert.equal(l, st.leader, "node " .. id .. " follows another leader\n" .. c:log(id))
      assert.equal(elections0[id], metric(c:node(id):metrics(), "elections_total"),
        "node " .. id .. " campaigned\n" .. c:log(id))
    end
    assert.truthy(c:log(l):match("snapshot taken at index %d+"), c:log(l))
    -- the snapshot holds the state as of its index: a restart restores it
    -- and replays the log after it
    c:stop(l)
    c:restart(l)
    assert.truthy(c:wait_for(function()
      return c:node(l):read({ key = "k64" }, { consistency = "stale", timeout = 5 }) == 64 .. big
    end, 60), c:log(l))
    assert.truthy(c:log(l):match("restored snapshot at index"), c:log(l))
    assert.equal(1 .. big, c:node(l):read({ key = "k1" }, { consistency = "stale", timeout = 5 }))
  end)
end)
