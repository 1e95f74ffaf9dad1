-- The HTTP API of a node (API.md section 5): routes over the C server
-- (core.http_listen). Each request runs in its own coroutine (raft.spawn),
-- so a propose waiting for its apply does not hold up anybody else.
local core = require "raft.core"
local loop = require "raft.loop"
local json_util = require "raft.json"
local options = require "raft.options"

local http_api = {}

-- A private cjson instance (its settings do not leak into the embedder's
-- `require "cjson"`): strict numbers both ways. Decoding refuses NaN,
-- Infinity and hex (and clean() below refuses what overflows to inf, like
-- 1e400); encoding raises on nan/inf instead of writing them, so no response
-- ever carries a token that is not JSON.
local cjson = require("cjson").new()
cjson.encode_sparse_array(true)
cjson.encode_invalid_numbers(false)
cjson.decode_invalid_numbers(false)
cjson.decode_max_depth(128)

-- API.md statuses. not_leader is 421 when a leader is known but the request
-- could not go through it (a lease read on a follower, a forwarded proposal
-- lost with its leader): the body names the leader to retry at; it is 503
-- when no leader is known at all ("no leader").
local STATUS = { bad_request = 400, timeout = 504, too_large = 413, apply_error = 422,
  not_leader = 421, stopped = 503, busy = 503, dropped = 503, storage = 500 }

-- The server raises once closed (the node stopped meanwhile): nobody to
-- answer then.
local function respond(srv, id, status, ctype, body, headers)
  pcall(srv.respond, srv, id, status, ctype, body, headers)
end

local function why(e)
  return (tostring(e):gsub("^.-:%d+: ", ""))
end

-- -> true | false, message (the value held nan/inf or something else JSON
-- cannot say); on false nothing was sent.
local function try_json(srv, req, status, value, headers)
  local ok, body = pcall(cjson.encode, value)
  if not ok then return false, why(body) end
  respond(srv, req.id, status, "application/json", body .. "\n", headers)
  return true
end

local function json(srv, req, status, value, headers)
  local ok, msg = try_json(srv, req, status, value, headers)
  if not ok then
    try_json(srv, req, 500, { error = "internal", message = "the reply is not representable as JSON: " .. msg })
  end
end

-- A committed write whose result does not reach the client: the write
-- happened (at index), which the code and `applied` say, so a client does
-- not retry it blindly.
local function applied_but(srv, req, code, message, index, term)
  json(srv, req, 500, { error = code, message = message, applied = true, index = index, term = term })
end

local function fail(srv, req, err)
  if err.result_too_large then
    if err.applied then return applied_but(srv, req, "result_too_large", tostring(err.message), err.index, err.term) end
    return json(srv, req, 500, { error = "result_too_large", message = tostring(err.message) })
  end
  local status = STATUS[err.code] or 500
  if err.code == "not_leader" and (err.leader == nil or err.leader == 0) then status = 503 end
  json(srv, req, status, { error = err.code, message = tostring(err.message), leader = err.leader,
    address = err.address, http = err.http, index = err.index, term = err.term })
end

local function bad(srv, req, message)
  json(srv, req, 400, { error = "bad_request", message = message })
end

-- JSON null becomes nil and integral numbers integers, so a JSON command
-- encodes (raft.encode) the same as the equivalent Lua table. A number that
-- overflowed to inf (1e400) is refused.
local function clean(v)
  return json_util.normalize(v)
end

-- One rule for bodies (docs/http.md, "Request bodies"): a body is JSON
-- unless its Content-Type says otherwise. JSON: no Content-Type,
-- application/json, */*+json, and application/x-www-form-urlencoded (what
-- `curl -d` sends whatever the data is); raw bytes (a Lua string):
-- text/plain and application/octet-stream; any other type is 415.
local RAW_TYPES = { ["text/plain"] = true, ["application/octet-stream"] = true }
local JSON_TYPES = { [""] = true, ["application/json"] = true, ["application/x-www-form-urlencoded"] = true }

local function media_type(req)
  return ((req.content_type or ""):lower():match("^%s*([^;%s]*)"))
end

-- -> value | nil, message, status. JSON text must parse, strictly.
local function decode_json(text)
  local ok, v = pcall(cjson.decode, text)
  if not ok then return nil, "malformed JSON body: " .. why(v), 400 end
  local ok2, c = pcall(clean, v)
  if not ok2 then return nil, "malformed JSON body: " .. why(c), 400 end
  return c
end

-- The body as a command or query. -> value (nil for an empty JSON body) |
-- nil, message, status
local function body_value(req)
  local mt = media_type(req)
  if RAW_TYPES[mt] then return req.body end
  if not (JSON_TYPES[mt] or mt:match("^application/[%w%.%-]+%+json$")) then
    return nil, "Content-Type " .. mt .. " is not supported: send JSON (application/json) or raw bytes "
      .. "(text/plain, application/octet-stream)", 415
  end
  if req.body:match("^%s*$") then return nil end
  return decode_json(req.body)
end

local function json_body(req)
  local mt = media_type(req)
  if not (JSON_TYPES[mt] or mt:match("^application/[%w%.%-]+%+json$")) then
    return nil, "Content-Type " .. mt .. " is not supported here: send a JSON object", 415
  end
  if req.body:match("^%s*$") then return {} end
  local v, err, status = decode_json(req.body)
  if err then return nil, err, status end
  if type(v) ~= "table" then return nil, "the body must be a JSON object", 400 end
  return v
end

local function bad_body(srv, req, message, status)
  if status == 415 then
    return json(srv, req, 415, { error = "unsupported_media_type", message = message })
  end
  return bad(srv, req, message)
end

local function query_params(q)
  local t = {}
  for k, v in (q or ""):gmatch("([^&=]+)=?([^&]*)") do
    t[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return t
end

-- checked by check_params before any route runs
local function timeout_of(params)
  return params.timeout and tonumber(params.timeout)
end

-- The query parameters each route takes; a typo (`timout=`, `wait=comit`)
-- must not silently change what a request does, so anything else is 400.
local PARAMS = {
  ["POST /v1/propose"] = { "timeout", "wait" },
  ["POST /v1/read"] = { "timeout", "consistency" },
  ["POST /v1/members"] = { "timeout" },
  ["POST /v1/leader/transfer"] = { "timeout" },
  members = { "timeout" }, -- DELETE /v1/members/ID, POST /v1/members/ID/promote
}

-- The first key of t not in `known`, as a sentence naming the closest known
-- one, or nil. `what`: "query parameter" or "field".
local function unknown_key(t, known, what)
  local names, set = {}, {}
  for k in pairs(t) do names[#names + 1] = tostring(k) end
  for _, a in ipairs(known) do set[a] = true end
  table.sort(names)
  for _, k in ipairs(names) do
    if not set[k] then return options.unknown(k, known, what) end
  end
end

-- -> nil, or the sentence of a 400
local function check_params(params, allowed)
  local unknown = unknown_key(params, allowed, "query parameter")
  if unknown then return unknown end
  if params.timeout then
    local t = tonumber(params.timeout)
    if not t or not (t > 0 and t <= 3600) then return "timeout must be a number of seconds, above 0 and at most 3600" end
  end
  if params.wait and params.wait ~= "apply" and params.wait ~= "commit" then
    return "wait must be apply or commit"
  end
end

-- Fields of a JSON object body that a route reads; any other is 400 (with
-- the closest known one), for the same reason. -> nil, or the sentence
local function check_fields(b, known)
  return unknown_key(b, known, "field")
end

local routes = {}

routes["POST /v1/propose"] = function(node, srv, req, params)
  local cmd, err, status = body_value(req)
  if err then return bad_body(srv, req, err, status) end
  if cmd == nil and req.body:match("^%s*$") and not RAW_TYPES[media_type(req)] then
    return bad(srv, req, "the body is empty: send the command as JSON (or raw bytes with Content-Type: text/plain)")
  end
  local opts = { timeout = timeout_of(params), wait = params.wait }
  if req.client_id then
    -- digits only: tonumber would take " 1", "0x10" and "1e3"
    local seq = req.seq and req.seq:match("^%d+$") and #req.seq <= 18 and math.tointeger(tonumber(req.seq))
    if #req.client_id == 0 or #req.client_id > 256 then return bad(srv, req, "Raft-Client-Id must be 1 to 256 bytes") end
    if not seq or seq <= 0 then
      return bad(srv, req, "Raft-Seq must be a positive integer (decimal digits) with Raft-Client-Id")
    end
    opts.client, opts.seq = req.client_id, seq
  elseif req.seq then
    return bad(srv, req, "Raft-Seq needs a Raft-Client-Id")
  end
  local ok, result, index, term = node:_propose(cmd, opts)
  if not ok then return fail(srv, req, result) end
  local sent, msg = try_json(srv, req, 200,
    { index = index, term = term, result = result == nil and cjson.null or result })
  if not sent then
    applied_but(srv, req, "result_not_encodable",
      "the write was applied but its result is not representable as JSON: " .. msg, index, term)
  end
end

routes["POST /v1/read"] = function(node, srv, req, params)
  local q, err, status = body_value(req)
  if err then return bad_body(srv, req, err, status) end
  local consistency = params.consistency or "linearizable"
  if consistency ~= "linearizable" and consistency ~= "lease" and consistency ~= "stale" then
    return bad(srv, req, "consistency must be linearizable, lease or stale")
  end
  local result, rerr = node:read(q, { consistency = consistency, timeout = timeout_of(params) })
  if rerr then return fail(srv, req, rerr) end
  local sent, msg = try_json(srv, req, 200, { result = result == nil and cjson.null or result })
  if not sent then
    json(srv, req, 500, { error = "result_not_encodable",
      message = "the result is not representable as JSON: " .. msg })
  end
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

-- Membership and transfer requests on a follower are answered with a
-- redirect to the leader (307: the method and body are kept, so a client
-- that follows redirects, e.g. curl -L, reaches the leader) when this node
-- knows the leader's HTTP address; else they run here and fail with
-- not_leader naming the leader. -> true if answered.
local function redirected(node, srv, req)
  local st = node:status()
  if st.role == "leader" or not st.leader or not node.http_address then return false end
  local addr = node:http_address(st.leader)
  if not addr then return false end
  local scheme = node.http_opts and node.http_opts.tls_cert and "https" or "http"
  local target = scheme .. "://" .. addr .. req.path .. (req.query and req.query ~= "" and ("?" .. req.query) or "")
  json(srv, req, 307, { error = "not_leader", message = "node " .. st.leader .. " leads: " .. target,
    leader = st.leader, http = addr }, "Location: " .. target .. "\r\n")
  return true
end

routes["POST /v1/members"] = function(node, srv, req, params)
  if redirected(node, srv, req) then return end
  local b, err, status = json_body(req)
  if not b then return bad_body(srv, req, err, status) end
  local ferr = check_fields(b, { "id", "address", "learner", "force" })
  if ferr then return bad(srv, req, ferr) end
  local id = math.tointeger(b.id)
  if not id or id <= 0 then return bad(srv, req, "id must be a positive integer") end
  local host, aerr = options.address(b.address)
  if not host then return bad(srv, req, aerr) end
  if b.learner ~= nil and type(b.learner) ~= "boolean" then return bad(srv, req, "learner must be true or false") end
  if b.force ~= nil and type(b.force) ~= "boolean" then return bad(srv, req, "force must be true or false") end
  local ok, cerr = node:add_member(id, b.address,
    { learner = b.learner == true, force = b.force == true, timeout = timeout_of(params) })
  if not ok then return fail(srv, req, cerr) end
  json(srv, req, 200, { ok = true, index = cerr })
end

routes["POST /v1/leader/transfer"] = function(node, srv, req, params)
  if redirected(node, srv, req) then return end
  local b, err, status = json_body(req)
  if not b then return bad_body(srv, req, err, status) end
  local ferr = check_fields(b, { "to" })
  if ferr then return bad(srv, req, ferr) end
  local to = b.to ~= nil and math.tointeger(b.to) or 0
  if not to or to < 0 then return bad(srv, req, "to must be a node id") end
  local ok, terr = node:transfer_leadership(to ~= 0 and to or nil, timeout_of(params))
  if not ok then return fail(srv, req, terr) end
  json(srv, req, 200, { ok = true, leader = node:status().leader })
end

-- A snapshot() that raises (or a snapshot that cannot be written) is the
-- server's problem, not the request's: 500 snapshot_failed. The host reports
-- every refusal as bad_request, so the sentence tells them apart: a script
-- without snapshot()/restore() or nothing new to snapshot stays 400, one
-- already being written is 503 busy, a stopped node 503.
routes["POST /v1/snapshot"] = function(node, srv, req)
  local ok, err = node:snapshot()
  if not ok then
    local msg = tostring(err.message)
    if err.code ~= "bad_request" then return fail(srv, req, err) end
    if msg:find("is stopped", 1, true) then return fail(srv, req, { code = "stopped", message = msg }) end
    if msg:find("already being written", 1, true) then return fail(srv, req, { code = "busy", message = msg }) end
    if msg:find("has no snapshot", 1, true) or msg:find("nothing applied", 1, true) then
      return fail(srv, req, err)
    end
    return json(srv, req, 500, { error = "snapshot_failed", message = msg })
  end
  json(srv, req, 200, { ok = true })
end

-- Tests only (node started with allow_faults): {"drop": [ids]} cuts this
-- node off from those peers, {"drop": []} heals; {"fail_writes": n} makes
-- the next n storage writes fail.
routes["POST /v1/faults"] = function(node, srv, req)
  local b, err, status = json_body(req)
  if not b then return bad_body(srv, req, err, status) end
  local bad_field = check_fields(b, { "drop", "fail_writes" })
  if bad_field then return bad(srv, req, bad_field) end
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
  if (req.method == "DELETE" and action == "") or (req.method == "POST" and action == "/promote") then
    if redirected(node, srv, req) then return true end
  end
  local remove = req.method == "DELETE" and action == ""
  if not remove and not (req.method == "POST" and action == "/promote") then return false end
  -- an optional JSON body: {"force": true}
  local b, berr, status = {}, nil, nil
  if not req.body:match("^%s*$") then b, berr, status = json_body(req) end
  if not b then bad_body(srv, req, berr, status) return true end
  local ferr = check_fields(b, { "force" })
  if ferr then bad(srv, req, ferr) return true end
  if b.force ~= nil and type(b.force) ~= "boolean" then bad(srv, req, "force must be true or false") return true end
  local o = { timeout = timeout_of(params), force = b.force == true }
  local ok, err
  if remove then
    ok, err = node:remove_member(id, o)
  else
    ok, err = node:promote(id, o)
  end
  if not ok then fail(srv, req, err) else json(srv, req, 200, { ok = true, index = err }) end
  return true
end

-- Prometheus text format.
local function metrics_text(node, srv, counters)
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
  metric("snapshot_bytes_sent_total", "counter", "snapshot bytes sent to followers", st.snapshot_bytes_sent or 0)
  metric("snapshot_bytes_received_total", "counter", "snapshot bytes received from a leader",
    st.snapshot_bytes_received or 0)
  if st.snapshot_transfers and #st.snapshot_transfers > 0 then
    out[#out + 1] = "# HELP luaraft_snapshot_transfer_bytes bytes so far of a snapshot transfer in progress\n" ..
      "# TYPE luaraft_snapshot_transfer_bytes gauge\n"
    for _, x in ipairs(st.snapshot_transfers) do
      out[#out + 1] = ('luaraft_snapshot_transfer_bytes{peer="%d",direction="%s",total="%d"} %d\n'):format(
        x.peer, x.direction, x.total, x.bytes)
    end
    out[#out + 1] = "# HELP luaraft_snapshot_transfer_eta_seconds time left at the transfer's rate\n" ..
      "# TYPE luaraft_snapshot_transfer_eta_seconds gauge\n"
    for _, x in ipairs(st.snapshot_transfers) do
      out[#out + 1] = ('luaraft_snapshot_transfer_eta_seconds{peer="%d",direction="%s"} %.3f\n'):format(
        x.peer, x.direction, x.eta_s or -1)
    end
  end
  metric("storage_batches_failed_total", "counter", "failed storage writes", m.batches_failed or 0)
  metric("storage_updates_merged_total", "counter", "updates that joined a queued write (group commit)", m.batches_merged or 0)
  metric("storage_fsyncs_total", "counter", "storage writes made durable (one fsync each)", m.fsyncs or 0)
  metric("storage_entries_persisted_total", "counter", "log entries made durable", m.entries_persisted or 0)
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
  local stages = m.stages or {}
  out[#out + 1] = "# HELP luaraft_stage_seconds latency per stage of a write (docs/metrics.md)\n"
  out[#out + 1] = "# TYPE luaraft_stage_seconds histogram\n"
  for _, name in ipairs({ "leader_persist", "follower_persist", "ack_commit", "apply", "write", "snapshot" }) do
    local sg = stages[name]
    if sg then
      for _, b in ipairs(sg.buckets) do
        out[#out + 1] = ('luaraft_stage_seconds_bucket{stage="%s",le="%s"} %d\n'):format(name, tostring(b[1]), b[2])
      end
      out[#out + 1] = ('luaraft_stage_seconds_sum{stage="%s"} %.6f\nluaraft_stage_seconds_count{stage="%s"} %d\n'):format(
        name, sg.sum_seconds, name, sg.count)
    end
  end
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
  metric("http_timeouts_total", "counter", "HTTP connections closed by a header, body, idle or send timeout",
    hs.timeouts)
  metric("http_rejected_total", "counter", "HTTP connections refused with 503 (every slot busy)", hs.rejected)
  metric("http_evicted_total", "counter", "idle HTTP connections closed to make room", hs.evicted)
  metric("http_connections_open", "gauge", "open HTTP connections", hs.open)
  metric("http_tls_failures_total", "counter", "failed TLS handshakes or records", hs.tls_failures)
  metric("http_unauthorized_total", "counter", "HTTP requests refused with 401 or 403", counters.unauthorized)
  return table.concat(out)
end

-- ---- authentication (docs/security.md, "HTTP authentication") -----------
-- Routes that change the cluster or its operation: they need an admin token
-- when admin tokens are configured (a client token gets 403), a client token
-- when only client tokens are.
local ADMIN = { ["POST /v1/members"] = true, ["POST /v1/leader/transfer"] = true,
  ["POST /v1/snapshot"] = true, ["POST /v1/faults"] = true }

local function is_admin(req)
  if ADMIN[req.method .. " " .. req.path] then return true end
  return req.path:match("^/v1/members/") ~= nil and req.method ~= "GET"
end

local function any_equal(list, token)
  local hit = false
  for _, t in ipairs(list) do
    if core.token_equal(t, token) then hit = true end -- no early exit: same time for every position
  end
  return hit
end

local REALM = 'Bearer realm="luaraft"'

-- -> true | status, code, message, WWW-Authenticate value
local function authorize(auth, req)
  local admin = is_admin(req)
  local need -- the lists whose tokens are accepted here
  if admin then
    need = auth.admin or auth.client
  elseif not (req.method == "GET" and auth.open[req.path]) and auth.client then
    need = auth.client
  end
  if not need then return true end
  local h = req.authorization
  if h == nil then
    return 401, "unauthorized", "this route needs Authorization: Bearer TOKEN", REALM
  end
  local token = h:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +([%w%-%._~%+/]+=*) *$")
  if token == nil then
    return 401, "unauthorized", "the Authorization header must be: Bearer TOKEN", REALM .. ', error="invalid_request"'
  end
  if any_equal(need, token) then return true end
  if not admin and auth.admin and need ~= auth.admin and any_equal(auth.admin, token) then
    return true -- an admin token opens the client routes too
  end
  if need ~= auth.admin then need = nil end -- (for the check below: was this an admin-only route?)
  if need and auth.client and any_equal(auth.client, token) then
    return 403, "forbidden", "this route needs an admin token; a client token is not enough",
      REALM .. ', error="insufficient_scope"'
  end
  return 401, "unauthorized", "the token is not valid here", REALM .. ', error="invalid_token"'
end

local function handle(node, srv, req, auth, counters)
  if auth then
    local status, code, message, challenge = authorize(auth, req)
    if status ~= true then
      counters.unauthorized = counters.unauthorized + 1
      return json(srv, req, status, { error = code, message = message },
        "WWW-Authenticate: " .. challenge .. "\r\n")
    end
  end
  local params = query_params(req.query)
  local key = req.method .. " " .. req.path
  local route = routes[key]
  local members = not route and req.path:match("^/v1/members/")
  local perr = check_params(params, PARAMS[members and "members" or key] or {})
  if perr and (route or members) then return bad(srv, req, perr) end
  if route then return route(node, srv, req, params) end
  if members and member_route(node, srv, req, params) then return end
  if req.method == "GET" and req.path == "/metrics" then
    return respond(srv, req.id, 200, "text/plain; version=0.0.4", metrics_text(node, srv, counters))
  end
  for k in pairs(routes) do
    if k:match(" (.*)$") == req.path then
      return json(srv, req, 405, { error = "bad_request", message = req.method .. " is not allowed on " .. req.path })
    end
  end
  json(srv, req, 404, { error = "bad_request", message = "no route " .. req.method .. " " .. req.path })
end

-- What serve() passes on to the C server (src/http/http.h).
local LISTEN_KEYS = { "max_body", "max_conns", "fd_reserve", "header_timeout_ms", "body_timeout_ms",
  "idle_timeout_ms", "send_timeout_ms", "linger_ms", "tls_cert", "tls_key", "tls_ca", "tls_client_certs" }

-- serve(node, "127.0.0.1:8001", opts) -> server | nil, message
-- opts: max_body, max_conns, fd_reserve, *_timeout_ms, linger_ms, tls_cert,
-- tls_key, tls_ca, tls_client_certs (see core.http_listen), and auth =
-- { client = { tokens }, admin = { tokens }, open = { [path] = true } }
-- (nil: no authentication).
function http_api.serve(node, addr, opts)
  opts = opts or {}
  local srv
  local auth = opts.auth
  if auth then
    auth = { client = auth.client, admin = auth.admin,
      open = auth.open or { ["/metrics"] = true, ["/v1/status"] = true } }
    if auth.client and #auth.client == 0 then auth.client = nil end
    if auth.admin and #auth.admin == 0 then auth.admin = nil end
    if not auth.client and not auth.admin then auth = nil end
  end
  local counters = { unauthorized = 0 }
  local function on_request(req)
    loop.spawn(function()
      local ok, err = pcall(handle, node, srv, req, auth, counters)
      if not ok then
        core.log("error", "error", node.id, "HTTP " .. req.method .. " " .. req.path .. ": " .. tostring(err))
        respond(srv, req.id, 500, "application/json", cjson.encode { error = "internal", message = tostring(err) })
      end
    end)
  end
  local lopts = {}
  for _, k in ipairs(LISTEN_KEYS) do lopts[k] = opts[k] end
  lopts.max_body = lopts.max_body or 1048576
  local ok, s, err = pcall(core.http_listen, addr, on_request, lopts)
  if not ok then return nil, "cannot serve HTTP on " .. addr .. ": " .. tostring(s) end
  srv = s
  if not srv then return nil, "cannot serve HTTP on " .. addr .. ": " .. tostring(err) end
  local want = opts.max_conns or 1024
  local st = srv:stats()
  if st.max_conns < want then
    core.log("warn", node.opts and node.opts.log_level or "info", node.id, ("HTTP: at most %d connections, not %d: "
      .. "the open-files limit (ulimit -n) keeps %d descriptors for peers and storage"):format(
      st.max_conns, want, opts.fd_reserve or 256))
  end
  return srv
end

http_api.routes = routes
return http_api
