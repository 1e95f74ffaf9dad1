-- Snapshots and membership on real nodes (real `luaraft run` processes,
-- SQLite, TCP): a node joins with --join knowing only its own address,
-- catches up through a snapshot of a compacted log, is promoted and a voter
-- is removed (and says so); nodes restarted without --peers after compaction
-- serve the same state; a node that was down catches up through
-- InstallSnapshot even when its connection drops mid-snapshot; the database
-- stays bounded under a stream of writes; `luaraft ctl snapshot`.
local cluster = require "raft.cluster"
local procs = require "support.procs"
local writers = require "support.writers"
local cjson = require "cjson"

local KV = "examples/kv.lua"

local function stale(c, id, key)
  return c:node(id):read({ key = key }, { consistency = "stale", timeout = 2 })
end

local function members_of(c, id)
  local m = assert(c:node(id):members())
  local roles = {}
  for _, x in ipairs(m.members) do roles[x.id] = x.role end
  return roles, #m.members
end

describe("a node joining a cluster whose log is compacted", function()
  local c
  setup(function()
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary(), snapshot_entries = 50 }
  end)
  teardown(function() if c then c:close() end end)

  local N = 600
  local function value(i) return "v" .. i end

  it("joins as a learner knowing only its own address, catches up through a snapshot, is promoted", function()
    local l = assert(c:leader(15))
    local acked, errs = writers.run { addr = c:http_address(l), total = N, workers = 8,
      command = function(i) return { op = "set", key = "k" .. i, value = value(i) } end }
    assert.equal(N, acked, table.concat(errs, "\n"))
    local st = assert(c:node(l):status())
    -- the leader keeps 100 entries behind its snapshot: entry 1 is long gone
    assert.truthy(st.snapshot_index >= N - 100, "leader did not snapshot: " .. tostring(st.snapshot_index))

    local addr = c:add_node(4) -- luaraft run --join --peers 4=ITS_OWN_ADDRESS
    assert.truthy((c:node(l):add_member(4, addr, { learner = true })))
    assert.truthy(c:wait_for(function() return stale(c, 4, "k" .. N) == value(N) end, 20),
      "the learner did not catch up\n" .. c:log(4))
    local log4 = c:log(4)
    assert.truthy(log4:match("is not a known peer: added it at its advertised address"), log4)
    assert.truthy(log4:match("restored snapshot at index %d+"), "no InstallSnapshot on the learner\n" .. log4)
    assert.equal("learner", (members_of(c, l))[4])
    assert.equal(value(1), stale(c, 4, "k1"))

    local code, out = procs.run(("%s ctl --http %s promote 4"):format(procs.binary(), c:http_address(l)), 10)
    assert.equal(0, code, out)
    assert.equal("voter", (members_of(c, l))[4])
  end)

  it("removes an old voter, which stops taking part and says so in its log", function()
    local l = assert(c:leader(15))
    local victim = l % 3 + 1
    local code, out = procs.run(("%s ctl --http %s remove %d"):format(procs.binary(), c:http_address(l), victim), 10)
    assert.equal(0, code, out)
    local roles, n = members_of(c, l)
    assert.equal(3, n)
    assert.is_nil(roles[victim])
    assert.truthy((c:node(l):propose { op = "set", key = "after-remove", value = "yes" }))
    assert.truthy(c:wait_for(function()
      return c:log(victim):match("says this node is not a member: it was removed")
    end, 10), "the removed node did not notice\n" .. c:log(victim))
    -- it takes no part: no campaign moves the term of the others
    local term = assert(c:node(l):status()).term
    cluster.sleep(1.5)
    assert.equal(term, assert(c:node(l):status()).term)
    assert.is_nil(stale(c, victim, "after-remove"))
    c:stop(victim)
  end)

  it("serves the same state from every node restarted with only --id/--data/--http", function()
    local l = assert(c:leader(15))
    local ids = {}
    for id in pairs(members_of(c, l)) do ids[#ids + 1] = id end
    table.sort(ids)
    -- a snapshot taken on request (luaraft ctl snapshot), so every node
    -- restarts from a snapshot plus the log after it
    for _, id in ipairs(ids) do
      local code, out = procs.run(("%s ctl --http %s snapshot"):format(procs.binary(), c:http_address(id)), 10)
      -- (refused only when an automatic one was just taken at the applied index)
      assert.truthy(code == 0 or out:match("nothing applied since the last snapshot"), out)
    end
    for _, id in ipairs(ids) do c:stop(id) end
    for _, id in ipairs(ids) do c:restart(id) end
    assert.truthy(c:leader(15))
    for _, id in ipairs(ids) do
      assert.truthy(c:wait_for(function() return stale(c, id, "after-remove") == "yes" end, 15),
        "node " .. id .. " did not come back\n" .. c:log(id))
    end
    for _, id in ipairs(ids) do
      for i = 1, N, 7 do assert.equal(value(i), stale(c, id, "k" .. i)) end
      assert.equal(value(N), stale(c, id, "k" .. N))
      local log = c:log(id)
      assert.truthy(log:match("restored snapshot at index %d+\n[^\n]*loaded term"),
        "node " .. id .. " did not restart from its snapshot\n" .. log)
    end
  end)
end)

describe("a node that was down while the log was compacted", function()
  local c
  setup(function()
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary(), snapshot_entries = 50 }
  end)
  teardown(function() if c then c:close() end end)

  it("catches up through InstallSnapshot over TCP, resuming after its connection dropped mid-snapshot", function()
    local l = assert(c:leader(15))
    local f = l % 3 + 1
    c:kill(f)
    -- 16 MB of state (64 chunks of 256 KiB), then enough small writes that
    -- the leader's log no longer reaches back to what f has
    local big = string.rep("x", 256 * 1024)
    -- Snapshotting 16 MB on a sanitizer build can cost the leadership; the
    -- writes are idempotent sets, so a failed one is retried on the other
    -- live node (followers forward to whoever leads) for up to ~4 s.
    local live = { l, 6 - l - f }
    local function any_live(_, attempt) return c:http_address(live[attempt % 2 + 1]) end
    local acked, errs = writers.run { addr = any_live, total = 64, workers = 4, retries = 40,
      command = function(i) return { op = "set", key = "big" .. i, value = i .. big } end }
    assert.equal(64, acked, table.concat(errs, "\n"))
    acked, errs = writers.run { addr = any_live, total = 300, workers = 8, retries = 40,
      command = function(i) return { op = "set", key = "s" .. i, value = i } end }
    assert.equal(300, acked, table.concat(errs, "\n"))
    l = assert(c:leader(15))
    assert.truthy(c:wait_for(function()
      local st = c:node(l):status()
      return st and st.snapshot_index >= 300
    end, 10))

    c:restart(f)
    -- as soon as the first chunk arrives: freeze f, cut its connections
    -- with the leader (the faults reset them), thaw f, heal
    local seen = c:wait_for(function() return c:log(f):match("receiving a snapshot at index") end, 15)
    assert.truthy(seen, "no snapshot started\n" .. c:log(f))
    c:pause(f)
    -- while f is frozen the transfer cannot finish: the leader shows how far
    -- it got (bytes of total, rate, ETA) in its status
    local xfer
    assert.truthy(c:wait_for(function()
      local st = c:node(l):status()
      for _, x in ipairs(st and st.snapshot_transfers or {}) do
        if x.peer == f and x.direction == "out" then xfer = x end
      end
      return xfer
    end, 10), "no snapshot transfer in the leader's status")
    assert.truthy(xfer.bytes > 0 and xfer.bytes < xfer.total, cjson.encode(xfer))
    assert.truthy(xfer.total > 16 * 1024 * 1024, cjson.encode(xfer))
    assert.equal("number", type(xfer.rate))
    assert(c:call(l, "POST", "/v1/faults", cjson.encode { drop = { f } }, nil, 2))
    cluster.sleep(0.4)
    c:resume(f)
    cluster.sleep(0.3)
    assert(c:call(l, "POST", "/v1/faults", cjson.encode { drop = {} }, nil, 2))

    assert.truthy(c:wait_for(function() return stale(c, f, "s300") == 300 end, 30),
      "f did not catch up\n" .. c:log(f))
    local log = c:log(f)
    for line in log:gmatch("[^\n]*snapshot at index[^\n]*") do print(line) end
    assert.truthy(log:match("restored snapshot at index %d+"), log)
    -- f says it resumed in one of two ways, both from the offset it held
    -- (never offset 0): the leader's next chunk arrived at that offset, or
    -- f refused a chunk and named its offset; which depends on whether a
    -- chunk was in flight when the connection was cut
    assert.truthy(log:match("the transfer continues where it stopped") or log:match("asking node %d+ to resume from offset [1-9]"),
      "the snapshot was not resumed\n" .. log)
    assert.equal(7 .. big, stale(c, f, "big7"))
    -- both ends logged the finished transfer, and /metrics counts its bytes
    assert.truthy(c:log(f):match("snapshot at index %d+ received from node %d+: %d+ bytes in"), c:log(f))
    -- (the sender is whoever led when the transfer finished: l, unless an
    -- election under load moved the leadership meanwhile)
    local sender
    for _, id in ipairs(c:ids()) do
      if id ~= f and c:log(id):match("snapshot at index %d+ sent to node " .. f .. ": %d+ bytes in") then
        sender = id
      end
    end
    assert.truthy(sender, "no node logged the finished transfer\n" .. c:log(l))
    local _, metrics = procs.http(c:http_address(sender), "GET", "/metrics", "", nil, 5)
    local sent = tonumber(tostring(metrics):match("\nluaraft_snapshot_bytes_sent_total (%d+)"))
    assert.truthy(sent and sent >= xfer.total, tostring(metrics))
  end)
end)

describe("the database of a node under endless writes", function()
  local c
  setup(function()
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary(), snapshot_entries = 1000 }
  end)
  teardown(function() if c then c:close() end end)

  it("stays bounded with snapshot_entries = 1000 (100,000 writes, size at every 20k)", function()
    local l = assert(c:leader(15))
    local sizes = {}
    local value = string.rep("v", 100)
    for phase = 1, 5 do
      -- idempotent sets: a write that meets an election is retried on
      -- another node (followers forward to whoever leads)
      local acked, errs = writers.run { total = 20000, workers = 32, retries = 40,
        addr = function(_, attempt) return c:http_address((l + attempt - 1) % 3 + 1) end,
        command = function(i) return { op = "set", key = "k" .. (i % 500), value = value } end }
      assert.equal(20000, acked, table.concat(errs, "\n"))
      sizes[phase] = 0
      for _, id in ipairs(c:ids()) do
        sizes[phase] = math.max(sizes[phase], writers.db_size(c.dir .. "/" .. id))
      end
    end
    local msg = ("largest database after 20k/40k/60k/80k/100k writes: %d / %d / %d / %d / %d bytes"):format(
      sizes[1], sizes[2], sizes[3], sizes[4], sizes[5])
    print(msg)
    -- flat: the log behind each snapshot is deleted and the WAL reused at a bounded size
    assert.truthy(sizes[5] <= sizes[1] * 1.5 + 256 * 1024, msg)
    assert.truthy(sizes[5] < 8 * 1024 * 1024, msg)
    local st = assert(c:node(l):status())
    assert.truthy(st.snapshot_index >= 99000, "snapshot_index " .. tostring(st.snapshot_index))
  end)
end)
