-- The linearizability checker (lua/raft/check.lua) on hand-built and random
-- histories in the simulator's ticket format (API.md section 4).
package.path = "lua/?.lua;spec/?.lua;" .. package.path
local check = require "raft.check"
local gen = require "helpers.check_gen"

-- Builders for tickets: a completed op, one of unknown outcome, a failed one.
local function propose(cmd, result, t0, t1, node)
  return { kind = "propose", cmd = cmd, result = result, done = true,
    invoke_ms = t0, complete_ms = t1, node = node or 1 }
end
local function set(key, value, t0, t1)
  return propose({ op = "set", key = key, value = value }, true, t0, t1)
end
local function read(key, result, t0, t1)
  return { kind = "read", q = { key = key }, result = result, done = true,
    invoke_ms = t0, complete_ms = t1, node = 1 }
end
local function failed(op, code)
  op.result, op.err = nil, { code = code, message = code }
  return op
end
local function unfinished(op)
  op.result, op.done, op.complete_ms = nil, false, nil
  return op
end

local function assert_linearizable(history, model)
  local ok, cex = check.linearizable(history, model or "kv")
  assert(ok == true, cex and cex.message)
end

local function assert_not_linearizable(history, model)
  local ok, cex = check.linearizable(history, model or "kv")
  assert.is_false(ok)
  assert.is_table(cex)
  assert.is_string(cex.message)
  return cex
end

describe("raft.check.linearizable with the kv model", function()
  it("accepts an empty history", function()
    assert_linearizable({})
  end)

  it("accepts a sequential history", function()
    assert_linearizable {
      set("x", 1, 0, 10),
      read("x", 1, 20, 30),
      set("x", 2, 40, 50),
      read("x", 2, 60, 70),
      read("y", nil, 80, 90),
    }
  end)

  it("accepts a read that sees either of two overlapping writes", function()
    for _, seen in ipairs { 1, 2 } do
      assert_linearizable {
        set("x", 1, 0, 50),
        set("x", 2, 10, 60),
        read("x", seen, 20, 30),
      }
    end
  end)

  it("accepts a read that sees the old value while a write is in flight", function()
    assert_linearizable {
      set("x", 1, 0, 10),
      set("x", 2, 20, 60),
      read("x", 1, 30, 40),
      read("x", 2, 50, 55),
    }
  end)

  it("treats operations that touch at the same millisecond as concurrent", function()
    assert_linearizable {
      set("x", 1, 0, 10),
      read("x", nil, 10, 20),
    }
  end)

  it("rejects a stale read after a completed write, naming the key and the prefix", function()
    local history = {
      set("x", 1, 0, 10),
      set("x", 2, 20, 30),
      read("x", 1, 40, 50),
    }
    local cex = assert_not_linearizable(history)
    assert.equal("x", cex.key)
    assert.equal(3, #cex.ops)
    assert.equal(history[3], cex.ops[3])
    assert.same({ history[1], history[2] }, cex.linearized)
    assert.same({ history[3] }, cex.next)
    assert.equal(2, cex.state)
    assert.matches("no linearization of 3 operations on key 'x'", cex.message, 1, true)
    assert.matches("longest linearizable prefix has 2", cex.message, 1, true)
    assert.matches('#3 read "x" -> 1 [40, 50]', cex.message, 1, true)
    assert.matches("state is 2", cex.message, 1, true)
  end)

  it("rejects a read of a value that was never written", function()
    local cex = assert_not_linearizable {
      set("x", 1, 0, 10),
      read("x", 7, 5, 20),
    }
    assert.equal("x", cex.key)
  end)

  it("rejects a read that sees a write before the write was invoked", function()
    assert_not_linearizable {
      read("x", 1, 0, 10),
      set("x", 1, 20, 30),
    }
  end)

  it("accepts a timed-out write that later shows up in a read", function()
    assert_linearizable {
      set("x", 1, 0, 10),
      failed(set("x", 2, 20, 30), "timeout"),
      read("x", 1, 40, 50),
      read("x", 2, 500, 510),
    }
  end)

  it("accepts a timed-out or unfinished write that never shows up", function()
    assert_linearizable {
      set("x", 1, 0, 10),
      failed(set("x", 2, 20, 30), "timeout"),
      unfinished(set("x", 3, 25, 35)),
      failed(set("x", 4, 26, 36), "dropped"),
      read("x", 1, 40, 50),
      read("x", 1, 500, 510),
    }
  end)

  it("rejects a timed-out write that shows up before it was invoked", function()
    assert_not_linearizable {
      read("x", 2, 0, 10),
      failed(set("x", 2, 20, 30), "timeout"),
    }
  end)

  it("rejects an acknowledged write that is lost", function()
    local cex = assert_not_linearizable {
      set("x", 1, 0, 10),
      set("x", 2, 20, 30),
      read("x", 2, 40, 50),
      read("x", 1, 60, 70),
    }
    assert.equal(4, #cex.ops)
  end)

  it("leaves out writes that definitely did not happen", function()
    for _, code in ipairs { "not_leader", "too_large", "busy", "bad_request", "apply_error" } do
      assert_linearizable {
        set("x", 1, 0, 10),
        failed(set("x", 2, 20, 30), code),
        read("x", 1, 40, 50),
      }
    end
  end)

  it("leaves out reads that failed or did not finish", function()
    assert_linearizable {
      set("x", 1, 0, 10),
      failed(read("x", 99, 20, 30), "timeout"),
      unfinished(read("x", 98, 20, 30)),
      read("x", 1, 40, 50),
    }
  end)

  it("checks del results by whether the key existed", function()
    local del = function(r, t0, t1) return propose({ op = "del", key = "x" }, r, t0, t1) end
    assert_linearizable {
      del(false, 0, 10), set("x", 1, 20, 30), del(true, 40, 50), read("x", nil, 60, 70),
    }
    assert_not_linearizable { set("x", 1, 0, 10), del(false, 20, 30) }
    assert_not_linearizable { del(true, 0, 10) }
  end)

  it("checks cas results and effects", function()
    local cas = function(old, new, r, t0, t1)
      return propose({ op = "cas", key = "x", old = old, new = new }, r, t0, t1)
    end
    assert_linearizable {
      set("x", 1, 0, 10),
      cas(1, 2, true, 20, 30),
      cas(1, 3, false, 40, 50),
      read("x", 2, 60, 70),
      cas(nil, 5, false, 80, 90),
    }
    assert_linearizable { cas(nil, 1, true, 0, 10), read("x", 1, 20, 30) }
    assert_not_linearizable { set("x", 1, 0, 10), cas(1, 2, false, 20, 30) }
    assert_not_linearizable { set("x", 1, 0, 10), cas(1, 2, true, 20, 30), read("x", 1, 40, 50) }
  end)

  it("checks incr results, counting a missing key as 0", function()
    local incr = function(by, r, t0, t1)
      return propose({ op = "incr", key = "n", by = by }, r, t0, t1)
    end
    assert_linearizable {
      incr(2, 2, 0, 10), incr(3, 5, 20, 30), read("n", 5, 40, 50),
    }
    -- Two concurrent increments may be ordered either way.
    assert_linearizable { incr(1, 2, 0, 30), incr(1, 1, 10, 40) }
    assert_not_linearizable { incr(1, 1, 0, 30), incr(1, 1, 10, 40) }
    -- An unknown increment shows up in a later result.
    assert_linearizable {
      incr(1, 1, 0, 10), failed(incr(1, nil, 20, 30), "timeout"), incr(1, 3, 40, 50),
    }
  end)

  it("checks each key on its own and reports the smallest failing key", function()
    local history = {}
    for i = 1, 10 do
      history[#history + 1] = set("a", i, i * 10, i * 10 + 5)
      history[#history + 1] = read("a", i, i * 10 + 6, i * 10 + 8)
    end
    history[#history + 1] = set("b", 1, 0, 10)
    history[#history + 1] = read("b", 2, 20, 30)
    history[#history + 1] = set(7, "seven", 0, 10)
    history[#history + 1] = read(7, "seven", 20, 30)
    local cex = assert_not_linearizable(history)
    assert.equal("b", cex.key)
    assert.equal(2, #cex.ops)
    -- The same value written under another key is not a read of this one.
    assert_not_linearizable { set("a", 1, 0, 10), read("b", 1, 20, 30) }
  end)

  it("backtracks to find the only order of concurrent writes that reads allow", function()
    -- Four writes all in flight over [0, 100]; the reads pin the order
    -- 3, 1, 4, 2, which a checker that takes the first write that fits at
    -- each step (1 first) misses.
    assert_linearizable {
      set("x", 1, 0, 100), set("x", 2, 0, 100), set("x", 3, 0, 100), set("x", 4, 0, 100),
      read("x", 3, 10, 20), read("x", 1, 30, 40), read("x", 4, 50, 60), read("x", 2, 70, 80),
      read("x", 2, 110, 120),
    }
    assert_not_linearizable {
      set("x", 1, 0, 100), set("x", 2, 0, 100), set("x", 3, 0, 100), set("x", 4, 0, 100),
      read("x", 3, 10, 20), read("x", 1, 30, 40), read("x", 4, 50, 60), read("x", 2, 70, 80),
      read("x", 3, 110, 120),
    }
  end)

  it("rejects a failing history with many commuting writes, thanks to the cache", function()
    -- 14 concurrent writes of the same value: 14! (about 8.7e10) orders to
    -- refute, but only 2^14 (set, state) pairs, which is what the memoised
    -- search visits, trying at most 15 ops from each.
    local history = {}
    for i = 1, 14 do history[i] = set("x", 1, 0, 100 + i) end
    history[#history + 1] = read("x", 2, 200, 210)
    local stats = {}
    local ok = check.linearizable(history, "kv", { stats = stats })
    assert.is_false(ok)
    assert.is_true(stats.steps <= 2 ^ 14 * 15)
  end)

  it("lets two timed-out writes of the same value both show up", function()
    assert_linearizable {
      set("x", 1, 0, 10),
      failed(set("x", 2, 20, 30), "timeout"),
      failed(set("x", 2, 22, 32), "timeout"),
      read("x", 2, 40, 50),
      set("x", 3, 60, 70),
      read("x", 2, 80, 90),
    }
    assert_not_linearizable {
      set("x", 1, 0, 10),
      failed(set("x", 2, 20, 30), "timeout"),
      read("x", 2, 40, 50),
      set("x", 3, 60, 70),
      read("x", 2, 80, 90),
    }
  end)

  it("accepts a timed-out cas that shows up, and rejects it before its old value", function()
    local cas = failed(propose({ op = "cas", key = "x", old = 1, new = 2 }, nil, 5, 15), "timeout")
    assert_linearizable {
      cas, set("x", 1, 20, 30), read("x", 1, 40, 50), read("x", 2, 60, 70),
    }
    assert_not_linearizable {
      cas, read("x", 2, 20, 30), set("x", 1, 40, 50),
    }
  end)

  it("copes with many writes of unknown outcome on one key", function()
    local history = { set("x", 0, 0, 5) }
    for i = 1, 40 do history[#history + 1] = failed(set("x", i, i, i + 1), "timeout") end
    history[#history + 1] = read("x", 40, 100, 110)
    history[#history + 1] = read("x", 3, 120, 130)
    history[#history + 1] = read("x", 0, 140, 150)
    assert_not_linearizable(history)
    history[#history] = read("x", 17, 140, 150)
    assert_linearizable(history)
  end)

  it("reports an inconclusive search as such: nil, inconclusive = {key, reason}, no violation text", function()
    -- 14 concurrent writes, 4 of unknown outcome, and a read of a value one
    -- of them wrote but that cannot be explained without a long search
    local history = {}
    for i = 1, 14 do history[i] = set("x", i % 7, 0, 100 + i) end
    for i = 1, 4 do history[#history + 1] = failed(set("x", 20 + i, 0, 1), "timeout") end
    history[#history + 1] = read("x", 3, 200, 210)
    history[#history + 1] = set("x", 5, 220, 230)
    history[#history + 1] = read("x", 3, 240, 250)
    history[#history + 1] = set("y", 1, 0, 10)
    local ok, cex = check.linearizable(history, "kv", { max_steps = 30 })
    assert.is_nil(ok)
    assert.is_true(cex.gave_up)
    assert.is_table(cex.inconclusive)
    assert.equal("x", cex.inconclusive.key)
    assert.equal("x", cex.key)
    assert.matches("limit of 30 steps", cex.inconclusive.reason, 1, true)
    assert.matches("^inconclusive %(this is not a violation", cex.message)
    assert.is_nil(cex.message:find("no linearization", 1, true))
    assert.is_nil(cex.message:find("none of the required", 1, true))
    -- with room to search it is decided
    assert.is_false((check.linearizable(history, "kv")))
  end)

  it("refutes a read of a value that nothing writes without searching", function()
    local history = {}
    for i = 1, 30 do history[i] = failed(set("x", i, i, i + 1), "timeout") end
    history[#history + 1] = read("x", "ghost", 100, 110)
    local stats = {}
    local ok, cex = check.linearizable(history, "kv", { stats = stats })
    assert.is_false(ok)
    assert.equal(0, stats.steps)
    assert.matches('#31 read "x" -> "ghost"', cex.message, 1, true)
    assert.matches("no operation on the key writes", cex.message, 1, true)
  end)

  it("refutes a stale read in a large history by a window when the full search is too big", function()
    local h = gen.history(42, { n = 5000, keys = { "a", "b", "c" }, spread = 40, unknown = 14 })
    assert.is_true((check.linearizable(h, "kv")))
    -- make one read in the middle return a value that completed writes replaced
    for i = #h // 2, #h do
      local op = h[i]
      if op.kind == "read" and op.done and op.err == nil and op.result ~= nil then
        local n = 0
        for j = i - 1, 1, -1 do
          local w = h[j]
          if w.kind == "propose" and w.cmd.key == op.q.key and w.cmd.op == "set" and w.done
              and w.err == nil and w.cmd.value ~= op.result then
            n = n + 1
            if n == 3 then op.result = w.cmd.value break end
          end
        end
        break
      end
    end
    local ok, cex = check.linearizable(h, "kv")
    assert.is_false(ok)
    assert.matches("from no starting state", cex.message, 1, true)
  end)
end)

describe("raft.check.linearizable with a table model", function()
  -- A counter: proposals add, returning the new total; reads return it.
  local counter = {
    init = function() return 0 end,
    step = function(state, op)
      if op.kind == "read" then return op.result == state, state end
      local new = state + op.cmd.add
      return op.unknown or op.result == new, new
    end,
  }
  local function add(n, r, t0, t1) return propose({ add = n }, r, t0, t1) end
  local function total(r, t0, t1)
    return { kind = "read", q = {}, result = r, done = true, invoke_ms = t0, complete_ms = t1 }
  end

  it("accepts a counter history with concurrent adds", function()
    assert_linearizable({ add(1, 3, 0, 50), add(2, 2, 10, 60), total(3, 70, 80) }, counter)
  end)

  it("rejects a counter history that lost an add, without a partition key", function()
    local cex = assert_not_linearizable({ add(1, 1, 0, 10), add(2, 3, 20, 30), total(2, 40, 50) },
      counter)
    assert.is_nil(cex.key)
    assert.matches("no linearization of 3 operations;", cex.message, 1, true)
  end)

  it("passes unknown outcomes to the model as op.unknown", function()
    assert_linearizable({ add(1, 1, 0, 10), failed(add(5, nil, 20, 30), "timeout"),
      total(6, 40, 50) }, counter)
  end)

  it("uses the model's partition and a table state", function()
    -- Registers by name, with the whole map as the state of each partition.
    local registers = {
      init = function() return {} end,
      partition = function(op) return (op.cmd or op.q).name end,
      step = function(state, op)
        if op.kind == "read" then return op.result == state.v, state end
        return true, { v = op.cmd.v }
      end,
    }
    local w = function(name, v, t0, t1) return propose({ name = name, v = v }, true, t0, t1) end
    local r = function(name, v, t0, t1)
      return { kind = "read", q = { name = name }, result = v, done = true,
        invoke_ms = t0, complete_ms = t1 }
    end
    assert_linearizable({ w("p", 1, 0, 10), w("q", 2, 0, 10), r("p", 1, 20, 30),
      r("q", 2, 20, 30) }, registers)
    local cex = assert_not_linearizable({ w("p", 1, 0, 10), w("q", 2, 0, 10),
      r("p", 2, 20, 30) }, registers)
    assert.equal("p", cex.key)
    assert.matches("on partition 'p'", cex.message, 1, true)
  end)
end)

describe("raft.check.linearizable on random histories", function()
  it("accepts histories built from a sequential execution with overlapping intervals", function()
    for seed = 1, 30 do
      local history = gen.history(seed, { n = 300, keys = { "a", "b", "c", "d" }, spread = 40 })
      local ok, cex = check.linearizable(history, "kv")
      assert(ok == true, "seed " .. seed .. ": " .. (cex and cex.message or ""))
    end
  end)

  it("rejects the same histories once one read is corrupted", function()
    for seed = 1, 30 do
      local history = gen.history(seed, { n = 300, keys = { "a", "b", "c", "d" }, spread = 40 })
      local rand = gen.rng(seed + 1000)
      local reads = {}
      for _, op in ipairs(history) do
        if op.kind == "read" and op.done and not op.err then reads[#reads + 1] = op end
      end
      local victim = reads[rand(1, #reads)]
      victim.result = "never written"
      local ok, cex = check.linearizable(history, "kv")
      assert(ok == false, "seed " .. seed .. ": corrupted read accepted")
      assert.equal(victim.q.key, cex.key)
      local found = false
      for _, op in ipairs(cex.ops) do found = found or op == victim end
      assert(found, "seed " .. seed .. ": the corrupted read is not in the counterexample")
    end
  end)

  it("rejects a history where one write's acknowledgement is moved before its read", function()
    -- Swap in a read that returns a value before its write was invoked.
    for seed = 1, 20 do
      local history = gen.history(seed, { n = 200, keys = { "a" }, spread = 20, unknown = 0 })
      local last_set
      for _, op in ipairs(history) do
        if op.kind == "propose" and op.cmd.op == "set" and op.done and not op.err then
          last_set = op
        end
      end
      table.insert(history, 1, read("a", last_set.cmd.value, -10, -5))
      assert.is_false((check.linearizable(history, "kv")))
    end
  end)
end)

describe("raft.check.linearizable against a brute-force check", function()
  local brute = require "helpers.check_brute"

  it("agrees on small random histories full of unknown outcomes", function()
    local yes = 0
    for seed = 1, 1500 do
      local history = gen.tiny(seed, 7)
      local expected = brute.linearizable(history)
      local ok = check.linearizable(history, "kv")
      assert(ok == expected, "seed " .. seed .. ": check says " .. tostring(ok) ..
        ", brute force says " .. tostring(expected))
      -- the same with the full search cut short at once, so every verdict
      -- "false" comes from pruning or window refutation: still sound
      local ok2 = check.linearizable(history, "kv", { first_steps = 0, max_steps = 1e6 })
      assert(ok2 == expected, "seed " .. seed .. " (windows): check says " .. tostring(ok2) ..
        ", brute force says " .. tostring(expected))
      if ok then yes = yes + 1 end
    end
    -- Both answers are well represented.
    assert.is_true(yes > 150 and yes < 1350)
  end)
end)

describe("raft.check.linearizable input validation", function()
  local function raises(pattern, history, model)
    local ok, err = pcall(check.linearizable, history, model or "kv")
    assert.is_false(ok)
    assert.matches(pattern, err, 1, true)
  end

  it("raises on a history that is not a list", function()
    raises("history must be a list of operations, got a string", "nope")
    raises("history must be a list", { a = 1 })
  end)

  it("raises on an op without invoke_ms, naming its position", function()
    raises("raft.check.linearizable: op 3 has no invoke_ms",
      { set("x", 1, 0, 10), set("x", 2, 20, 30), { kind = "read", q = { key = "x" }, done = true } })
  end)

  it("raises on ops that are not tables, of unknown kind, or complete before invoke", function()
    raises("op 1 is a number, not a table", { 5 })
    raises('op 1 has kind "write"', { { kind = "write", invoke_ms = 0 } })
    raises("op 1 completes (complete_ms 5) before it is invoked (invoke_ms 9)",
      { set("x", 1, 9, 5) })
  end)

  it("raises on kv ops the model does not know", function()
    raises('op 1 has cmd.op "append"',
      { propose({ op = "append", key = "x", value = 1 }, true, 0, 10) })
    raises("op 1 is a read without q.key", { read(nil, 1, 0, 10) })
  end)

  it("raises on an unknown model name or a malformed model", function()
    raises("unknown model 'nope'", {}, "nope")
    raises("model must be", {}, { init = function() return 0 end })
  end)

  it("reports the caller's line, not the checker's", function()
    local ok, err = pcall(function() check.linearizable("nope", "kv") end)
    assert.is_false(ok)
    assert.matches("check_spec.lua", err, 1, true)
  end)
end)
