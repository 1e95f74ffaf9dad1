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
end)
