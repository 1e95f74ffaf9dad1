-- raft.options: one definition of every option's default and check, shared
-- by raft.node, raft.sim, raft.cluster and `luaraft run`.
local options = require "raft.options"

describe("raft.options", function()
  it("fills the defaults of the options a kind takes", function()
    local o = assert(options.resolve("node", { id = 1 }))
    assert.equal(300, o.election_ms)
    assert.equal(50, o.heartbeat_ms)
    assert.equal(true, o.pre_vote)
    assert.equal("sqlite", o.storage)
    local s = assert(options.resolve("sim", { nodes = 3 }))
    assert.same({ 0, 2 }, s.disk_ms)
    assert.is_nil(s.storage) -- not a simulator option
  end)

  it("keeps the values it is given", function()
    local o = assert(options.resolve("sim", { election_ms = 1000, heartbeat_ms = 100, apply_budget = false }))
    assert.equal(1000, o.election_ms)
    assert.equal(false, o.apply_budget)
  end)

  it("names an unknown option and the closest known one", function()
    local o, err = options.resolve("node", { electon_ms = 5 })
    local _
    assert.is_nil(o)
    assert.equal("unknown option electon_ms (did you mean election_ms?)", err)
    _, err = options.resolve("sim", { hearbeat_ms = 5 })
    assert.equal("unknown option hearbeat_ms (did you mean heartbeat_ms?)", err)
    _, err = options.resolve("node", { zzzzzzzz = 1 })
    assert.equal("unknown option zzzzzzzz", err)
  end)

  it("refuses an option of another kind", function()
    local _, err = options.resolve("sim", { storage = "memory" })
    assert.matches("^unknown option storage", err)
  end)

  it("checks values with a sentence a user understands", function()
    local _, err = options.resolve("node", { election_ms = 100, heartbeat_ms = 100 })
    assert.equal("election_ms must be greater than heartbeat_ms", err)
    _, err = options.resolve("node", { election_ms = -1 })
    assert.equal("election_ms must be a positive integer", err)
    _, err = options.resolve("node", { storage = "disk" })
    assert.equal("storage must be sqlite or memory", err)
    _, err = options.resolve("node", { memory_max = 10 })
    assert.equal("memory_max must be at least 65536 bytes", err)
    _, err = options.resolve("sim", { disk_ms = { 5, 1 } })
    assert.equal("disk_ms must be { lo, hi } with 0 <= lo <= hi (milliseconds)", err)
  end)

  it("does not share default tables between calls", function()
    local a = assert(options.resolve("sim", {}))
    a.disk_ms[1] = 99
    local b = assert(options.resolve("sim", {}))
    assert.equal(0, b.disk_ms[1])
  end)

  it("suggests across transpositions and flag spellings", function()
    assert.equal("election_ms", options.suggest("eletcion_ms", options.names("node")))
    assert.equal("--snapshot-entries", options.flag("snapshot_entries"))
  end)

  it("is what raft.node and raft.sim check their options with", function()
    local raft = require "raft"
    local KV = "examples/kv.lua"
    local ok, err = pcall(raft.node, { id = 1, storage = "memory", state_machine = KV, electon_ms = 5 })
    assert.is_false(ok)
    assert.matches("raft.node: unknown option electon_ms %(did you mean election_ms%?%)", err)
    ok, err = pcall(raft.sim, { nodes = 3, state_machine = KV, hearbeat_ms = 5 })
    assert.is_false(ok)
    assert.matches("raft.sim: unknown option hearbeat_ms %(did you mean heartbeat_ms%?%)", err)
    ok, err = pcall(raft.sim, { nodes = 3, state_machine = KV, disk_ms = { 5, 1 } })
    assert.is_false(ok)
    assert.matches("raft.sim: disk_ms must be", err)
    -- an option of the other kind is not silently ignored either
    ok, err = pcall(raft.node, { id = 1, storage = "memory", state_machine = KV, seed = 7 })
    assert.is_false(ok)
    assert.matches("raft.node: unknown option seed", err)
    ok, err = pcall(require("raft.cluster").new, { state_machine = KV, snapshot_entires = 5 })
    assert.is_false(ok)
    assert.matches("raft.cluster: unknown option snapshot_entires %(did you mean snapshot_entries%?%)", err)
    -- integral floats (1e6) are integers
    local n = raft.node({ id = 1, storage = "memory", state_machine = KV, apply_budget = 1e6,
      peers = { [1] = "127.0.0.1:1" } })
    assert.equal(1000000, n.opts.apply_budget)
    assert.equal(math.type(1000000), math.type(n.opts.apply_budget))
    -- the defaults are raft.options' own
    assert.equal(options.default("election_ms"), n.opts.election_ms)
    assert.equal(options.default("snapshot_entries"), n.opts.snapshot_entries)
  end)

  it("makes raft.node refuse a wait it does not know", function()
    local raft = require "raft"
    local n = raft.node({ id = 1, storage = "memory", state_machine = "examples/kv.lua",
      peers = { [1] = "127.0.0.1:" .. require("support.procs").free_port() }, log_level = "error" })
    n:start()
    local ok, err = pcall(n.propose, n, { op = "set", key = "a", value = 1 }, { wait = "bogus" })
    n:stop()
    assert.is_false(ok)
    assert.matches("wait must be \"apply\" or \"commit\"", err)
  end)
end)
