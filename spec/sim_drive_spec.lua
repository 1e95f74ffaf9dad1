-- The simulator runs the real node's driver (src/drive): group commit, disk
-- latency and snapshot durability behave as on a real node, and
-- node:metrics() shows them with the same keys as a real node's.
local raft = require "raft"
local loop = require "raft.loop"
local procs = require "support.procs"
local sim_util = require "support.sim_util"

local elect, others = sim_util.elect, sim_util.others

describe("raft.sim driver", function()
  it("commits 64 concurrent proposals in fewer fsyncs than entries (group commit)", function()
    local sim = sim_util.new(41, { disk_ms = { 10, 10 } })
    local leader = elect(sim)
    local follower = others(sim, leader)[1]
    assert.is_true(sim:run_until(function()
      return sim:node(follower):status().leader == leader
    end, 1000))
    local before = sim:node(leader):metrics()
    -- one proposal per virtual millisecond, half of them forwarded by a
    -- follower: each is its own update, and while one 10 ms write is in
    -- flight the updates taken meanwhile join the one queued batch
    local tickets = {}
    for i = 1, 64 do
      local at = i % 2 == 0 and leader or follower
      tickets[i] = sim:propose({ op = "set", key = "k" .. i, value = i }, { node = at })
      sim:advance(1)
    end
    for i = 1, 64 do assert.is_true(sim:wait(tickets[i], 5000), "proposal " .. i) end
    local m = sim:node(leader):metrics()
    local fsyncs = m.fsyncs - before.fsyncs
    local entries = m.entries_persisted - before.entries_persisted
    assert.is_true(entries >= 64, "entries persisted: " .. entries)
    assert.is_true(fsyncs < entries, ("%d fsyncs for %d entries"):format(fsyncs, entries))
    assert.is_true(fsyncs <= 16, ("%d fsyncs for 64 proposals 1 ms apart with 10 ms writes")
      :format(fsyncs))
    assert.is_true(m.batches_merged > before.batches_merged)
    -- every write took the virtual 10 ms: all in the <= 10 ms bucket
    assert.equal(m.fsyncs, m.batches)
    local le10
    for _, b in ipairs(m.fsync_buckets) do
      if b[1] == 0.01 then le10 = b[2] end
      if b[1] == 0.005 then assert.equal(0, b[2]) end
    end
    assert.equal(m.fsyncs, le10)
    assert.near(m.fsyncs * 0.01, m.fsync_seconds_sum, 1e-9)
    -- followers group their writes too
    local fm = sim:node(follower):metrics()
    assert.is_true(fm.fsyncs < fm.entries_persisted)
    sim:check()
    assert.is_true(raft.check.linearizable(sim:history(), "kv"))
  end)

  it("loses nothing acknowledged when a crash comes between a snapshot and its durability",
    function()
      local sim = sim_util.new(42, { disk_ms = { 20, 20 } })
      local leader = elect(sim)
      local tickets = {}
      for i = 1, 20 do
        tickets[i] = sim:propose({ op = "set", key = "k" .. i, value = i }, { node = leader })
      end
      for i = 1, 20 do assert.is_true(sim:wait(tickets[i], 5000), "proposal " .. i) end
      local acked = sim:node(leader):status().applied_index
      -- let every node's writes settle, so that what follows is the snapshot's
      sim:advance(100)
      for _, id in ipairs(sim:nodes()) do
        assert.is_true(sim:node(id):snapshot())
        -- taken, not yet durable: the core has not heard of it, the log is whole
        assert.equal(0, sim:node(id):metrics().snapshots_taken)
        assert.equal(0, sim:node(id):status().snapshot_index)
      end
      sim:advance(5) -- inside the 20 ms write
      for _, id in ipairs(sim:nodes()) do sim:crash(id) end
      for _, id in ipairs(sim:nodes()) do
        sim:restart(id)
        -- right after the restart, before any message: its own durable log
        local st = sim:node(id):status()
        assert.equal(0, st.snapshot_index)
        assert.is_true(st.last_index >= acked, ("n%d last %d < %d"):format(id, st.last_index, acked))
      end
      elect(sim)
      for i = 1, 20 do
        assert.equal(i, sim:wait(sim:read({ key = "k" .. i }), 5000))
      end
      -- and a snapshot that does become durable is acknowledged then
      local l = sim:leader()
      assert.is_true(sim:node(l):snapshot())
      assert.is_true(sim:run_until(function()
        return sim:node(l):metrics().snapshots_taken == 1
      end, 100))
      assert.is_true(sim:node(l):status().snapshot_index >= acked)
      sim:check()
    end)

  it("stops ticking a removed node until a leader talks to it again", function()
    local sim = sim_util.new(44, { nodes = 4 })
    local leader = elect(sim)
    local gone = others(sim, leader)[1]
    assert.is_true(sim:wait(sim:propose({ op = "set", key = "a", value = 1 }, { node = leader }),
                            5000))
    assert.is_true(sim:node(leader):remove_member(gone))
    local function campaigns()
      local n = 0
      for _ in sim:trace():gmatch("\n%s*%d+ n" .. gone .. " pre%-candidate") do n = n + 1 end
      return n
    end
    -- the removed node times out and asks for votes once; the members refuse
    -- it, naming their configuration, and it stops (no campaign every
    -- election timeout for ever)
    sim:advance(2000)
    local before = campaigns()
    assert.truthy(sim:trace():find("n" .. gone .. " node %d+ %(configuration index %d+%) says " ..
                                   "this node is not a member"))
    sim:advance(10000)
    assert.equal(before, campaigns())
    assert.equal(leader, sim:leader())
    -- added back: the leader talks to it, it takes part again
    assert.is_true(sim:node(leader):add_member(gone, ""))
    assert.is_true(sim:wait(sim:propose({ op = "set", key = "back", value = 1 },
                                        { node = leader }), 5000))
    assert.is_true(sim:run_until(function()
      return sim:node(gone):status().applied_index == sim:node(leader):status().applied_index
    end, 5000))
    sim:check()
  end)

  it("backs off exponentially while a disk fails, logs once per period, loses nothing", function()
    local sim = sim_util.new(45, { disk_ms = { 1, 1 } })
    local leader = elect(sim)
    local bad = others(sim, leader)[1]
    local acked = {}
    local function write(i, ms)
      local t = sim:propose({ op = "set", key = "k" .. i, value = i }, { node = leader })
      sim:advance(ms)
      return t
    end
    local tickets = {}
    for i = 1, 5 do tickets[#tickets + 1] = write(i, 20) end
    local m0 = sim:node(bad):metrics()
    sim:fail_writes(bad, 100000)
    -- 5 s of a steady stream of writes: the leader keeps sending `bad` new
    -- entries; each write `bad` tries fails
    for i = 6, 255 do tickets[#tickets + 1] = write(i, 20) end
    local m1 = sim:node(bad):metrics()
    local failed = m1.batches_failed - m0.batches_failed
    -- waits of 10, 20, 40, ... ms capped at 2 s: about 10 tries in 5 s (one
    -- per append, 250 of them, without the back-off)
    assert.is_true(failed >= 5 and failed <= 14, failed .. " failed writes in 5 s")
    local reports = 0
    for _ in sim:trace():gmatch("n" .. bad .. " storage: [^\n]* failed writes since the last report") do
      reports = reports + 1
    end
    assert.is_true(reports >= 1 and reports <= 2, reports .. " log lines for " .. failed)
    -- the other two keep committing: every proposal is acknowledged
    for _, t in ipairs(tickets) do
      assert.is_true(sim:wait(t, 5000))
      acked[#acked + 1] = t
    end
    -- the disk heals: within the longest wait the node writes and catches up
    sim:fail_writes(bad, 0)
    assert.is_true(sim:run_until(function()
      return sim:node(bad):status().applied_index == sim:node(leader):status().applied_index
    end, 5000))
    assert.truthy(sim:trace():find("n" .. bad .. " storage: writes succeed again after %d+ failed"))
    -- nothing acknowledged is lost, on the node that failed either
    for i = 1, #acked do
      assert.equal(i, sim:wait(sim:read({ key = "k" .. i }, { node = bad, consistency = "stale" })))
    end
    sim:check()
  end)

  it("names node:metrics() the same as a real node", function()
    local sim = sim_util.new(43)
    local leader = elect(sim)
    local sm = sim:node(leader):metrics()
    assert.same(sm, sim:metrics(leader))
    local node = raft.node { id = 1, peers = { [1] = "127.0.0.1:" .. procs.free_port() },
                             state_machine = "examples/kv.lua", storage = "memory",
                             election_ms = 100, heartbeat_ms = 20, log_level = "warn" }
    local ok, err = pcall(function()
      assert.is_true(node:start())
      local real = node:metrics()
      local keys, want = {}, {}
      for k in pairs(real) do want[#want + 1] = k end
      for k in pairs(sm) do keys[#keys + 1] = k end
      table.sort(keys)
      table.sort(want)
      assert.same(want, keys)
      assert.equal(#real.fsync_buckets, #sm.fsync_buckets)
    end)
    node:stop()
    for _ = 1, 5 do loop.run_once() end
    assert(ok, err)
    sim:crash(leader)
    assert.is_nil(sim:metrics(leader))
  end)
end)
