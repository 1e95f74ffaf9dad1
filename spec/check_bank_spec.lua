-- The bank example (examples/bank.lua) and its checker model
-- (raft.check_models.bank, docs/checker.md): a simulated cluster under faults
-- keeps a history the model accepts, and the model rejects broken ones.
local raft = require "raft"
local check = require "raft.check"
local models = require "raft.check_models"

local function op(kind, body, result, t0, t1, err)
  local o = { kind = kind, invoke_ms = t0, complete_ms = t1, node = 1 }
  if kind == "read" then o.q = body else o.cmd = body end
  if err then o.err = { code = err, message = err } else o.done, o.result = true, result end
  return o
end
local function open(a, n, r, t0, t1) return op("propose", { op = "open", account = a, amount = n }, r, t0, t1) end
local function transfer(from, to, n, r, t0, t1, err)
  return op("propose", { op = "transfer", from = from, to = to, amount = n }, r, t0, t1, err)
end
local function balance(a, r, t0, t1) return op("read", { account = a }, r, t0, t1) end
local function total(r, t0, t1) return op("read", { total = true }, r, t0, t1) end

describe("the bank model", function()
  it("accepts a correct history, by table or by name", function()
    local h = {
      open("a", 100, true, 0, 10), open("b", 0, true, 0, 10),
      transfer("a", "b", 80, true, 20, 30),
      transfer("a", "b", 80, false, 40, 50), -- would overdraw: refused
      balance("a", 20, 60, 70), balance("b", 80, 60, 70), total(100, 60, 70),
    }
    assert.is_true((check.linearizable(h, models.bank)))
    assert.is_true((check.linearizable(h, "bank")))
  end)

  it("catches a transfer that overdrew", function()
    local h = {
      open("a", 100, true, 0, 10), open("b", 0, true, 0, 10),
      transfer("a", "b", 80, true, 20, 30),
      transfer("a", "b", 80, true, 40, 50), -- acknowledged, but a had 20
    }
    local ok, cex = check.linearizable(h, "bank")
    assert.is_false(ok)
    assert.matches("transfer 80 from \"a\" to \"b\"", cex.message, 1, true)
  end)

  it("catches money that appeared (a total no set of deposits adds up to) without a search", function()
    local h = {
      open("a", 100, true, 0, 10), open("b", 50, true, 0, 10),
      transfer("a", "b", 30, true, 20, 30),
      total(180, 40, 50),
    }
    local stats = {}
    local ok, cex = check.linearizable(h, "bank", { stats = stats })
    assert.is_false(ok)
    assert.equal(0, stats.steps)
    assert.matches("transfers conserve money", cex.message, 1, true)
  end)

  it("catches a lost transfer and accepts it when its outcome was unknown", function()
    local h = {
      open("a", 100, true, 0, 10), open("b", 0, true, 0, 10),
      transfer("a", "b", 60, true, 20, 30),
      balance("b", 0, 40, 50), -- the acknowledged transfer is not there
    }
    assert.is_false((check.linearizable(h, "bank")))
    h[3] = transfer("a", "b", 60, nil, 20, 30, "timeout")
    assert.is_true((check.linearizable(h, "bank")))
    h[#h + 1] = balance("b", 60, 60, 70) -- it happened after all: fine too
    assert.is_true((check.linearizable(h, "bank")))
    h[#h + 1] = balance("b", 0, 80, 90) -- but then it cannot vanish
    assert.is_false((check.linearizable(h, "bank")))
  end)

  it("raises on ops the model does not know", function()
    assert.has_error(function()
      check.linearizable({ op("propose", { op = "withdraw", account = "a", amount = 1 }, true, 0, 1) }, "bank")
    end)
  end)
end)

describe("the bank in raft.sim under faults", function()
  it("never overdraws, conserves the total, and its history passes the bank model", function()
    for _, seed in ipairs { 3, 17, 42 } do
      local sim = raft.sim { nodes = 3, seed = seed, state_machine = "examples/bank.lua",
                             election_ms = 300, heartbeat_ms = 50 }
      local x = seed
      local function rand(lo, hi)
        x = (x * 1103515245 + 12345) % 2147483648
        return lo + (x >> 8) % (hi - lo + 1)
      end
      local accounts = { "a", "b", "c" }
      assert(sim:run_until(function() return sim:leader() ~= nil end, 10000))
      for _, a in ipairs(accounts) do
        assert.is_true(sim:wait(sim:propose({ op = "open", account = a, amount = 100 }), 10000))
      end
      sim:net { drop = 0.05, duplicate = 0.05, delay = { 1, 30 }, reorder = true }
      local clients, down = { {}, {}, {}, {} }, nil
      local refused, moved = 0, 0
      for step = 1, 400 do
        for _, c in ipairs(clients) do
          local t = c.t
          if t and t.done and t.kind == "propose" and t.err == nil then
            if t.result then moved = moved + 1 else refused = refused + 1 end
          end
          if t == nil or t.done then
            c.t = nil
            local node = rand(1, 3)
            if node ~= down then
              local r = rand(1, 10)
              if r <= 6 then
                local from = accounts[rand(1, 3)]
                local to = accounts[rand(1, 3)]
                c.t = sim:propose({ op = "transfer", from = from, to = to, amount = rand(1, 120) },
                                  { node = node, timeout = 2000 })
              elseif r <= 8 then
                c.t = sim:read({ account = accounts[rand(1, 3)] }, { node = node, timeout = 2000 })
              else
                c.t = sim:read({ total = true }, { node = node, timeout = 2000 })
              end
            end
          end
        end
        if step % 40 == 10 then
          down = rand(1, 3)
          sim:crash(down)
        elseif step % 40 == 25 and down then
          sim:restart(down)
          down = nil
        elseif step % 40 == 32 then
          sim:isolate(rand(1, 3))
        elseif step % 40 == 38 then
          sim:heal()
        end
        sim:advance(rand(10, 60))
      end
      if down then sim:restart(down) end
      sim:heal()
      sim:net { drop = 0, duplicate = 0, delay = { 1, 5 }, reorder = false }
      sim:advance(5000)
      sim:check()
      -- the workload did what it is for: money moved, overdrafts were refused
      assert.is_true(moved > 10, "only " .. moved .. " transfers went through")
      assert.is_true(refused > 5, "only " .. refused .. " transfers were refused")
      -- conservation, read through Raft at the end
      local l = assert(sim:leader())
      assert.equal(300, sim:wait(sim:read({ total = true }, { node = l }), 10000))
      local all = sim:wait(sim:read({ all = true }, { node = l }), 10000)
      for _, a in ipairs(accounts) do assert.is_true(all[a] >= 0) end
      local h, failed = sim:history(), 0
      for _, t in ipairs(h) do if t.err then failed = failed + 1 end end
      assert.is_true(#h > 150 and failed > 5, #h .. " ops, " .. failed .. " failed")
      local ok, cex = check.linearizable(h, "bank")
      assert(ok == true, "seed " .. seed .. ": " .. tostring(cex and cex.message))
      sim:close()
    end
  end)
end)
