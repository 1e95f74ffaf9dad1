-- raft.cluster: a cluster of real `luaraft run` processes on loopback, to
-- script failover against real processes, sockets and disks the way raft.sim
-- scripts the simulator (API.md, section "raft.cluster").
--
--   local c = raft.cluster { nodes = 3, state_machine = "examples/kv.lua" }
--   local id = c:leader()
--   c:node(id):propose { op = "set", key = "a", value = "1" }
--   c:kill(id) ; c:restart(id) ; c:partition({1, 2}, {3}) ; c:heal()
--   assert(raft.check.linearizable(c:history(), "kv"))
--   c:close()
--
-- Node processes are started with --allow-faults so partitions can be made
-- through POST /v1/faults; each has its own data folder under a temporary
-- directory that close() removes (also when the script errors, via __gc and
-- __close).
-- every option's default is defined once, in raft.options
local options = require "raft.options"
local uv = require "luv"
local cjson = require "cjson.safe"
local errors = require "raft.errors"
local http_client = require "raft.http_client"

local cluster = {}
local Cluster = {}
Cluster.__index = Cluster
local Node = {}
Node.__index = Node

local function now_ms()
  return uv.hrtime() / 1e6
end

local function sleep(seconds)
  local co, main = coroutine.running()
  local timer = uv.new_timer()
  if co and not main then
    timer:start(math.floor(seconds * 1000), 0, function()
      timer:close()
      assert(coroutine.resume(co))
    end)
    coroutine.yield()
  else
    local fired = false
    timer:start(math.floor(seconds * 1000), 0, function() fired = true; timer:close() end)
    while not fired do uv.run("once") end
  end
end
cluster.sleep = sleep

local function free_port()
  local s = uv.new_tcp()
  assert(s:bind("127.0.0.1", 0))
  local port = s:getsockname().port
  s:close()
  return port
end

-- The binary, as docs/cluster.md says: opts.binary, else $LUARAFT_BIN, else
-- $LUARAFT_RELEASE_BUILD/luaraft or $LUARAFT_BUILD/luaraft (the build trees
-- the test scripts name), else the luaraft running this script (arg[-1], or
-- the executable's path), else "luaraft" looked up on PATH.
local function running_luaraft()
  local a = rawget(_G, "arg")
  local candidates = { a and a[-1], uv.exepath() }
  for _, p in ipairs(candidates) do
    if type(p) == "string" and (p:match("/luaraft$") or p == "luaraft") then
      if p:sub(1, 1) ~= "/" and p:find("/", 1, true) then
        p = uv.cwd() .. "/" .. p -- relative to where we started
      end
      return p
    end
  end
  return nil
end

function cluster.find_binary(opts)
  if opts and opts.binary then return opts.binary, "option" end
  local env = os.getenv("LUARAFT_BIN")
  if env and env ~= "" then return env, "LUARAFT_BIN" end
  local build = os.getenv("LUARAFT_RELEASE_BUILD") or os.getenv("LUARAFT_BUILD")
  if build and build ~= "" then return build .. "/luaraft", "LUARAFT_BUILD" end
  local self_exe = running_luaraft()
  if self_exe then return self_exe, "running" end
  return "luaraft", "PATH" -- uv.spawn searches PATH for a name without a slash
end

local function mkdtemp()
  local p = io.popen("mktemp -d /tmp/luaraft-cluster.XXXXXX")
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "raft.cluster: cannot make a temporary folder")
  return dir
end

-- raft.cluster { nodes = 3 | {ids}, state_machine = path, election_ms,
--   heartbeat_ms, snapshot_entries, secret, binary, dir, log_level,
--   port, http_port (first ports; default: free ones), faults (false: no
--   --allow-faults), args (more `run` flags), output = fn(id, line, is_stderr)
--   (default: a log file per node), restart_dead (restart a node that exits
--   unless this script stopped it), on_exit = fn(id, code, signal) }
-- docs/cluster.md is the reference.
function cluster.new(opts)
  assert(type(opts) == "table", "raft.cluster: options table expected")
  assert(type(opts.state_machine) == "string", "raft.cluster: state_machine must be a path")
  -- unknown keys (naming the closest) and bad values, as raft.node does;
  -- the nodes get the options through `luaraft run` flags (_start)
  opts = options.check("cluster", opts, "raft.cluster")
  local ids = opts.nodes or 3
  if type(ids) == "number" then
    local list = {}
    for i = 1, ids do list[i] = i end
    ids = list
  end
  local self = setmetatable({
    opts = opts,
    binary = (cluster.find_binary(opts)),
    dir = opts.dir or mkdtemp(),
    owns_dir = opts.dir == nil,
    procs = {}, peer = {}, http = {}, clients = {}, members = {},
    ops = {}, t0 = now_ms(),
  }, Cluster)
  for i, id in ipairs(ids) do
    self.peer[id] = "127.0.0.1:" .. (opts.port and opts.port + i - 1 or free_port())
    self.http[id] = "127.0.0.1:" .. (opts.http_port and opts.http_port + i - 1 or free_port())
    self.members[#self.members + 1] = id
  end
  if opts.secret then
    self.secret_file = self.dir .. "/secret"
    local f = assert(io.open(self.secret_file, "w"))
    f:write(opts.secret)
    f:close()
  end
  local ok, err = pcall(function()
    for _, id in ipairs(ids) do self:_start(id, false) end
  end)
  if not ok then
    self:close()
    error(err, 2)
  end
  return self
end

function Cluster:_peers_flag()
  local parts = {}
  for _, id in ipairs(self.members) do parts[#parts + 1] = id .. "=" .. self.peer[id] end
  return table.concat(parts, ",")
end

-- Every node learns where the others serve HTTP (issue 10: the leader's
-- HTTP address in errors and /v1/status, redirects of membership calls).
function Cluster:_http_peers_flag()
  local parts = {}
  for id, addr in pairs(self.http) do parts[#parts + 1] = id .. "=" .. addr end
  table.sort(parts)
  return table.concat(parts, ",")
end

function Cluster:_start(id, join, restart)
  local o = self.opts
  local args = { "run", "--id", tostring(id), "--http", self.http[id],
    "--data", self.dir .. "/" .. id,
    "--election-ms", tostring(o.election_ms), "--heartbeat-ms", tostring(o.heartbeat_ms),
    "--log-level", o.log_level, "--snapshot-entries", tostring(o.snapshot_entries),
    -- false is "off", which `run` spells 0
    "--apply-budget", tostring(o.apply_budget or 0), "--digest-entries", tostring(o.digest_entries or 0),
    "--memory-max", tostring(o.memory_max) }
  if not o.pre_vote then args[#args + 1] = "--no-pre-vote" end
  if not o.check_quorum then args[#args + 1] = "--no-check-quorum" end
  args[#args + 1] = "--http-peers"
  args[#args + 1] = self:_http_peers_flag()
  if join then
    -- a joining node's --peers names only itself: its listen address
    args[#args + 1] = "--join"
    args[#args + 1] = "--peers"
    args[#args + 1] = id .. "=" .. self.peer[id]
  elseif not restart then
    args[#args + 1] = "--peers"
    args[#args + 1] = self:_peers_flag()
  end -- a restarted member finds its peers in its stored configuration
  if self.secret_file then
    args[#args + 1] = "--secret-file"
    args[#args + 1] = self.secret_file
  end
  if o.faults ~= false then args[#args + 1] = "--allow-faults" end
  for _, a in ipairs(o.args or {}) do args[#args + 1] = tostring(a) end -- more `run` flags
  args[#args + 1] = o.state_machine
  local stdio, pipes, log
  if o.output then
    pipes = { uv.new_pipe(false), uv.new_pipe(false) }
    stdio = { nil, pipes[1], pipes[2] }
  else
    log = assert(uv.fs_open(self.dir .. "/node-" .. id .. ".log", "a", tonumber("644", 8)))
    stdio = { nil, log, log }
  end
  local rec
  local handle, pid = uv.spawn(self.binary, { args = args, stdio = stdio },
    function(code, signal)
      rec.exited, rec.code, rec.signal = true, code, signal
      self:_exited(id, rec)
    end)
  if log then uv.fs_close(log) end
  if not handle then
    for _, pp in ipairs(pipes or {}) do pp:close() end
    error("raft.cluster: cannot start " .. self.binary .. ": " .. tostring(pid))
  end
  rec = { handle = handle, pid = pid, exited = false, joined = join or nil, started_ms = now_ms() }
  self.procs[id] = rec
  if pipes then
    for k, pipe in ipairs(pipes) do
      local buf = ""
      pipe:read_start(function(err, chunk)
        if err or not chunk then
          if #buf > 0 then o.output(id, buf, k == 2) end
          buf = ""
          if not pipe:is_closing() then pipe:close() end
          return
        end
        buf = buf .. chunk
        for line in buf:gmatch("([^\n]*)\n") do o.output(id, line, k == 2) end
        buf = buf:match("([^\n]*)$")
      end)
    end
  end
  self:_close_clients(id)
  return pid
end

-- A node process ended. With restart_dead, one that this script did not
-- stop or kill is started again on its data (after 0.5 s, doubling up to
-- 30 s while it keeps dying within 10 s of its start).
function Cluster:_exited(id, rec)
  local o = self.opts
  if o.on_exit and not rec.expected and not self.closed then o.on_exit(id, rec.code, rec.signal) end
  if not o.restart_dead or rec.expected or self.closed then return end
  local quick = now_ms() - rec.started_ms < 10000
  local delay = quick and math.min(30000, (self.backoff and self.backoff[id] or 250) * 2) or 500
  self.backoff = self.backoff or {}
  self.backoff[id] = delay
  local timer = uv.new_timer()
  timer:start(delay, 0, function()
    timer:close()
    if self.closed or self.procs[id] ~= rec then return end
    if not rec.handle:is_closing() then rec.handle:close() end
    local ok, err = pcall(self._start, self, id, rec.joined, true)
    if ok and o.on_restart then o.on_restart(id, self.procs[id].pid) end
    if not ok and o.on_exit then o.on_exit(id, nil, nil, err) end
  end)
end

function Cluster:log(id)
  local f = io.open(self.dir .. "/node-" .. id .. ".log")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

function Cluster:address(id) return self.peer[id] end
function Cluster:http_address(id) return self.http[id] end
function Cluster:ids() return { table.unpack(self.members) } end
function Cluster:pid(id) return self.procs[id] and self.procs[id].pid end

-- Each node has a pool of idle keep-alive connections: a call takes one (or
-- opens one), and gives it back when the answer came, so concurrent callers
-- (coroutines) each have their own and reuse them.
function Cluster:_take_client(id)
  local pool = self.clients[id]
  if not pool then
    pool = {}
    self.clients[id] = pool
  end
  local c = table.remove(pool)
  if c then return c end
  local host, port = self.http[id]:match("^(.*):(%d+)$")
  return http_client.new(host, port)
end

function Cluster:_close_clients(id)
  for _, c in ipairs(self.clients[id] or {}) do c:close() end
  self.clients[id] = nil
end

-- One HTTP call to node id -> decoded body | nil, err (API.md codes).
function Cluster:call(id, method, path, body, headers, timeout)
  local c = self:_take_client(id)
  local status, rbody = c:request(method, path, body, headers, timeout)
  if status and self.clients[id] and not self.closed then
    table.insert(self.clients[id], c)
  else
    c:close()
  end
  if not status then return nil, errors.new("timeout", "node " .. id .. ": " .. tostring(rbody)) end
  local value = cjson.decode(rbody)
  -- a follower redirects membership and transfer calls to the leader (307)
  if status == 307 and type(value) == "table" and self.http[value.leader] and value.leader ~= id then
    return self:call(value.leader, method, path, body, headers, timeout)
  end
  if status >= 200 and status < 300 then return value or rbody end
  local code = type(value) == "table" and value.error or "bad_request"
  if not errors.codes[code] then code = status == 503 and "stopped" or "bad_request" end
  return nil, errors.new(code, type(value) == "table" and value.message or rbody,
    type(value) == "table" and { leader = value.leader, address = value.address, http = value.http } or nil)
end

function Cluster:node(id)
  assert(self.http[id], "raft.cluster: no node " .. tostring(id))
  return setmetatable({ c = self, id = id }, Node)
end

local function record(self, op)
  op.invoke_ms = now_ms() - self.t0
  self.ops[#self.ops + 1] = op
  return op
end

local function complete(self, op, result, err)
  op.complete_ms = now_ms() - self.t0
  op.done = err == nil
  op.result, op.err = result, err
end

-- node:propose(cmd [, {client, seq, timeout}]) -> result | nil, err
function Node:propose(cmd, opts)
  opts = opts or {}
  local c = self.c
  local op = record(c, { kind = "propose", cmd = cmd, node = self.id })
  local body, headers = cmd, {}
  if type(cmd) ~= "string" then -- tables, numbers, booleans travel as JSON
    body = cjson.encode(cmd)
    headers["Content-Type"] = "application/json"
  else
    headers["Content-Type"] = "application/octet-stream"
  end
  if opts.client then headers["Raft-Client-Id"] = opts.client end
  if opts.seq then headers["Raft-Seq"] = opts.seq end
  local res, err = c:call(self.id, "POST", "/v1/propose", body, headers, opts.timeout or 5)
  local result = res and res.result
  if result == cjson.null then result = nil end
  complete(c, op, result, err)
  if err then return nil, err end
  return result
end

-- node:read(q [, {consistency, timeout}]) -> result | nil, err
function Node:read(q, opts)
  opts = opts or {}
  local c = self.c
  local op = record(c, { kind = "read", q = q, node = self.id })
  local path = "/v1/read?consistency=" .. (opts.consistency or "linearizable")
  local res, err = c:call(self.id, "POST", path, cjson.encode(q),
    { ["Content-Type"] = "application/json" }, opts.timeout or 5)
  local result = res and res.result
  if result == cjson.null then result = nil end
  complete(c, op, result, err)
  if err then return nil, err end
  return result
end

function Node:status(timeout)
  return self.c:call(self.id, "GET", "/v1/status", nil, nil, timeout or 2)
end

function Node:members()
  return self.c:call(self.id, "GET", "/v1/members", nil, nil, 5)
end

-- Membership calls: opts as raft.node's (a timeout in seconds, or
-- { timeout, force, learner }); success is the answer { ok = true, index = n }.
local function member_opts(opts)
  if type(opts) ~= "table" then opts = { timeout = opts } end
  return opts, opts.timeout or 10
end

local function timeout_query(opts)
  return opts.timeout and ("?timeout=" .. opts.timeout) or ""
end

function Node:add_member(id, address, opts)
  local o, t = member_opts(opts)
  return self.c:call(self.id, "POST", "/v1/members" .. timeout_query(o), cjson.encode {
    id = id, address = address, learner = o.learner or false, force = o.force or false }, nil, t + 1)
end

function Node:promote(id, opts)
  local o, t = member_opts(opts)
  return self.c:call(self.id, "POST", "/v1/members/" .. id .. "/promote" .. timeout_query(o),
    o.force and '{"force":true}' or "", nil, t + 1)
end

function Node:remove_member(id, opts)
  local o, t = member_opts(opts)
  return self.c:call(self.id, "DELETE", "/v1/members/" .. id .. timeout_query(o),
    o.force and '{"force":true}' or nil, nil, t + 1)
end

function Node:transfer_leadership(to)
  return self.c:call(self.id, "POST", "/v1/leader/transfer", cjson.encode { to = to }, nil, 10)
end

function Node:snapshot()
  return self.c:call(self.id, "POST", "/v1/snapshot", "", nil, 30)
end

function Node:metrics()
  return self.c:call(self.id, "GET", "/metrics", nil, nil, 2)
end

local function alive(self, id)
  local p = self.procs[id]
  return p and not p.exited and not p.paused
end

-- c:leader([timeout_s]) -> id: a leader that a majority of the live nodes
-- follow in its current term, waiting up to timeout_s (default 10) for one.
-- A node that only believes it leads (isolated by a partition, paused, or
-- deposed without knowing it) is not returned: it must say it is the leader,
-- and more than half of the voters of its configuration that are alive
-- (itself included) must name it as leader in the same term; and those must
-- be a majority of the live nodes too.
function Cluster:leader(timeout)
  local deadline = now_ms() + (timeout or 10) * 1000
  repeat
    local st = {}
    local live = 0
    for _, id in ipairs(self.members) do
      if alive(self, id) then
        live = live + 1
        st[id] = self:node(id):status(1)
      end
    end
    for id, s in pairs(st) do
      if s.role == "leader" then
        local voters = 0
        for _, mem in ipairs(s.members or {}) do
          if mem.role ~= "learner" then voters = voters + 1 end
        end
        if voters == 0 then voters = #self.members end
        -- a follower counts only if this cluster's own partition lets it
        -- hear the leader (right after c:partition the cut-off followers
        -- still name the old leader until their election timeout)
        local cut = self.cut or {}
        local follow = 0
        for oid, o in pairs(st) do
          local reachable = oid == id or not ((cut[id] and cut[id][oid]) or (cut[oid] and cut[oid][id]))
          if reachable and o.term == s.term and o.leader == id then follow = follow + 1 end
        end
        if follow > voters // 2 and follow > live // 2 then return id end
      end
    end
    sleep(0.05)
  until now_ms() > deadline
  return nil, errors.new("timeout", "no leader that a majority of the live nodes follow within " ..
    (timeout or 10) .. " s")
end

-- Waits until node id serves: its HTTP API answers and it knows a leader
-- (it has heard from one), or timeout_s passes. While no majority of the
-- nodes runs (restarting a stopped cluster one node at a time) there is no
-- leader to hear from, so then HTTP up is enough. -> the last status.
function Cluster:_wait_serving(id, timeout, member)
  local deadline = now_ms() + (timeout or 10) * 1000
  local last
  local live = 0
  for _, m in ipairs(self.members) do
    if alive(self, m) then live = live + 1 end
  end
  local can_have_leader = live > #self.members // 2
  repeat
    local p = self.procs[id]
    if not p or p.exited then
      error("raft.cluster: node " .. id .. " exited while starting (code " ..
        tostring(p and p.code) .. "); its log:\n" .. self:log(id):sub(-2000), 3)
    end
    local st = self:node(id):status(1)
    if st then
      last = st
      if not can_have_leader or (st.leader ~= nil and st.leader ~= 0
          and (not member or st.is_member)) then
        return st
      end
    end
    sleep(0.02)
  until now_ms() > deadline
  -- the HTTP API must at least be up
  if not last then
    error("raft.cluster: node " .. id .. " did not serve HTTP within " .. (timeout or 10) .. " s", 3)
  end
  return last
end

-- c:wait_for(fn, timeout_s): polls fn() every 50 ms until it returns truthy.
function Cluster:wait_for(fn, timeout)
  local deadline = now_ms() + (timeout or 10) * 1000
  repeat
    local v = fn()
    if v then return v end
    sleep(0.05)
  until now_ms() > deadline
  return nil
end

local function reap(self, id)
  local p = self.procs[id]
  self:wait_for(function() return p.exited end, 10)
  if not p.handle:is_closing() then p.handle:close() end
  self:_close_clients(id)
end

function Cluster:kill(id)
  local p = assert(self.procs[id], "raft.cluster: no node " .. tostring(id))
  if p.exited then return end
  p.expected = true
  if p.paused then uv.kill(p.pid, "sigcont") end
  uv.kill(p.pid, "sigkill")
  reap(self, id)
end

function Cluster:stop(id)
  local p = assert(self.procs[id], "raft.cluster: no node " .. tostring(id))
  if p.exited then return end
  p.expected = true
  if p.paused then uv.kill(p.pid, "sigcont"); p.paused = false end
  uv.kill(p.pid, "sigterm")
  reap(self, id)
end

-- c:restart(id [, timeout_s]): stops the node if it runs, starts it on its
-- data, and returns once it serves: its HTTP API answers and it has heard
-- from a leader, or timeout_s (default 10) passed (a node that cannot reach a
-- majority has no leader to hear from). Returns its status.
function Cluster:restart(id, timeout)
  local p = self.procs[id]
  if p and not p.exited then self:stop(id) end
  if p and not p.handle:is_closing() then p.handle:close() end
  self:_start(id, p and p.joined, p ~= nil)
  return self:_wait_serving(id, timeout)
end

function Cluster:pause(id)
  local p = assert(self.procs[id])
  if not p.exited then uv.kill(p.pid, "sigstop"); p.paused = true end
end

function Cluster:resume(id)
  local p = assert(self.procs[id])
  if not p.exited and p.paused then uv.kill(p.pid, "sigcont"); p.paused = false end
end

local function set_faults(self, id, drop)
  self.cut = self.cut or {}
  local set = {}
  for _, other in ipairs(drop) do set[other] = true end
  self.cut[id] = set
  if not alive(self, id) then return end
  local _, err = self:call(id, "POST", "/v1/faults", cjson.encode { drop = drop }, nil, 2)
  if err and err.code ~= "timeout" then error("raft.cluster: faults on node " .. id .. ": " .. tostring(err)) end
end

-- c:partition({1, 2}, {3}): nodes talk only within their group (nodes in no
-- group are cut off from everybody).
function Cluster:partition(...)
  local group_of = {}
  for g, group in ipairs({ ... }) do
    for _, id in ipairs(group) do group_of[id] = g end
  end
  for _, id in ipairs(self.members) do
    local drop = {}
    for _, other in ipairs(self.members) do
      if other ~= id and (group_of[id] == nil or group_of[id] ~= group_of[other]) then
        drop[#drop + 1] = other
      end
    end
    set_faults(self, id, drop)
  end
end

function Cluster:heal()
  for _, id in ipairs(self.members) do set_faults(self, id, {}) end
end

-- c:add_node(id [, { add = "learner" | "voter", timeout = s }]): starts an
-- empty node with --join and returns its peer address once it serves.
-- Without `add` it returns when its HTTP API answers (it cannot hear from a
-- leader before it is a member: add it with
-- c:node(leader):add_member(id, c:address(id), {learner = true})). With
-- `add`, it is added through the current leader (as a learner, then
-- promoted for "voter") and add_node returns once it has heard from the
-- leader and knows it is a member, or timeout passed.
function Cluster:add_node(id, opts)
  opts = opts or {}
  assert(not self.peer[id], "raft.cluster: node " .. tostring(id) .. " exists")
  self.peer[id] = "127.0.0.1:" .. free_port()
  self.http[id] = "127.0.0.1:" .. free_port()
  self.members[#self.members + 1] = id
  self:_start(id, true)
  local timeout = opts.timeout or 10
  if not opts.add then
    local deadline = now_ms() + timeout * 1000
    while not self:node(id):status(1) do
      if self.procs[id].exited or now_ms() > deadline then
        error("raft.cluster: node " .. id .. " did not serve HTTP; its log:\n" .. self:log(id):sub(-2000), 2)
      end
      sleep(0.02)
    end
    return self.peer[id]
  end
  local l = assert(self:leader(timeout))
  assert(self:node(l):add_member(id, self.peer[id], { learner = true }))
  self:_wait_serving(id, timeout, true) -- and it applied its own membership
  if opts.add == "voter" then
    local ok, err
    self:wait_for(function()
      ok, err = self:node(assert(self:leader(timeout))):promote(id)
      return ok
    end, timeout)
    if not ok then error("raft.cluster: promote " .. id .. ": " .. tostring(err), 2) end
  end
  return self.peer[id]
end

function Cluster:history()
  local list = {}
  for i, op in ipairs(self.ops) do list[i] = op end
  return list
end

-- c:close([grace_s]): stops every node (SIGTERM first when grace_s is
-- given, SIGKILL for those still running after it) and removes the folder
-- it made.
function Cluster:close(grace)
  if self.closed then return end
  self.closed = true
  if type(grace) == "number" and grace > 0 then
    for _, p in pairs(self.procs) do
      if not p.exited then
        p.expected = true
        if p.paused then uv.kill(p.pid, "sigcont") end
        uv.kill(p.pid, "sigterm")
      end
    end
    local deadline = now_ms() + grace * 1000
    local function all_done()
      for _, p in pairs(self.procs) do if not p.exited then return false end end
      return true
    end
    while not all_done() and now_ms() < deadline do uv.run("once") end
  end
  for id, p in pairs(self.procs) do
    if not p.exited then
      p.expected = true
      if p.paused then uv.kill(p.pid, "sigcont") end
      uv.kill(p.pid, "sigkill")
    end
    self:_close_clients(id)
  end
  for _, p in pairs(self.procs) do
    local deadline = now_ms() + 5000
    while not p.exited and now_ms() < deadline do uv.run("once") end
    if not p.handle:is_closing() then p.handle:close() end
  end
  uv.run("nowait")
  if self.owns_dir and self.dir:match("^/tmp/luaraft%-cluster%.") then
    os.execute("rm -rf '" .. self.dir .. "'")
  end
end

Cluster.__gc = function(self) self:close() end
Cluster.__close = function(self) self:close() end

return cluster
