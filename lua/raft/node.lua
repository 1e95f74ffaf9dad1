--- raft.node { ... }: one real cluster node (API.md section 4, "Nodes";
-- the reference is docs/node.md).
-- @module raft.node
--
-- The C host (src/host, bound in src/lua/lnode.c) runs the Raft core,
-- storage, transport and state machine; this file turns its request ids and
-- events into the waiting calls of the API: every call that waits goes
-- through loop.wait (yield in raft.spawn, or drive the loop), every failure
-- is nil, err (raft.errors), misuse raises.
local core = require "raft.core"
local errors = require "raft.errors"
local options = require "raft.options"
local loop = require "raft.loop"

local node = {}
local Node = {}
Node.__index = Node
Node.__name = "raft.node"

local DEFAULT_TIMEOUT = 5
local EVENTS = { role = true, leader = true, commit = true, apply = true, members = true,
  snapshot = true }

local function argerror(i, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(i, fname, msg), 3)
end

local function check_timeout(t, i, fname)
  if t == nil then return DEFAULT_TIMEOUT end
  if type(t) ~= "number" or t <= 0 then argerror(i, fname, "timeout must be a positive number") end
  return t
end

local function check_id(id, i, fname)
  if math.type(id) ~= "integer" or id <= 0 then argerror(i, fname, "node id must be a positive integer") end
  return id
end

-- The state machine goes to its own, sandboxed Lua state (src/sm) as a
-- script path or a dumped factory function (which therefore may have no
-- upvalues but _ENV); or, as a table, it runs in this Lua state (src/sm/sm.h,
-- "the in-state mode": the budget applies, the sandbox and memory_max do not).
local function sm_option(sm)
  if type(sm) == "string" then return { sm_path = sm } end
  if type(sm) == "function" then
    local name = debug.getupvalue(sm, 1)
    if name ~= nil and (name ~= "_ENV" or debug.getupvalue(sm, 2) ~= nil) then
      error("raft.node: state_machine as a function must not use upvalues (it runs in the node's own Lua state); pass a script path instead", 3)
    end
    return { sm_chunk = string.dump(sm) }
  end
  if type(sm) == "table" then
    if type(sm.apply) ~= "function" then
      error("raft.node: state_machine table must have an apply function", 3)
    end
    return { sm_table = sm }
  end
  error("raft.node: state_machine is required (a script path, a factory function or a table)", 3)
end

--- Makes a node (not started): `raft.node(opts)`. Options: docs/node.md.
-- @tab opts id, peers, state_machine, storage, data_dir, election_ms, ...
-- @return a node
-- @raise on a bad option, naming it
function node.new(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'node' (table expected)", 2) end
  -- unknown keys (with the closest known one) and the shared checks and
  -- defaults of raft.options; `o` holds every option with its default
  local o = options.check("node", opts, "raft.node")
  local id = o.id
  if math.type(id) ~= "integer" or id <= 0 then error("raft.node: id must be a positive integer", 2) end
  if o.peers ~= nil and type(o.peers) ~= "table" then error("raft.node: peers must be a table { [id] = \"host:port\" }", 2) end
  for k, v in pairs(o.peers or {}) do
    local ok, why = options.address(v)
    if not ok then error("raft.node: peers[" .. tostring(k) .. "]: " .. why, 2) end
  end
  -- http_peers: { [id] = "host:port" } where the other nodes serve HTTP, so
  -- that not_leader errors and /v1/status can name the leader's HTTP address
  -- and membership/transfer requests on a follower can be redirected there
  local http_peers = {}
  if o.http_peers ~= nil then
    if type(o.http_peers) ~= "table" then error("raft.node: http_peers must be a table { [id] = \"host:port\" }", 2) end
    for k, v in pairs(o.http_peers) do
      if math.type(k) ~= "integer" or k <= 0 or type(v) ~= "string" or not v:match("^[^%s]+:%d+$") then
        error("raft.node: http_peers must be a table { [id] = \"host:port\" }", 2)
      end
      http_peers[k] = v
    end
  end
  local c = {
    id = id, peers = o.peers, join = o.join, listen = o.listen,
    storage = o.storage, data_dir = o.data_dir,
    election_ms = o.election_ms, heartbeat_ms = o.heartbeat_ms,
    pre_vote = o.pre_vote, check_quorum = o.check_quorum,
    snapshot_entries = o.snapshot_entries, secret = o.secret,
    allow_faults = o.allow_faults, log_level = o.log_level,
    cluster_name = o.cluster_name,
    tls_cert = o.tls_cert, tls_key = o.tls_key, tls_ca = o.tls_ca,
    apply_budget = o.apply_budget, digest_entries = o.digest_entries,
  }
  if c.cluster_name ~= nil and (type(c.cluster_name) ~= "string" or c.cluster_name == "") then
    error("raft.node: cluster_name must be a non-empty string", 2)
  end
  local ntls = (c.tls_cert and 1 or 0) + (c.tls_key and 1 or 0) + (c.tls_ca and 1 or 0)
  if ntls ~= 0 and ntls ~= 3 then
    error("raft.node: peer TLS needs tls_cert, tls_key and tls_ca together", 2)
  end
  if c.storage == "sqlite" and type(c.data_dir) ~= "string" then error("raft.node: data_dir is required with sqlite storage", 2) end
  for k, v in pairs(sm_option(o.state_machine)) do c[k] = v end
  -- determinism guards (README "Deterministic state machines"); memory_max
  -- is the limit of the state machine's own Lua state, so it is passed only
  -- when given (a table state machine runs in the caller's state)
  if opts.memory_max ~= nil then
    if c.sm_table then
      error("raft.node: memory_max does not apply to a state_machine table (it runs in your Lua state); pass a path or a factory function for a state of its own", 2)
    end
    c.memory_max = o.memory_max
  end
  local mr = o.max_result_bytes -- bytes of an encoded result (src/sm/sm.h); false: none
  if mr ~= nil and mr ~= false and (math.type(mr) ~= "integer" or mr < 1) then
    error("raft.node: max_result_bytes must be a positive integer or false", 2)
  end
  c.max_result_bytes = mr
  local self = setmetatable({
    id = id, opts = c, http = o.http, http_opts = o.http_opts, http_peers = http_peers,
    -- Request ids travel in the entry envelope and come back when the entry
    -- is applied, also when a restarted node re-applies its old log: each
    -- incarnation starts from its own base (wall ms * 2^20) so an old entry
    -- never completes a new request.
    handle = nil, srv = nil, next_req = core.wall_ms() << 20, waiters = {}, listeners = {},
    stopped = false, started = false,
  }, Node)
  return self
end

-- Completes request `req` (if anybody still waits for it).
local function complete(self, req, ...)
  local w = self.waiters[req]
  if not w then return end
  self.waiters[req] = nil
  if w.timer then w.timer:stop() end
  w.done(...)
end

function Node:_err(code, message)
  local extra
  if code == "not_leader" and self.handle then
    local st = self.handle:status()
    if st.leader and st.leader ~= self.id then
      extra = { leader = st.leader, address = self.handle:address(st.leader),
                http = self:http_address(st.leader) }
    end
  end
  return errors.new(code, message, extra)
end

local function on_event(self, event, a, b, c, d, e)
  if event == "done" then
    local w = self.waiters[a]
    if not w then return end
    if b then
      local err = self:_err(b, c or b)
      if b == "too_large" then err.result_too_large = true end -- only the result bound sends it
      -- an applied entry whose result is not delivered (apply raised, or
      -- the result was over max_result_bytes): say where it went
      if w.kind == "propose" and (b == "apply_error" or b == "too_large") and d and d > 0 then
        err.index, err.term, err.applied = d, e, true
      end
      complete(self, a, nil, err)
    else
      local value
      if c ~= nil and w.decode then
        local ok, v = pcall(core.decode, c)
        if not ok then complete(self, a, nil, errors.new("bad_request", tostring(v))) return end
        value = v
      end
      complete(self, a, true, value, d, e)
    end
  elseif event == "fail_all" or event == "stopped" then
    for req, w in pairs(self.waiters) do
      if event == "stopped" or w.kind == "propose" then
        complete(self, req, nil, errors.new(a == "storage" and "storage" or "stopped", b or a))
      end
    end
    if event == "stopped" then
      -- the host could not go on (see its log): stop serving, tell the owner
      self.failure = b or a
      self:stop()
      if self.on_failure then self.on_failure(self.failure) end
    end
  else
    local list = self.listeners[event]
    if list then
      for _, fn in ipairs(list) do loop.spawn(fn, a, b) end
    end
  end
end

--- Opens storage, listens, joins the cluster.
-- @return true, or nil and an error (code `storage` or `bad_request`)
function Node:start()
  if self.started then error("raft.node: start() called twice", 2) end
  self.started = true
  local handle, msg = core.node_new(self.opts, function(...) on_event(self, ...) end)
  -- a table state machine is held by the handle from now on (released by
  -- stop): the options must not keep it alive after that
  self.opts.sm_table = nil
  if not handle then
    local code = msg:find("raft%.db") and "storage" or "bad_request"
    return nil, errors.new(code, msg)
  end
  self.handle = handle
  for event in pairs(self.listeners) do handle:subscribe(event, true) end
  if self.http then
    local srv, err = require("raft.http_api").serve(self, self.http, self.http_opts)
    if not srv then
      self:stop()
      return nil, errors.new("bad_request", err)
    end
    self.srv = srv
  end
  return true
end

local function usable(self, fname)
  if not self.started then error("raft.node: " .. fname .. "() before start()", 3) end
  return not self.stopped
end

-- Starts a request in C (start(req) -> true | nil, code, message) and waits
-- for its "done" event or the timeout. Returns true, value, index, term or
-- nil, err.
function Node:_request(kind, timeout, decode, start)
  if not usable(self, kind) then return nil, errors.new("stopped", "the node is stopped") end
  self.next_req = self.next_req + 1
  local req = self.next_req
  return loop.wait(function(done)
    local w = { kind = kind, done = done, decode = decode }
    self.waiters[req] = w
    local ok, code, message = start(req)
    if not ok then
      complete(self, req, nil, self:_err(code, message))
      return
    end
    if self.waiters[req] then
      w.timer = core.timer(timeout * 1000, function()
        w.timer = nil
        if self.handle and not self.stopped then self.handle:forget(req) end
        complete(self, req, nil, errors.new("timeout", kind .. " timed out after " .. timeout .. " s"))
      end)
    end
  end)
end

-- The propose behind node:propose and POST /v1/propose:
-- -> true, result, index, term | nil, err
function Node:_propose(cmd, opts)
  opts = opts or {}
  local timeout = check_timeout(opts.timeout, 2, "propose")
  local client, seq = opts.client, opts.seq
  if client ~= nil then
    if type(client) ~= "string" or #client == 0 then argerror(2, "propose", "client must be a non-empty string") end
    if math.type(seq) ~= "integer" or seq <= 0 then argerror(2, "propose", "seq must be a positive integer with client") end
  end
  local ok, bytes = pcall(core.encode, cmd)
  if not ok then return nil, errors.new("bad_request", tostring(bytes)) end
  if opts.wait ~= nil and opts.wait ~= "apply" and opts.wait ~= "commit" then
    argerror(2, "propose", "wait must be \"apply\" or \"commit\"")
  end
  local commit = opts.wait == "commit"
  return self:_request("propose", timeout, true, function(req)
    return self.handle:propose(req, bytes, client, seq, commit)
  end)
end

--- Replicates `cmd` and returns what this node's `apply` returned for it.
-- Waits: yields inside `raft.spawn`, drives the loop outside a coroutine.
-- @param cmd any value `raft.encode` takes
-- @tab[opt] opts `timeout` (s, default 5), `wait` ("apply" or "commit"), `client`, `seq`
-- @return the result, or nil and an error
function Node:propose(cmd, opts)
  local ok, result = self:_propose(cmd, opts)
  if not ok then return nil, result end
  return result
end

--- Runs the state machine's `query(q)`. Waits.
-- @param q the query
-- @tab[opt] opts `consistency` ("linearizable", "lease", "stale"), `timeout` (s)
-- @return the result, or nil and an error
function Node:read(q, opts)
  opts = opts or {}
  local timeout = check_timeout(opts.timeout, 2, "read")
  local mode = opts.consistency or "linearizable"
  if mode ~= "linearizable" and mode ~= "lease" and mode ~= "stale" then
    argerror(2, "read", "consistency must be linearizable, lease or stale")
  end
  local ok, bytes = pcall(core.encode, q)
  if not ok then return nil, errors.new("bad_request", tostring(bytes)) end
  local done, result = self:_request("read", timeout, true, function(req)
    return self.handle:read(req, mode, bytes)
  end)
  if not done then return nil, result end
  return result
end

--- Waits until everything committed before the call is applied here.
-- @number[opt] timeout seconds, default 5
-- @return true, or nil and an error
function Node:barrier(timeout)
  timeout = check_timeout(timeout, 1, "barrier")
  local done, err = self:_request("barrier", timeout, false, function(req)
    return self.handle:read(req, "barrier")
  end)
  if not done then return nil, err end
  return true
end

-- A membership call's options: a timeout in seconds (the older form), or a
-- table { timeout = s, force = bool, learner = bool }.
local function change_opts(o, i, fname)
  if o == nil or type(o) == "number" then o = { timeout = o } end
  if type(o) ~= "table" then argerror(i, fname, "options must be a table or a timeout") end
  if o.timeout ~= nil then check_timeout(o.timeout, i, fname) end
  if o.force ~= nil and type(o.force) ~= "boolean" then argerror(i, fname, "force must be true or false") end
  return o
end

local function change(self, fname, kind, id, address, o)
  local done, err, index = self:_request(fname, o.timeout or DEFAULT_TIMEOUT * 2, false, function(req)
    return self.handle:change(req, kind, id, address, o.force == true)
  end)
  if not done then return nil, err end
  return true, index
end

--- Adds a voter, or a learner with `{ learner = true }`. Waits.
-- `force = true` skips the check that refuses a voter when fewer voters
-- than a quorum of the new configuration would be reachable.
-- @int id the new member
-- @string address its peer address, "host:port" (port 1-65535)
-- @tab[opt] opts `learner`, `timeout`, `force`
-- @return true and the change's log index, or nil and an error
function Node:add_member(id, address, opts)
  check_id(id, 1, "add_member")
  local ok, why = options.address(address)
  if not ok then argerror(2, "add_member", why) end
  opts = change_opts(opts, 3, "add_member")
  return change(self, "add_member", opts.learner and "learner" or "add", id, address, opts)
end

--- Makes a learner a voter. Waits. `force = true` skips the caught-up and
-- reachable-quorum checks.
-- @int id
-- @param[opt] opts a timeout in seconds, or { timeout, force }
-- @return true and the change's log index, or nil and an error
function Node:promote(id, opts)
  check_id(id, 1, "promote")
  return change(self, "promote", "promote", id, nil, change_opts(opts, 2, "promote"))
end

--- Removes a member. Waits. `force = true` skips the reachable-quorum check.
-- @int id
-- @param[opt] opts a timeout in seconds, or { timeout, force }
-- @return true and the change's log index, or nil and an error
function Node:remove_member(id, opts)
  check_id(id, 1, "remove_member")
  return change(self, "remove_member", "remove", id, nil, change_opts(opts, 2, "remove_member"))
end

--- Hands leadership to `id` (nil: a follower the leader picks). Waits.
-- @int[opt] id
-- @number[opt] timeout seconds
-- @return true, or nil and an error
function Node:transfer_leadership(id, timeout)
  if id ~= nil and id ~= 0 then check_id(id, 1, "transfer_leadership") end
  timeout = check_timeout(timeout, 2, "transfer_leadership")
  local done, err = self:_request("transfer", timeout, false, function(req)
    return self.handle:transfer(req, id or 0)
  end)
  if not done then return nil, err end
  return true
end

--- A leader becomes a follower at once.
-- @return true, or nil and an error
function Node:step_down()
  if not usable(self, "step_down") then return nil, errors.new("stopped", "the node is stopped") end
  local ok, code, msg = self.handle:step_down()
  if not ok then return nil, self:_err(code, msg) end
  return true
end

--- Takes a snapshot now.
-- @return true, or nil and an error
function Node:snapshot()
  if not usable(self, "snapshot") then return nil, errors.new("stopped", "the node is stopped") end
  local ok, code, msg = self.handle:snapshot()
  if not ok then return nil, errors.new(code, msg) end
  return true
end

-- For tests (--allow-faults): drop all traffic with these peers ({} heals).
function Node:faults(ids)
  if not usable(self, "faults") then return nil, errors.new("stopped", "the node is stopped") end
  local ok, code, msg = self.handle:faults(ids)
  if not ok then return nil, errors.new(code, msg) end
  return true
end

-- For tests (--allow-faults): the next n storage writes fail.
function Node:fail_writes(n)
  if not usable(self, "fail_writes") then return nil, errors.new("stopped", "the node is stopped") end
  local ok, code, msg = self.handle:fail_writes(n)
  if not ok then return nil, errors.new(code, msg) end
  return true
end

--- The node's state: id, role, term, leader, indexes, members, state_machine (docs/node.md).
-- @treturn table
function Node:status()
  if not self.started or self.stopped then
    return { id = self.id, role = "stopped", term = 0, commit_index = 0, applied_index = 0,
      last_index = 0, snapshot_index = 0, members = {} }
  end
  local st = self.handle:status()
  -- where the leader serves HTTP (issue 10), if this node knows it
  if st.leader then st.leader_http = self:http_address(st.leader) end
  return st
end

--- Where node `id` serves HTTP, if known (this node's own `http`
-- option, or the `http_peers` option); nil otherwise.
function Node:http_address(id)
  if id == self.id then
    if self.srv and self.http then
      local host = self.http:match("^(.*):%d+$")
      local ok, port = pcall(self.srv.port, self.srv)
      if host and ok and port then return host .. ":" .. port end
    end
    return self.http
  end
  return self.http_peers[id]
end

--- Counters, the same as `GET /metrics` (docs/metrics.md).
-- @treturn table or nil once stopped
function Node:metrics()
  if not self.started or self.stopped then return nil end
  return self.handle:metrics()
end

--- Calls `fn` on "role", "leader", "commit", "apply", "members" or "snapshot" events.
-- @string event
-- @func fn runs in its own coroutine
-- @return the node
function Node:on(event, fn)
  if not EVENTS[event] then argerror(1, "on", "event must be role, leader, commit, apply, members or snapshot") end
  if type(fn) ~= "function" then argerror(2, "on", "function expected") end
  local list = self.listeners[event]
  if not list then
    list = {}
    self.listeners[event] = list
    if self.handle and not self.stopped then self.handle:subscribe(event, true) end
  end
  list[#list + 1] = fn
  return self
end

--- Stops the node; waiting calls fail with `stopped`.
-- @return true
function Node:stop()
  if self.stopped then return true end
  self.stopped = true
  if self.srv then
    self.srv:close()
    self.srv = nil
  end
  if self.handle then self.handle:stop() end
  for req in pairs(self.waiters) do
    complete(self, req, nil, errors.new("stopped", "the node was stopped"))
  end
  return true
end

Node.__gc = Node.stop
Node.__close = Node.stop

return node
