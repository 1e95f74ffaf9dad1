-- raft.sim: a deterministic simulated cluster (API.md section 4).
--
-- The cluster itself (cores, storage, network, clock, invariant checks) is C
-- (src/sim/, bound as core.sim_new); this file adds tickets, history, waiting
-- and the node objects. Every duration here is virtual milliseconds, except
-- the node API's timeouts, which are seconds as for a real node.
local core = require "raft.core"
local errors = require "raft.errors"
local options = require "raft.options"

local decode = core.decode
local M = {}

local Sim = {}
Sim.__index = Sim

local Node = {}
Node.__index = Node

local DEFAULT_TIMEOUT_MS = 5000

--- raft.sim { nodes = 3, seed = 7, state_machine = "kv.lua", ... }
-- Options beyond API.md: snapshot_entries, max_sessions, disk_ms = {lo, hi}
-- (virtual disk latency, default {0, 2}), delay = {lo, hi} (default network
-- delay, default {1, 5}), trace = true | false | "messages", checks = false
-- (skip the invariant checks, for benchmarks), max_entry_bytes, ...
-- Determinism guards (README "Deterministic state machines"): apply_budget
-- (instructions per apply, default 1e8; false: none), memory_max (bytes of a
-- node's Lua state, default 1 GiB), node_memory_max = { [id] = bytes } (a node
-- with less memory), digest_entries (checkpoint interval for digest(),
-- default 1000; false: never). status() adds halted, halt_reason, diverged =
-- { index, mine, majority }, digests = { taken, matched, mismatches },
-- budget_exceeded, memory_used, memory_max.
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("raft.sim: options must be a table", 2) end
  if opts.state_machine == nil then
    error("raft.sim: state_machine is required (a path or a function)", 2)
  end
  -- unknown keys (with the closest known one), the shared checks and
  -- defaults of raft.options
  opts = options.check("sim", opts, "raft.sim")
  local c = core.sim_new(opts)
  local self = setmetatable({
    c = c,
    pending = {},   -- request id -> ticket
    tickets = {},   -- every ticket, in invoke order
    nodes_ = {},    -- id -> node object
    groups = {},    -- id -> partition group (nil: not partitioned)
    netcfg = { drop = 0, duplicate = 0, delay = opts.delay, reorder = false },
    listeners = nil,
  }, Sim)
  return self
end

-- ---- completions -----------------------------------------------------------
function Sim:_drain()
  local c, pending = self.c, self.pending
  while true do
    local id, time, code, data, index, term, leader = c:completion()
    if not id then break end
    local t = pending[id]
    if t then
      pending[id] = nil
      t.done = true
      t.complete_ms = time
      if index ~= 0 then t.index, t.term = index, term end
      if code then
        t.err = errors.new(code, data, leader ~= 0 and { leader = leader } or nil)
      elseif #data > 0 then
        local ok, v = pcall(decode, data)
        if ok then t.result = v else t.err = errors.new("bad_request", tostring(v)) end
      elseif t.kind ~= "propose" then
        t.result = true -- barriers and membership changes
      end
    end
  end
  if self.listeners then self:_notify() end
end

function Sim:_pick(node)
  if node ~= nil then return node end
  local leader = self.c:leader()
  if leader then return leader end
  local status = self.c.status
  for _, id in ipairs(self.c:nodes()) do
    if status(self.c, id).up then return id end
  end
  return self.c:nodes()[1]
end

-- history() holds client operations only (proposals and reads, the format
-- raft.check.linearizable takes); barriers and membership changes are
-- tickets too but stay out of it.
local function register(self, t, id)
  t.id = id
  self.pending[id] = t
  if t.kind == "propose" or (t.kind == "read" and t.consistency ~= "barrier") then
    self.tickets[#self.tickets + 1] = t
  end
  self:_drain()
  return t
end

--- sim:propose(cmd, { node, client, seq, timeout (ms) }) -> ticket, at once.
function Sim:propose(cmd, opts)
  opts = opts or {}
  local node = self:_pick(opts.node)
  local t = { kind = "propose", node = node, cmd = cmd, client = opts.client, seq = opts.seq,
              invoke_ms = self.c:now(), done = false }
  local id = self.c:propose(node, cmd, opts.client, opts.seq, opts.timeout or DEFAULT_TIMEOUT_MS)
  return register(self, t, id)
end

--- sim:propose_many(cmd, n, { node, client, seq, timeout (ms) }) -> { ticket, ... }
-- n proposals of one command, as n sim:propose calls in a row at the same
-- virtual instant (the command is encoded once); with a client, proposal i
-- (from 1) has sequence number seq + i - 1.
function Sim:propose_many(cmd, n, opts)
  opts = opts or {}
  local node = self:_pick(opts.node)
  local now = self.c:now()
  local first = self.c:propose_many(node, cmd, n, opts.client, opts.seq,
                                    opts.timeout or DEFAULT_TIMEOUT_MS)
  local list, pending, tickets = {}, self.pending, self.tickets
  for i = 1, n do
    local seq = opts.client and opts.seq + i - 1 or opts.seq
    local t = { kind = "propose", node = node, cmd = cmd, client = opts.client, seq = seq,
                invoke_ms = now, done = false, id = first + i - 1 }
    pending[t.id] = t
    tickets[#tickets + 1] = t
    list[i] = t
  end
  self:_drain()
  return list
end

--- sim:read(q, { node, consistency = "linearizable"|"lease"|"stale", timeout (ms) })
function Sim:read(q, opts)
  opts = opts or {}
  local node = self:_pick(opts.node)
  local consistency = opts.consistency or "linearizable"
  local t = { kind = "read", node = node, q = q, consistency = consistency,
              invoke_ms = self.c:now(), done = false }
  local id = self.c:read(node, consistency, q, opts.timeout or DEFAULT_TIMEOUT_MS)
  return register(self, t, id)
end

function Sim:_change(node, kind, target, address, timeout_ms, force)
  local t = { kind = "change", node = node, change = kind, target = target,
              invoke_ms = self.c:now(), done = false }
  local id = self.c:change(node, kind, target, address, timeout_ms or DEFAULT_TIMEOUT_MS, force == true)
  return register(self, t, id)
end

-- ---- time ------------------------------------------------------------------
function Sim:now() return self.c:now() end

function Sim:advance(ms)
  self.c:run(self.c:now() + math.max(0, math.floor(ms)))
  self:_drain()
end

--- Runs until fn() is true (checked after every instant with events) or
-- timeout_ms passes; returns whether fn() became true.
function Sim:run_until(fn, timeout_ms)
  local c = self.c
  local deadline = c:now() + math.floor(timeout_ms or 10000)
  if fn() then return true end
  while c:step(deadline) do
    self:_drain()
    if fn() then return true end
  end
  c:run(deadline)
  self:_drain()
  return fn() and true or false
end

--- sim:wait(ticket, timeout_ms) -> result | nil, err
function Sim:wait(t, timeout_ms)
  self:run_until(function() return t.done end, timeout_ms or 2 * DEFAULT_TIMEOUT_MS)
  if not t.done then
    return nil, errors.new("timeout", "the ticket is still pending after the wait")
  end
  if t.err then return nil, t.err end
  return t.result
end

-- ---- cluster ---------------------------------------------------------------
function Sim:nodes() return self.c:nodes() end
function Sim:leader() return self.c:leader() end
function Sim:status(id) return self.c:status(id) end
--- sim:metrics(id) -> the node:metrics() table (the keys of /metrics), or
-- nil when the node is down; node:metrics() is the same.
function Sim:metrics(id) return self.c:metrics(id) end

function Sim:_push_groups()
  local ids, groups = {}, {}
  for _, id in ipairs(self.c:nodes()) do
    ids[#ids + 1] = id
    groups[#groups + 1] = self.groups[id] or 0
  end
  self.c:partition(ids, groups)
end

--- sim:partition({1, 2}, {3}): nodes in different groups cannot talk. Nodes
-- listed in no group form one more group together.
function Sim:partition(...)
  local groups = { ... }
  self.groups = {}
  for g, list in ipairs(groups) do
    for _, id in ipairs(list) do self.groups[id] = g end
  end
  for _, id in ipairs(self.c:nodes()) do
    if not self.groups[id] then self.groups[id] = #groups + 1 end
  end
  self:_push_groups()
end

--- sim:isolate(id): id talks to nobody; the rest keep their groups.
function Sim:isolate(id)
  for _, n in ipairs(self.c:nodes()) do
    if not self.groups[n] then self.groups[n] = 1 end
  end
  self.groups[id] = 1000 + id
  self:_push_groups()
end

--- sim:heal(): ends partitions and per-link rules (sim:net settings stay).
function Sim:heal()
  self.groups = {}
  self.c:heal()
end

--- sim:net { drop, duplicate, delay = {lo, hi}, reorder }: unset fields keep
-- their current value.
function Sim:net(cfg)
  local n = self.netcfg
  for k, v in pairs(cfg or {}) do n[k] = v end
  local lo, hi = n.delay[1] or 1, n.delay[2] or n.delay[1] or 1
  self.c:net(n.drop or 0, n.duplicate or 0, lo, hi, n.reorder and true or false)
end

--- sim:link(a, b, { drop, delay = {lo, hi} }) one direction; nil clears it.
function Sim:link(a, b, cfg)
  if cfg == nil then return self.c:link(a, b, nil) end
  local d = cfg.delay or self.netcfg.delay
  return self.c:link(a, b, cfg.drop or 0, d[1], d[2] or d[1])
end

function Sim:crash(id)
  local ok, err = self.c:crash(id)
  self:_drain()
  return ok, err
end

function Sim:restart(id)
  local ok, err = self.c:restart(id)
  if not ok then error("sim:restart: " .. tostring(err), 2) end
  self:_drain()
  return true
end

function Sim:add_node(id)
  local ok, err = self.c:add_node(id)
  if not ok then error("sim:add_node: " .. tostring(err), 2) end
  return self:node(id)
end

--- sim:fail_writes(id, n): the next n disk writes of node id fail (0: the
-- disk heals), as node:fail_writes(n) does on a real node.
function Sim:fail_writes(id, n)
  local ok, code, msg = self.c:fail_writes(id, n)
  if not ok then error("sim:fail_writes: " .. tostring(code) .. ": " .. tostring(msg), 2) end
  return true
end

function Sim:history() return self.tickets end

function Sim:check()
  local v = self.c:violation()
  if v then error("raft safety invariant broken " .. v, 2) end
  return true
end

function Sim:violation() return self.c:violation() end
function Sim:trace() return self.c:trace() end
-- sim:export_trace(path [, { model = "kv" | table | false, title }]): writes
-- the run as a luaraft-trace JSON file for `luaraft trace` (docs/trace.md).
function Sim:export_trace(path, opts)
  local trace = require "raft.trace"
  return trace.write(trace.from_sim(self, opts), path)
end
-- Frees the simulated cluster now. Its memory lives in C and in each node's
-- own Lua state, which the garbage collector of this state does not see: a
-- program that makes many simulations (a soak loop) should close each one
-- (or hold it in a `local sim <close>`).
function Sim:close() self.c:close() end
Sim.__close = Sim.close

-- ---- node objects ----------------------------------------------------------
function Sim:node(id)
  local n = self.nodes_[id]
  if not n then
    n = setmetatable({ sim = self, id = id, handlers = {} }, Node)
    self.nodes_[id] = n
  end
  return n
end

local function ms(seconds) return math.floor((seconds or 5) * 1000) end

local function finish(sim, t, timeout_ms)
  return sim:wait(t, timeout_ms + 1)
end

--- node:propose(cmd, { timeout (s), client, seq }) -> result | nil, err
function Node:propose(cmd, opts)
  opts = opts or {}
  local timeout = ms(opts.timeout)
  local t = self.sim:propose(cmd, { node = self.id, client = opts.client, seq = opts.seq,
                                    timeout = timeout })
  return finish(self.sim, t, timeout)
end

--- node:read(q, { consistency, timeout (s) }) -> result | nil, err
function Node:read(q, opts)
  opts = opts or {}
  local timeout = ms(opts.timeout)
  local t = self.sim:read(q, { node = self.id, consistency = opts.consistency, timeout = timeout })
  return finish(self.sim, t, timeout)
end

function Node:barrier(timeout)
  local t = self.sim:read(nil, { node = self.id, consistency = "barrier", timeout = ms(timeout) })
  return finish(self.sim, t, ms(timeout))
end

function Node:status()
  local st = self.sim.c:status(self.id)
  return st
end

--- node:metrics(): the same counters as a real node's (fsyncs,
-- entries_persisted, batches, fsync_buckets in virtual time, snapshots...).
function Node:metrics()
  return self.sim.c:metrics(self.id)
end

function Node:fail_writes(n) return self.sim:fail_writes(self.id, n) end

function Node:transfer_leadership(id, timeout)
  local ok, code, msg = self.sim.c:transfer(self.id, id)
  if not ok then return nil, errors.new(code, msg) end
  local sim = self.sim
  if sim:run_until(function()
    local l = sim:leader()
    return l ~= nil and l ~= self.id and (id == nil or id == 0 or l == id)
  end, ms(timeout)) then
    return true
  end
  return nil, errors.new("timeout", "leadership transfer did not complete")
end

function Node:step_down()
  local ok, code, msg = self.sim.c:step_down(self.id)
  self.sim:_drain()
  if not ok then return nil, errors.new(code, msg) end
  return true
end

-- opts: a timeout in seconds, or { timeout = s, force = bool } (raft.node's forms)
local function change(self, kind, id, address, opts)
  if type(opts) ~= "table" then opts = { timeout = opts } end
  local t = self.sim:_change(self.id, kind, id, address, ms(opts.timeout), opts.force)
  return finish(self.sim, t, ms(opts.timeout))
end

function Node:add_member(id, address, opts)
  local learner = opts and opts.learner
  return change(self, learner and "add_learner" or "add_voter", id, address or "", opts)
end
function Node:promote(id, opts) return change(self, "promote", id, "", opts) end
function Node:remove_member(id, opts) return change(self, "remove", id, "", opts) end

function Node:snapshot()
  local ok, err = self.sim.c:snapshot(self.id)
  self.sim:_drain()
  if not ok then return nil, errors.new("storage", err) end
  return true
end

--- node:on(event, fn): "role", "leader", "commit", "apply", "members",
-- "snapshot". In the simulator events are noticed after each instant of
-- virtual time, so several changes within one instant arrive as one.
function Node:on(event, fn)
  local valid = { role = true, leader = true, commit = true, apply = true, members = true,
                  snapshot = true }
  if not valid[event] then error("node:on: unknown event " .. tostring(event), 2) end
  self.handlers[event] = self.handlers[event] or {}
  table.insert(self.handlers[event], fn)
  local sim = self.sim
  sim.listeners = sim.listeners or {}
  sim.listeners[self.id] = self
  self.last = self.last or sim.c:status(self.id) or {}
end

local function members_key(st)
  local parts = {}
  for _, m in ipairs(st.members or {}) do parts[#parts + 1] = m.id .. m.role end
  return table.concat(parts, ",")
end

function Sim:_notify()
  for id, node in pairs(self.listeners) do
    local st = self.c:status(id) or {}
    local last = node.last or {}
    local h = node.handlers
    local function fire(ev, ...)
      for _, fn in ipairs(h[ev] or {}) do fn(...) end
    end
    if st.role ~= last.role then fire("role", st.role, last.role) end
    if st.leader ~= last.leader then fire("leader", st.leader) end
    if (st.commit_index or 0) > (last.commit_index or 0) then fire("commit", st.commit_index) end
    if (st.applied_index or 0) > (last.applied_index or 0) then fire("apply", st.applied_index) end
    if members_key(st) ~= members_key(last) then fire("members", st.members) end
    if (st.snapshot_index or 0) ~= (last.snapshot_index or 0) then
      fire("snapshot", st.snapshot_index)
    end
    node.last = st
  end
end

function Node:stop()
  self.sim:crash(self.id)
  return true
end

return M
