-- The deterministic environment of a state machine (README "Deterministic
-- state machines"): outside-world functions raise clear errors, math.random
-- and pairs give the same results on every replica (each simulated node has
-- its own Lua state, with its own string hash seed), guards lift one by one.
local raft = require "raft"

local M = "spec/support/det_machines/"

local function elect(sim)
  assert(sim:run_until(function() return sim:leader() ~= nil end, 10000), "no leader")
  sim:advance(300) -- every follower knows the leader
  return sim:leader()
end

-- Waits until every node applied what the leader committed, then reads q on
-- each node locally (stale: this node's own state).
local function read_all(sim, q)
  local leader = sim:leader()
  local out = {}
  for _, id in ipairs(sim:nodes()) do
    assert(sim:run_until(function()
      return sim:status(id).applied_index >= sim:status(leader).commit_index
    end, 5000))
    out[id] = assert(sim:node(id):read(q, { consistency = "stale" }))
  end
  return out
end

-- A one-off state machine from source text (written to a temporary file).
local function script(src)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  return path
end

local function apply_err(src, cmd)
  local path = script(src)
  local sim = raft.sim { nodes = 1, seed = 3, state_machine = path }
  local leader = elect(sim)
  local r, err = sim:node(leader):propose(cmd or 1)
  os.remove(path)
  return r, err
end

describe("the state machine sandbox", function()
  it("turns os.time in apply into an apply_error that says to use meta.time", function()
    local sim = raft.sim { nodes = 3, seed = 11, state_machine = M .. "os_time.lua" }
    local leader = elect(sim)
    local _, err = sim:node(leader):propose("time")
    assert.equal("apply_error", err.code)
    assert.matches("os_time.lua:%d+: os.time is not available in a state machine: use meta.time "
                   .. "%(the leader's clock, the same on every replica%)", err.message)
    -- the cluster goes on, and meta.time is there
    assert.equal("number", type(sim:node(leader):propose("other")))
    sim:check()
  end)

  it("refuses the other outside-world functions, each by name", function()
    local cases = {
      { "return os.clock()", "os.clock is not available in a state machine: use meta.time" },
      { "return os.getenv('HOME')", "os.getenv is not available in a state machine" },
      { "return os.execute('true')", "os.execute is not available" },
      { "return os.remove('/tmp/x')", "os.remove is not available" },
      { "return os.date()", "os.date is not available in a state machine %(only as" },
      { "return io.open('/etc/hostname')", "io.open is not available in a state machine" },
      { "return io.write('x')", "io.write is not available" },
      { "return require('io').read()", "io.read is not available" },
      { "return dofile('x.lua')", "dofile is not available in a state machine" },
      { "return loadfile('x.lua')", "loadfile is not available" },
      { "return load(string.dump(function() end), 'b', 'b')", "load of binary chunks is not available" },
      { "return assert(load(string.dump(function() end)))", "attempt to load a binary chunk" },
      { "return collectgarbage()", "collectgarbage%(\"collect\"%) is not available" },
      { "return debug.sethook()", "debug.sethook is not available" },
      { "return math.randomseed()", "math.randomseed%(%) without a seed is not available" },
      { "return package.loadlib('x', 'y')", "package.loadlib is not available" },
      { "return next({[{}] = 1})", "next: a key of type table has no order" },
      { "for k in pairs({[print] = 1}) do end", "pairs: a key of type function has no order" },
    }
    for _, c in ipairs(cases) do
      local _, err = apply_err("return { apply = function() " .. c[1] .. " end }")
      assert.is_table(err, c[1])
      assert.equal("apply_error", err.code)
      assert.matches(c[2], err.message, 1, false)
    end
  end)

  it("keeps what is deterministic: os.date with '!' and a time, load of text, count", function()
    local r = assert(apply_err([[return { apply = function(cmd, meta)
      return { os.date("!%Y-%m-%d", 86400), load("return 1 + 1")(),
               type(collectgarbage("count")), os.difftime(5, 2), string.format("%d", 7) }
    end }]]))
    assert.same({ "1970-01-02", 2, "number", 3.0, "7" }, r)
  end)

  it("runs the script's top level guarded too", function()
    local path = script("local t = os.time() return { apply = function() end }")
    assert.has_error(function() raft.sim { nodes = 1, state_machine = path } end,
      "raft.sim: state machine: " .. path .. ":1: os.time is not available in a state "
      .. "machine: use meta.time (the leader's clock, the same on every replica)")
    os.remove(path)
  end)

  it("lifts a guard for a state machine that asks (unsafe), and refuses unknown ones", function()
    local r = assert(apply_err([[return { unsafe = { os = true },
      apply = function() return type(os.time()) end }]]))
    assert.equal("number", r)
    local path = script("return { unsafe = { clock = true }, apply = function() end }")
    assert.has_error(function() raft.sim { nodes = 1, state_machine = path } end)
    local ok, err = pcall(raft.sim, { nodes = 1, state_machine = path })
    assert.is_false(ok)
    assert.matches("unsafe: unknown guard clock", err)
    os.remove(path)
  end)

  it("gives the same math.random numbers on every replica, different for each entry", function()
    local sim = raft.sim { nodes = 3, seed = 12, state_machine = M .. "random.lua" }
    local leader = elect(sim)
    local results = {}
    for i = 1, 5 do results[i] = assert(sim:node(leader):propose("r")) end
    local drawn = read_all(sim, "all")
    for _, id in ipairs(sim:nodes()) do assert.same(results, drawn[id]) end
    assert.is_true(results[1] ~= results[2] and results[2] ~= results[3])
    sim:check()
  end)

  it("iterates pairs in the same order on every replica (own Lua state, own hash seed)", function()
    local sim = raft.sim { nodes = 5, seed = 13, state_machine = M .. "first_key.lua" }
    local leader = elect(sim)
    assert.equal("key1", sim:node(leader):propose(200))
    local firsts = read_all(sim, "last")
    for _, id in ipairs(sim:nodes()) do assert.equal("key1", firsts[id]) end
    sim:check()
  end)

  it("shows, with unsafe pairs = 'raw', the nondeterminism the guard prevents", function()
    local sim = raft.sim { nodes = 5, seed = 13, state_machine = M .. "first_key_raw.lua" }
    elect(sim)
    assert(sim:node(sim:leader()):propose(200))
    local firsts, distinct = read_all(sim, "last"), {}
    for _, v in pairs(firsts) do distinct[v] = true end
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    assert.is_true(n > 1, "five Lua states gave the same raw first key")
  end)

  it("iterates in canonical order: booleans, numbers by value, strings bytewise", function()
    local r = assert(apply_err([[return { apply = function()
      local t = { b = 1, a = 2, [10] = 3, [2] = 4, [1.5] = 5, [true] = 6, [false] = 7, [-1] = 8,
                  ["a\0"] = 9, [""] = 10 }
      local ks, via_next, k = {}, {}, nil
      for key in pairs(t) do ks[#ks + 1] = tostring(key) end
      repeat k = next(t, k) if k ~= nil then via_next[#via_next + 1] = tostring(k) end until k == nil
      local d = { x = 1, y = 2, z = 3 }
      for key in pairs(d) do d[key] = nil end -- clearing during the loop is allowed
      return { table.concat(ks, ","), table.concat(via_next, ","), next(d) == nil }
    end }]]))
    local want = "false,true,-1,1.5,2,10,,a,a\0,b"
    assert.same({ want, want, true }, r)
  end)

  it("honours __pairs", function()
    local r = assert(apply_err([[return { apply = function()
      local t = setmetatable({}, { __pairs = function(t) return function(_, k)
        if not k then return 1, "one" end end, t, nil end })
      for k, v in pairs(t) do return v end
    end }]]))
    assert.equal("one", r)
  end)

  it("gives the same first pairs key in separate processes", function()
    local exe = (os.getenv("LUARAFT_BUILD") or "build") .. "/luaraft"
    local function run(extra)
      local p = assert(io.popen(exe .. " spec/support/det_machines/first_key_main.lua " .. extra
                                .. " 2>&1"))
      local out = p:read("a")
      p:close()
      return out
    end
    local a, b = run(""), run("")
    assert.equal("key1\n", a)
    assert.equal(a, b)
  end)

  it("carries a factory function to each node only when it uses no outside locals", function()
    local outside = {}
    local ok, err = pcall(raft.sim, { nodes = 1, state_machine = function()
      return { apply = function() return outside end }
    end })
    assert.is_false(ok)
    assert.matches("uses the local 'outside' from outside", err)
    local sim = raft.sim { nodes = 3, seed = 14, state_machine = function()
      local n = 0
      return { apply = function() n = n + 1 return n end, query = function() return n end }
    end }
    local leader = elect(sim)
    assert.equal(1, sim:node(leader):propose("x"))
    local counts = read_all(sim, "n")
    for _, id in ipairs(sim:nodes()) do assert.equal(1, counts[id]) end
  end)
end)

-- table.sort in the sandbox is a stable merge sort (src/sm/sandbox.c): Lua's
-- own randomises its pivot on arrays over 100 elements, so elements a
-- comparator calls equal could come out in another order on another replica.
describe("table.sort in the sandbox", function()
  local SORTER = [[
    local out = {}
    local function records(n, keys)
      local recs = {}
      for i = 1, n do recs[i] = { key = (i * 7919) % keys, id = i } end
      return recs
    end
    local function ids(recs)
      local t = {}
      for i = 1, #recs do t[i] = recs[i].id end
      return table.concat(t, ",")
    end
    return {
      apply = function(cmd)
        if cmd == "ties" then
          local recs = records(1000, 10)
          table.sort(recs, function(a, b) return a.key < b.key end)
          out.ties = ids(recs)
        elseif cmd == "desc" then
          local recs = records(1000, 7)
          table.sort(recs, function(a, b) return a.key > b.key end)
          out.desc = ids(recs)
        elseif cmd == "numbers" then
          local t = { 5, 3, 9, 1, 3.5, -2, 100, 0, 7, 7, 2^53, -1e300, 11, 4, 8, 6, 12 }
          table.sort(t)
          for i = 1, #t do t[i] = tostring(t[i]) end
          return table.concat(t, " ")
        elseif cmd == "strings" then
          local t = { "pear", "apple", "fig", "", "apple pie", "Zebra", "b", "a" }
          table.sort(t)
          return table.concat(t, ",")
        elseif cmd == "big" then
          local t = {}
          for i = 1, 5000 do t[i] = (i * 104729) % 5003 end
          table.sort(t)
          for i = 2, #t do assert(t[i - 1] <= t[i], "not sorted at " .. i) end
          return #t
        elseif cmd == "inconsistent" then
          local t = {}
          for i = 1, 300 do t[i] = i % 3 end
          table.sort(t, function(a, b) return a <= b end)
          return #t
        elseif cmd == "comparator error" then
          table.sort({ 3, 2, 1 }, function() error("comparator broke") end)
        elseif cmd == "incomparable" then
          table.sort({ 1, "x", 2 })
        elseif cmd == "slow" then
          local t = {}
          for i = 1, 2000 do t[i] = -i end
          table.sort(t, function(a, b) for _ = 1, 100 do end return a < b end)
        end
        return true
      end,
      query = function(k) return out[k] end,
    }
  ]]

  -- the order a stable sort gives: by key, ties by original position (id)
  local function expected(n, keys, desc)
    local by = {}
    for i = 1, n do
      local k = (i * 7919) % keys
      by[k] = by[k] or {}
      table.insert(by[k], i)
    end
    local t = {}
    for k = desc and keys - 1 or 0, desc and 0 or keys - 1, desc and -1 or 1 do
      for _, id in ipairs(by[k] or {}) do t[#t + 1] = id end
    end
    return table.concat(t, ",")
  end

  local path, sim, leader
  setup(function()
    path = script(SORTER)
    sim = raft.sim { nodes = 3, seed = 21, state_machine = path, apply_budget = 1000000 }
    leader = elect(sim)
  end)
  teardown(function() os.remove(path) end)

  it("orders 1000 records with many ties the same way on every replica, stably", function()
    assert.is_true(sim:node(leader):propose("ties"))
    assert.is_true(sim:node(leader):propose("desc"))
    local ties, desc = read_all(sim, "ties"), read_all(sim, "desc")
    for _, id in ipairs(sim:nodes()) do
      assert.equal(expected(1000, 10), ties[id])
      assert.equal(expected(1000, 7, true), desc[id])
    end
    sim:check()
  end)

  it("sorts numbers and strings with the default <", function()
    assert.equal("-1e+300 -2 0 1 3 3.5 4 5 6 7 7 8 9 11 12 100 9.007199254741e+15",
                 sim:node(leader):propose("numbers"))
    assert.equal(",Zebra,a,apple,apple pie,b,fig,pear", sim:node(leader):propose("strings"))
    assert.equal(5000, sim:node(leader):propose("big"))
  end)

  it("gives some order, with no error, for an inconsistent comparator", function()
    assert.equal(300, sim:node(leader):propose("inconsistent"))
  end)

  it("turns an error in the comparator, or values < cannot compare, into apply_error", function()
    local r, err = sim:node(leader):propose("comparator error")
    assert.is_nil(r)
    assert.equal("apply_error", err.code)
    assert.matches(":%d+: comparator broke", err.message)
    r, err = sim:node(leader):propose("incomparable")
    assert.is_nil(r)
    assert.equal("apply_error", err.code)
    assert.matches("attempt to compare", err.message)
  end)

  it("counts the comparator's instructions toward the budget", function()
    local r, err = sim:node(leader):propose("slow")
    assert.is_nil(r)
    assert.equal("apply_error", err.code)
    assert.matches("instruction budget exceeded", err.message)
    assert.is_true(sim:node(leader):propose("numbers") ~= nil)
    sim:check()
  end)

  it("raises table.sort's own argument errors", function()
    local src = [[return { apply = function(cmd)
      if cmd == 1 then table.sort(5) else table.sort({ 2, 1 }, 5) end
    end }]]
    local _, e1 = apply_err(src, 1)
    assert.matches("bad argument #1 to 'sort' %(table expected, got number%)", e1.message)
    local _, e2 = apply_err(src, 2)
    assert.matches("bad argument #2 to 'sort' %(function expected, got number%)", e2.message)
  end)
end)

describe("the raft module a state machine sees", function()
  it("holds the codec and the version, not the binding (nodes, simulator, HTTP, loop)", function()
    local src = [[
      local r = require "raft"
      assert(r == raft, "require 'raft' and the global are one table")
      return { apply = function()
        local keys = {}
        for k in pairs(raft) do keys[#keys + 1] = k end
        table.sort(keys)
        return table.concat(keys, ",") .. "|" .. raft.decode(raft.encode({ 1, "x" }))[2]
      end }]]
    local r, err = apply_err(src)
    assert.is_nil(err)
    assert.equal("decode,encode,version|x", r)
  end)
end)
