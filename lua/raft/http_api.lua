-- The HTTP API of a node (API.md section 5): routes over the C server
-- (core.http_listen). Each request runs in its own coroutine (raft.spawn),
-- so a propose waiting for its apply does not hold up anybody else.
local core = require "raft.core"
local cjson = require "cjson"
local loop = require "raft.loop"

local http_api = {}

cjson.encode_sparse_array(true)
cjson.encode_invalid_numbers(true)

-- API.md statuses. not_leader is 421 when a leader is known but the request
-- could not go through it (a lease read on a follower, a forwarded proposal
-- lost with its leader): the body names the leader to retry at; it is 503
-- when no leader is known at all ("no leader").
local STATUS = { bad_request = 400, timeout = 504, too_large = 413, apply_error = 422,
  not_leader = 421, stopped = 503, busy = 503, dropped = 503, storage = 500 }

-- The server raises once closed (the node stopped meanwhile): nobody to
-- answer then.
local function respond(srv, id, status, ctype, body)
  pcall(srv.respond, srv, id, status, ctype, body)
end

local function json(srv, req, status, value)
  local ok, body = pcall(cjson.encode, value)
  if not ok then
    status, body = 500, cjson.encode { error = "internal", message = "result is not representable as JSON: " .. tostring(body) }
  end
  respond(srv, req.id, status, "application/json", body .. "\n")
end

local function fail(srv, req, err)
  local status = STATUS[err.code] or 500
  if err.code == "not_leader" and (err.leader == nil or err.leader == 0) then status = 503 end
  json(srv, req, status, { error = err.code, message = tostring(err.message), leader = err.leader,
    address = err.address })
end

local function bad(srv, req, message)
  json(srv, req, 400, { error = "bad_request", message = message })
end

-- JSON null becomes nil and integral numbers integers, so a JSON command
-- encodes (raft.encode) the same as the equivalent Lua table.
local function clean(v, depth)
  if v == cjson.null then return nil end
  if type(v) == "number" then return math.tointeger(v) or v end
  if type(v) == "table" then
    if depth > 100 then error("JSON nested too deeply") end
    local t = {}
    for k, x in pairs(v) do
      local ck = clean(k, depth + 1)
      if ck ~= nil then t[ck] = clean(x, depth + 1) end
    end
    return t
  end
  return v
end

-- The body as a command or query: JSON -> Lua value, anything else -> string.
-- application/json must parse; without a type (or curl -d's form type) a
-- body that parses as a JSON object or array is JSON too.
local function body_value(req)
  local ct = (req.content_type or ""):lower()
  local declared = ct:find("application/json", 1, true) ~= nil
  local maybe = (ct == "" or ct:find("x-www-form-urlencoded", 1, true)) and req.body:match("^%s*[%[{]")
  if declared or maybe then
    local ok, v = pcall(cjson.decode, req.body)
    if ok then
      local ok2, c = pcall(clean, v, 0)
      if not ok2 then return nil, tostring(c) end
      return c
    end
    if declared then return nil, "malformed JSON body: " .. tostring(v):gsub("^.-: ", "") end
  end
  return req.body
end

local function json_body(req)
  if req.body == "" then return {} end
  local ok, v = pcall(cjson.decode, req.body)
  if not ok or type(v) ~= "table" then return nil, "the body must be a JSON object" end
  return clean(v, 0)
end

local function query_params(q)
  local t = {}
  for k, v in (q or ""):gmatch("([^&=]+)=?([^&]*)") do
    t[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return t
end

local function timeout_of(params)
  local t = tonumber(params.timeout)
  if t and t > 0 and t <= 3600 then return t end
  return nil
end

local routes = {}

routes["POST /v1/propose"] = function(node, srv, req, params)
  local cmd, err = body_value(req)
  if err then return bad(srv, req, err) end
  local opts = { timeout = timeout_of(params), wait = params.wait }
  if req.client_id then
    local seq = math.tointeger(tonumber(req.seq or ""))
    if #req.client_id == 0 or #req.client_id > 256 then return bad(srv, req, "Raft-Client-Id must be 1 to 256 bytes") end
    if not seq or seq <= 0 then return bad(srv, req, "Raft-Seq must be a positive integer with Raft-Client-Id") end
    opts.client, opts.seq = req.client_id, seq
  elseif req.seq then
    return bad(srv, req, "Raft-Seq needs a Raft-Client-Id")
  end
  local ok, result, index, term = node:_propose(cmd, opts)
  if not ok then return fail(srv, req, result) end
  json(srv, req, 200, { index = index, term = term, result = result == nil and cjson.null or result })
end

routes["POST /v1/read"] = function(node, srv, req, params)
  local q, err = body_value(req)
  if err then return bad(srv, req, err) end
  local consistency = params.consistency or "linearizable"
  if consistency ~= "linearizable" and consistency ~= "lease" and consistency ~= "stale" then
    return bad(srv, req, "consistency must be linearizable, lease or stale")
  end
  local result, rerr = node:read(q, { consistency = consistency, timeout = timeout_of(params) })
  if rerr then return fail(srv, req, rerr) end
  json(srv, req, 200, { result = result == nil and cjson.null or result })
end

-- The serving process's pid (so `luaraft ctl kill-leader` and scripts can
-- signal exactly the leader's process), from Linux's /proc (not luv: loading
-- it here would attach to the host's libuv loop).
local PID = (function()
  local f = io.open("/proc/self/stat")
  if not f then return nil end
  local pid = f:read("n")
  f:close()
  return pid
end)()

routes["GET /v1/status"] = function(node, srv, req)
  local st = node:status()
  st.pid = PID -- the leader's id is st.leader
  json(srv, req, 200, st)
end

routes["GET /v1/members"] = function(node, srv, req)
  local st = node:status()
  json(srv, req, 200, { leader = st.leader, members = st.members })
end

routes["POST /v1/members"] = function(node, srv, req, params)
  local b, err = json_body(req)
  if not b then return bad(srv, req, err) end
  local id = math.tointeger(b.id)
  if not id or id <= 0 then return bad(srv, req, "id must be a positive integer") end
  if type(b.address) ~= "string" or not b.address:match("^.+:%d+$") then
    return bad(srv, req, "address must be \"host:port\"")
  end
  local ok, cerr = node:add_member(id, b.address, { learner = b.learner == true, timeout = timeout_of(params) })
  if not ok then return fail(srv, req, cerr) end
  json(srv, req, 200, { ok = true })
end

routes["POST /v1/leader/transfer"] = function(node, srv, req, params)
  local b, err = json_body(req)
  if not b then return bad(srv, req, err) end
  local to = b.to ~= nil and math.tointeger(b.to) or 0
  if not to or to < 0 then return bad(srv, req, "to must be a node id") end
  local ok, terr = node:transfer_leadership(to ~= 0 and to or nil, timeout_of(params))
  if not ok then return fail(srv, req, terr) end
  json(srv, req, 200, { ok = true, leader = node:status().leader })
end

routes["POST /v1/snapshot"] = function(node, srv, req)
  local ok, err = node:snapshot()
  if not ok then return fail(srv, req, err) end
  json(srv, req, 200, { ok = true })
end

-- Tests only (node started with allow_faults): {"drop": [ids]} cuts this
-- node off from those peers, {"drop": []} heals; {"fail_writes": n} makes
-- the next n storage writes fail.
routes["POST /v1/faults"] = function(node, srv, req)
  local b, err = json_body(req)
  if not b then return bad(srv, req, err) end
  if b.fail_writes ~= nil then
    local n = math.tointeger(b.fail_writes)
    if not n or n < 0 then return bad(srv, req, "fail_writes must be a non-negative integer") end
    local ok, ferr = node:fail_writes(n)
    if not ok then return fail(srv, req, ferr) end
    if b.drop == nil then return json(srv, req, 200, { ok = true, fail_writes = n }) end
  end
  local ids = {}
  for _, v in pairs(b.drop or {}) do
    local id = math.tointeger(v)
    if not id then return bad(srv, req, "drop must be a list of node ids") end
    ids[#ids + 1] = id
  end
  local ok, ferr = node:faults(ids)
  if not ok then return fail(srv, req, ferr) end
  json(srv, req, 200, { ok = true, drop = ids })
end

local function member_route(node, srv, req, params)
  local id, action = req.path:match("^/v1/members/(%d+)(.*)$")
  id = math.tointeger(tonumber(id))
  if not id or id <= 0 then return false end
  local ok, err
  if req.method == "DELETE" and action == "" then
    ok, err = node:remove_member(id, timeout_of(params))
  elseif req.method == "POST" and action == "/promote" then
    ok, err = node:promote(id, timeout_of(params))
  else
    return false
  end
  if not ok then fail(srv, req, err) else json(srv, req, 200, { ok = true }) end
  return true
end

-- Prometheus text format.
local function metrics_text(node, srv)
  local st, m = node:status(), node:metrics() or {}
  local out = {}
  local function metric(name, kind, help, value, labels)
    out[#out + 1] = ("# HELP luaraft_%s %s\n# TYPE luaraft_%s %s\n"):format(name, help, name, kind)
    out[#out + 1] = ("luaraft_%s%s %s\n"):format(name, labels or "", tostring(value))
  end
  local roles = { follower = 0, candidate = 1, leader = 2, learner = 3, stopped = -1 }
  metric("role", "gauge", "0 follower, 1 candidate, 2 leader, 3 learner", roles[st.role] or -1)
  metric("term", "gauge", "current term", st.term or 0)
  metric("leader_id", "gauge", "known leader (0: none)", st.leader or 0)
  metric("commit_index", "gauge", "commit index", st.commit_index or 0)
  metric("applied_index", "gauge", "applied index", st.applied_index or 0)
  metric("last_index", "gauge", "last log index", st.last_index or 0)
  metric("snapshot_index", "gauge", "last snapshot index", st.snapshot_index or 0)
  metric("proposals_total", "counter", "proposals made on this node", m.proposals or 0)
  metric("proposals_failed_total", "counter", "proposals refused", m.proposals_failed or 0)
  metric("elections_total", "counter", "elections this node started", m.elections or 0)
  metric("leader_changes_total", "counter", "leader changes seen", m.leader_changes or 0)
  metric("applied_entries_total", "counter", "entries applied", m.applied_entries or 0)
  metric("snapshots_taken_total", "counter", "snapshots taken", m.snapshots_taken or 0)
  metric("snapshots_restored_total", "counter", "snapshots restored", m.snapshots_restored or 0)
  metric("storage_batches_failed_total", "counter", "failed storage writes", m.batches_failed or 0)
  metric("storage_updates_merged_total", "counter", "updates that joined a queued write (group commit)", m.batches_merged or 0)
  local sm = st.state_machine or {}
  metric("state_machine_halted", "gauge", "1 when the state machine halted (see the log)", sm.halted and 1 or 0)
  metric("state_machine_digest_mismatches_total", "counter", "digest checkpoints a majority contradicted",
    sm.digest_mismatches or 0)
  metric("state_machine_memory_bytes", "gauge", "bytes of the state machine's Lua state", sm.memory_used or 0)
  metric("peer_bad_frames_total", "counter", "peer frames that did not parse", m.net_bad_frames or 0)
  metric("peer_handshake_failures_total", "counter", "refused peer handshakes", m.net_handshake_failures or 0)
  out[#out + 1] = "# HELP luaraft_fsync_seconds storage batch write (commit + fsync) latency\n"
  out[#out + 1] = "# TYPE luaraft_fsync_seconds histogram\n"
  for _, b in ipairs(m.fsync_buckets or {}) do
    out[#out + 1] = ('luaraft_fsync_seconds_bucket{le="%s"} %d\n'):format(tostring(b[1]), b[2])
  end
  out[#out + 1] = ("luaraft_fsync_seconds_sum %.6f\nluaraft_fsync_seconds_count %d\n"):format(
    m.fsync_seconds_sum or 0, m.batches or 0)
  out[#out + 1] = "# HELP luaraft_peer_up peer connection state (1 up)\n# TYPE luaraft_peer_up gauge\n"
  for _, mem in ipairs(st.members or {}) do
    if mem.id ~= st.id then
      out[#out + 1] = ('luaraft_peer_up{peer="%d"} %d\n'):format(mem.id, mem.connected and 1 or 0)
    end
  end
  if m.progress and #m.progress > 0 then
    out[#out + 1] = "# HELP luaraft_peer_match_index replicated index per member (leader)\n# TYPE luaraft_peer_match_index gauge\n"
    for _, p in ipairs(m.progress) do
      out[#out + 1] = ('luaraft_peer_match_index{peer="%d"} %d\n'):format(p.id, p.match)
    end
  end
  local hs = srv:stats()
  metric("http_requests_total", "counter", "HTTP requests", hs.requests)
  metric("http_bad_requests_total", "counter", "malformed HTTP requests", hs.bad_requests)
  metric("http_too_large_total", "counter", "HTTP bodies over the limit", hs.too_large)
  return table.concat(out)
end

local function handle(node, srv, req)
  local params = query_params(req.query)
  local route = routes[req.method .. " " .. req.path]
  if route then return route(node, srv, req, params) end
  if req.path:match("^/v1/members/") and member_route(node, srv, req, params) then return end
  if req.method == "GET" and req.path == "/metrics" then
    return respond(srv, req.id, 200, "text/plain; version=0.0.4", metrics_text(node, srv))
  end
  for key in pairs(routes) do
    if key:match(" (.*)$") == req.path then
      return json(srv, req, 405, { error = "bad_request", message = req.method .. " is not allowed on " .. req.path })
    end
  end
  json(srv, req, 404, { error = "bad_request", message = "no route " .. req.method .. " " .. req.path })
end

-- serve(node, "127.0.0.1:8001", { max_body = n }) -> server | nil, message
function http_api.serve(node, addr, opts)
  opts = opts or {}
  local srv
  local function on_request(req)
    loop.spawn(function()
      local ok, err = pcall(handle, node, srv, req)
      if not ok then
        core.log("error", "error", node.id, "HTTP " .. req.method .. " " .. req.path .. ": " .. tostring(err))
        respond(srv, req.id, 500, "application/json", cjson.encode { error = "internal", message = tostring(err) })
      end
    end)
  end
  local err
  srv, err = core.http_listen(addr, on_request, { max_body = opts.max_body or 1048576 })
  if not srv then return nil, "cannot serve HTTP on " .. addr .. ": " .. tostring(err) end
  return srv
end

http_api.routes = routes
return http_api
