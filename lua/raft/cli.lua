-- The host commands (API.md section 2):
--   luaraft run [flags] SCRIPT.lua     one cluster node
--   luaraft cluster [flags] SCRIPT.lua a local dev cluster of `run` processes
--   luaraft ctl [--http ADDR] COMMAND  talk to a node over HTTP
--   luaraft bench [flags]              committed writes per second, latency
-- main(command, ...) returns the exit code: 0 ok, 1 failure, 2 usage error.

-- every option's default is defined once, in raft.options
local D = require("raft.options").default
local cli = {}

local USAGE = {
  run = [[
usage: luaraft run --id ID --peers ID=HOST:PORT,... [flags] SCRIPT.lua
  --id N                 this node's id (LUARAFT_ID)
  --peers LIST           1=127.0.0.1:7001,2=...; must include this node (LUARAFT_PEERS);
                         optional on a restart (the stored configuration has them);
                         with --join only this node's own address is needed
  --http ADDR            serve the HTTP API on ADDR, e.g. 127.0.0.1:8001 (LUARAFT_HTTP)
  --http-peers LIST      where the others serve HTTP: 1=HOST:PORT,2=... (LUARAFT_HTTP_PEERS);
                         errors and /v1/status then name the leader's HTTP address, and
                         membership/transfer calls on a follower redirect (307) to it
  --data DIR             data directory, default data/ID (LUARAFT_DATA)
  --storage KIND         sqlite (default) or memory (LUARAFT_STORAGE)
  --election-ms N        election timeout, random in [N, 2N), default 300 (LUARAFT_ELECTION_MS)
  --heartbeat-ms N       default 50 (LUARAFT_HEARTBEAT_MS)
  --secret-file FILE     shared cluster key for peer authentication (LUARAFT_SECRET_FILE)
  --cluster-name NAME    derive the cluster id from NAME instead of a random one (LUARAFT_CLUSTER_NAME)
  --tls-cert FILE, --tls-key FILE, --tls-ca FILE
                         this node's PEM certificate and key, and the CA every peer's
                         certificate must chain to (LUARAFT_TLS_CERT/KEY/CA): with all
                         three, mutual TLS between peers and HTTPS; cert and key alone:
                         HTTPS only
  --join                 start empty and wait to be added (LUARAFT_JOIN)
  --log-level LEVEL      error, warn, info (default) or debug (LUARAFT_LOG_LEVEL)
  --snapshot-entries N   snapshot every N applied entries, default 10000, 0 never
  --apply-budget N       instructions per apply, default 100000000, 0 none (LUARAFT_APPLY_BUDGET)
  --memory-max BYTES     the state machine's Lua memory, default 1 GiB (LUARAFT_MEMORY_MAX)
  --digest-entries N     compare digest() every N entries, default 1000, 0 never (LUARAFT_DIGEST_ENTRIES)
  --max-result-bytes N   bound on one apply/read result, default 1048576, 0 none; the
                         same on every node (LUARAFT_MAX_RESULT_BYTES)
  --no-pre-vote, --no-check-quorum, --allow-faults (tests: POST /v1/faults)
HTTP (docs/http.md, docs/security.md):
  --http-token-file FILE        client tokens, one per line: every route needs
                                Authorization: Bearer TOKEN (LUARAFT_HTTP_TOKEN_FILE)
  --http-admin-token-file FILE  admin tokens for membership, transfer, snapshot and faults;
                                also --admin-token-file (LUARAFT_HTTP_ADMIN_TOKEN_FILE)
  --http-open LIST              GET paths served without a token, default /metrics,/v1/status;
                                "none" for none (LUARAFT_HTTP_OPEN)
  --http-client-certs           HTTPS clients must present a certificate from --tls-ca
                                (LUARAFT_HTTP_CLIENT_CERTS)
  --http-plain                  serve the API in clear even with --tls-cert (peers keep
                                TLS; for a loopback API or a TLS proxy) (LUARAFT_HTTP_PLAIN)
  --max-body BYTES              request body limit, default 1048576 (LUARAFT_MAX_BODY)
  --http-max-conns N            default 1024, within ulimit -n less 256 (LUARAFT_HTTP_MAX_CONNS)
  --http-header-timeout-ms N    request line and headers, default 20000 (LUARAFT_HTTP_HEADER_TIMEOUT_MS)
  --http-body-timeout-ms N      the whole body, default 60000 (LUARAFT_HTTP_BODY_TIMEOUT_MS)
  --http-idle-timeout-ms N      keep-alive, default 75000 (LUARAFT_HTTP_IDLE_TIMEOUT_MS)
]],
  cluster = [[
usage: luaraft cluster [--nodes 3] [--port 7001] [--http-port 8001] [--data ./data]
                       (--port 0 / --http-port 0: free ports, printed per node)
                       [--storage KIND] [--election-ms N] [--heartbeat-ms N]
                       [--log-level LEVEL] [--secret-file FILE] [--no-restart] SCRIPT.lua
Runs N `luaraft run` processes on loopback (supervised by raft.cluster); a node
that dies is restarted on its data unless --no-restart; Ctrl-C stops them all.
]],
  ctl = [[
usage: luaraft ctl [--http ADDR] COMMAND   (ADDR default $LUARAFT_HTTP or 127.0.0.1:8001)
  status | members | propose DATA | read QUERY [--consistency C] |
  add ID ADDR [--learner] [--force] | promote ID [--force] | remove ID [--force] |
  transfer ID | snapshot | metrics | kill-leader [--signal KILL|STOP|TERM]
DATA and QUERY are JSON (sent as application/json) or any other string.
ADDR is HOST:PORT with a port of 1-65535. --force skips the leader's checks
that refuse a change leaving fewer reachable voters than a quorum (and, for
promote, a learner that is not caught up).
kill-leader asks the nodes of --http (a comma-separated list, e.g.
127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003) for their status, picks the
leader a majority of the answers follow in the highest term, and sends the
signal to that node's pid (from /v1/status) after checking that the pid is a
luaraft process on this machine; it prints what it did.
]],
  bench = [[
usage: luaraft bench [--http ADDR ...] [--clients 64] [--requests N] [--size 100]
                     [--progress SECONDS] [--breakdown] [--metrics ADDR ...]
Proposes N kv `set` commands of SIZE-byte values from CLIENTS concurrent
keep-alive connections and prints committed writes/s and p50/p99 latency.
Every SECONDS (default 2; 0: never) a progress line goes to stderr: done/N,
rate, ETA, errors so far.
--breakdown also prints where a write's time went during the run: the
per-stage histograms of /metrics (luaraft_stage_seconds, docs/metrics.md)
read before and after it from the --metrics nodes (default: the --http
ones; name the leader and a follower to see both sides), and what remains
of the clients' mean latency (HTTP parse, propose, event delivery, reply).
]],
}

local function die(cmd, msg)
  io.stderr:write("luaraft " .. cmd .. ": " .. msg .. "\n")
  return 2
end

-- Parses `--name value`, `--name=value` and flags after spec:
-- spec[name] = { key, kind = "int" | "string" | "flag" | "list", env = NAME }.
-- -> opts, positional | nil, message
local function parse(args, spec)
  local opts, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      for j = i + 1, #args do pos[#pos + 1] = args[j] end
      break
    end
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if name then
      local s = spec[name]
      if not s then
        local names = {}
        for n in pairs(spec) do names[#names + 1] = n end
        table.sort(names)
        local near = require("raft.options").suggest(name, names)
        return nil, "unknown flag --" .. name .. (near and (" (did you mean --" .. near .. "?)") or "")
      end
      local v = inline
      if s.kind == "flag" then
        if v ~= nil then return nil, "--" .. name .. " takes no value" end
        v = true
      elseif v == nil then
        i = i + 1
        v = args[i]
        if v == nil then return nil, "--" .. name .. " needs a value" end
      end
      if s.kind == "int" then
        local n = math.tointeger(tonumber(v))
        if not n or n < 0 then return nil, "--" .. name .. " must be a non-negative integer, not '" .. tostring(v) .. "'" end
        v = n
      end
      if s.kind == "list" then
        opts[s.key] = opts[s.key] or {}
        table.insert(opts[s.key], v)
      else
        opts[s.key] = v
      end
    elseif a:match("^%-") and a ~= "-" then
      return nil, "unknown flag " .. a
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  for name, s in pairs(spec) do
    if opts[s.key] == nil and s.env then
      local v = os.getenv(s.env)
      if v and v ~= "" then
        if s.kind == "flag" then
          opts[s.key] = v ~= "0" and v ~= "false" and v ~= "no"
        elseif s.kind == "int" then
          local n = math.tointeger(tonumber(v))
          if not n or n < 0 then return nil, s.env .. " must be a non-negative integer (for --" .. name .. ")" end
          opts[s.key] = n
        else
          opts[s.key] = v
        end
      end
    end
  end
  return opts, pos
end

-- the one address check (raft.options): host non-empty, port 1-65535
local function valid_addr(a)
  return require("raft.options").address(a) ~= nil
end

-- "1=127.0.0.1:7001,2=..." -> { [1] = "127.0.0.1:7001", ... }
local function parse_peers(s)
  local peers, n = {}, 0
  for item in s:gmatch("[^,]+") do
    local id, addr = item:match("^%s*(%d+)=(%S+)%s*$")
    id = math.tointeger(tonumber(id))
    if not id or id <= 0 then return nil, "bad peer '" .. item .. "' (want ID=HOST:PORT)" end
    local ok, why = require("raft.options").address(addr)
    if not ok then return nil, why .. " for peer " .. id end
    if peers[id] then return nil, "peer " .. id .. " listed twice" end
    peers[id] = addr
    n = n + 1
  end
  if n == 0 then return nil, "--peers is empty" end
  return peers
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("a")
  f:close()
  return s
end

-- Loads the script the way the node will (in the sandbox, its top level on
-- the instruction budget and memory limit) and checks it returns a state
-- machine, before the node writes anything. -> true | nil, message
local function check_script(path, guards)
  local f, err = io.open(path, "r")
  if not f then return nil, "cannot read " .. path .. ": " .. tostring(err):gsub("^[^:]*: ", "") end
  f:close()
  local ok, cerr = require("raft.core").sm_check(path, guards)
  if not ok then return nil, path .. ": " .. tostring(cerr) end
  return true
end

local RUN_SPEC = {
  id = { key = "id", kind = "int", env = "LUARAFT_ID" },
  peers = { key = "peers", kind = "string", env = "LUARAFT_PEERS" },
  ["http-peers"] = { key = "http_peers", kind = "string", env = "LUARAFT_HTTP_PEERS" },
  http = { key = "http", kind = "string", env = "LUARAFT_HTTP" },
  data = { key = "data", kind = "string", env = "LUARAFT_DATA" },
  storage = { key = "storage", kind = "string", env = "LUARAFT_STORAGE" },
  ["election-ms"] = { key = "election_ms", kind = "int", env = "LUARAFT_ELECTION_MS" },
  ["heartbeat-ms"] = { key = "heartbeat_ms", kind = "int", env = "LUARAFT_HEARTBEAT_MS" },
  ["secret-file"] = { key = "secret_file", kind = "string", env = "LUARAFT_SECRET_FILE" },
  ["cluster-name"] = { key = "cluster_name", kind = "string", env = "LUARAFT_CLUSTER_NAME" },
  ["tls-cert"] = { key = "tls_cert", kind = "string", env = "LUARAFT_TLS_CERT" },
  ["tls-key"] = { key = "tls_key", kind = "string", env = "LUARAFT_TLS_KEY" },
  ["tls-ca"] = { key = "tls_ca", kind = "string", env = "LUARAFT_TLS_CA" },
  join = { key = "join", kind = "flag", env = "LUARAFT_JOIN" },
  ["log-level"] = { key = "log_level", kind = "string", env = "LUARAFT_LOG_LEVEL" },
  ["snapshot-entries"] = { key = "snapshot_entries", kind = "int", env = "LUARAFT_SNAPSHOT_ENTRIES" },
  ["allow-faults"] = { key = "allow_faults", kind = "flag", env = "LUARAFT_ALLOW_FAULTS" },
  ["no-pre-vote"] = { key = "no_pre_vote", kind = "flag" },
  ["no-check-quorum"] = { key = "no_check_quorum", kind = "flag" },
  ["max-body"] = { key = "max_body", kind = "int", env = "LUARAFT_MAX_BODY" },
  ["max-result-bytes"] = { key = "max_result_bytes", kind = "int", env = "LUARAFT_MAX_RESULT_BYTES" },
  ["http-token-file"] = { key = "http_token_file", kind = "string", env = "LUARAFT_HTTP_TOKEN_FILE" },
  ["http-admin-token-file"] = { key = "http_admin_token_file", kind = "string", env = "LUARAFT_HTTP_ADMIN_TOKEN_FILE" },
  ["admin-token-file"] = { key = "http_admin_token_file", kind = "string" }, -- API.md's name
  ["http-open"] = { key = "http_open", kind = "string", env = "LUARAFT_HTTP_OPEN" },
  ["http-client-certs"] = { key = "http_client_certs", kind = "flag", env = "LUARAFT_HTTP_CLIENT_CERTS" },
  ["http-plain"] = { key = "http_plain", kind = "flag", env = "LUARAFT_HTTP_PLAIN" },
  ["http-max-conns"] = { key = "http_max_conns", kind = "int", env = "LUARAFT_HTTP_MAX_CONNS" },
  ["http-header-timeout-ms"] = { key = "http_header_timeout_ms", kind = "int", env = "LUARAFT_HTTP_HEADER_TIMEOUT_MS" },
  ["http-body-timeout-ms"] = { key = "http_body_timeout_ms", kind = "int", env = "LUARAFT_HTTP_BODY_TIMEOUT_MS" },
  ["http-idle-timeout-ms"] = { key = "http_idle_timeout_ms", kind = "int", env = "LUARAFT_HTTP_IDLE_TIMEOUT_MS" },
  ["apply-budget"] = { key = "apply_budget", kind = "int", env = "LUARAFT_APPLY_BUDGET" },
  ["memory-max"] = { key = "memory_max", kind = "int", env = "LUARAFT_MEMORY_MAX" },
  ["digest-entries"] = { key = "digest_entries", kind = "int", env = "LUARAFT_DIGEST_ENTRIES" },
  help = { key = "help", kind = "flag" },
}

-- A token file: one token per line; blank lines and # comments are skipped.
-- -> { tokens } | nil, message
local function read_tokens(flag, path)
  local text, err = read_file(path)
  if not text then return nil, "cannot read --" .. flag .. ": " .. tostring(err) end
  local list = {}
  for line in text:gmatch("[^\r\n]+") do
    local t = line:match("^%s*(.-)%s*$")
    if t ~= "" and not t:match("^#") then
      if not t:match("^[%w%-%._~%+/]+=*$") then
        return nil, "--" .. flag .. " " .. path .. ": a token is letters, digits and -._~+/ (line: " .. #list + 1 .. ")"
      end
      if #t < 16 then return nil, "--" .. flag .. " " .. path .. ": tokens must be at least 16 characters" end
      list[#list + 1] = t
    end
  end
  if #list == 0 then return nil, "--" .. flag .. " " .. path .. " holds no token" end
  return list
end

-- The HTTP flags -> serve() options (lua/raft/http_api.lua). -> opts | nil, message
local function http_options(o)
  local h = { max_body = o.max_body, max_conns = o.http_max_conns,
    header_timeout_ms = o.http_header_timeout_ms, body_timeout_ms = o.http_body_timeout_ms,
    idle_timeout_ms = o.http_idle_timeout_ms, tls_cert = o.tls_cert, tls_key = o.tls_key,
    tls_ca = o.tls_ca, tls_client_certs = o.http_client_certs or nil }
  if o.http_plain then -- peers keep TLS; the API is served in clear (loopback, or a TLS proxy)
    if o.http_client_certs then return nil, "--http-plain and --http-client-certs exclude each other" end
    h.tls_cert, h.tls_key, h.tls_ca = nil, nil, nil
  end
  for _, k in ipairs { "max_body", "max_conns", "header_timeout_ms", "body_timeout_ms", "idle_timeout_ms" } do
    if h[k] == 0 then
      return nil, "--" .. (k == "max_body" and "max-body" or "http-" .. k:gsub("_", "-")) .. " must be positive"
    end
  end
  if (o.tls_cert == nil) ~= (o.tls_key == nil) then return nil, "--tls-cert and --tls-key go together" end
  if o.http_client_certs and not (o.tls_ca and o.tls_cert) then
    return nil, "--http-client-certs needs --tls-cert, --tls-key and --tls-ca"
  end
  for _, k in ipairs { "tls_cert", "tls_key", "tls_ca" } do
    if o[k] then
      local f, err = io.open(o[k], "rb")
      if not f then return nil, "cannot read --" .. k:gsub("_", "-") .. ": " .. tostring(err) end
      f:close()
    end
  end
  local auth = {}
  if o.http_token_file then
    local list, err = read_tokens("http-token-file", o.http_token_file)
    if not list then return nil, err end
    auth.client = list
  end
  if o.http_admin_token_file then
    local list, err = read_tokens("http-admin-token-file", o.http_admin_token_file)
    if not list then return nil, err end
    auth.admin = list
  end
  if o.http_open then
    auth.open = {}
    if o.http_open ~= "none" then
      for p in o.http_open:gmatch("[^,%s]+") do
        if not p:match("^/") then return nil, "--http-open takes paths such as /metrics, not '" .. p .. "'" end
        auth.open[p] = true
      end
    end
  end
  if auth.client or auth.admin then h.auth = auth end
  return h
end

-- Flags -> raft.node options. -> opts | nil, message
local function run_options(o, pos)
  if #pos ~= 1 then return nil, #pos == 0 and "SCRIPT.lua is missing" or "one SCRIPT.lua expected, got " .. #pos .. " arguments" end
  if not o.id or o.id <= 0 then return nil, "--id is required (a positive integer)" end
  local peers
  if o.peers then
    local perr
    peers, perr = parse_peers(o.peers)
    if not peers then return nil, perr end
    if not peers[o.id] then return nil, "--peers must include this node (" .. o.id .. "=HOST:PORT)" end
  else
    -- A node that restarts from its data directory finds its members (and
    -- their addresses) in the configuration it stored.
    local dir = o.data or ("data/" .. o.id)
    if o.join then return nil, "--join needs --peers with this node's own address (" .. o.id .. "=HOST:PORT)" end
    local f = (o.storage or D("storage")) == "sqlite" and io.open(dir .. "/raft.db", "rb")
    if f then f:close() end
    if not f then
      return nil, "--peers is required (ID=HOST:PORT,..., including this node) unless " .. dir ..
        " holds this node's data from an earlier run"
    end
  end
  if o.http and not valid_addr(o.http) then return nil, "--http must be HOST:PORT, not '" .. o.http .. "'" end
  local storage = o.storage or D("storage")
  if storage ~= "sqlite" and storage ~= "memory" then return nil, "--storage must be sqlite or memory, not '" .. storage .. "'" end
  local level = o.log_level or D("log_level")
  if not ({ error = 1, warn = 1, info = 1, debug = 1 })[level] then
    return nil, "--log-level must be error, warn, info or debug, not '" .. level .. "'"
  end
  local election, heartbeat = o.election_ms or D("election_ms"), o.heartbeat_ms or D("heartbeat_ms")
  if heartbeat <= 0 then return nil, "--heartbeat-ms must be positive" end
  if election <= heartbeat then return nil, "--election-ms must be greater than --heartbeat-ms" end
  local secret
  if o.secret_file then
    local s, err = read_file(o.secret_file)
    if not s then return nil, "cannot read --secret-file: " .. tostring(err) end
    secret = s:gsub("%s+$", "")
    if #secret == 0 then return nil, "--secret-file " .. o.secret_file .. " is empty" end
  end
  for _, k in ipairs { "apply_budget", "memory_max", "digest_entries" } do
    if o[k] and o[k] < 0 then return nil, "--" .. k:gsub("_", "-") .. " must not be negative" end
  end
  -- --tls-cert/--tls-key serve HTTPS; with --tls-ca as well, peers talk
  -- mutual TLS too (each verifies the other against that CA)
  if o.tls_ca and not (o.tls_cert and o.tls_key) then
    return nil, "peer TLS needs --tls-cert, --tls-key and --tls-ca together"
  end
  if o.cluster_name == "" then return nil, "--cluster-name must not be empty" end
  local http_opts, herr = http_options(o)
  if not http_opts then return nil, herr end
  local http_peers
  if o.http_peers then
    local hp, perr = parse_peers(o.http_peers)
    if not hp then return nil, "--http-peers: " .. perr end
    http_peers = hp
  end
  -- 0 turns the budget and the digests off (raft.node takes false)
  local function off0(v) if v == 0 then return false end return v end
  -- the check runs on a budget even when the node's is off: a top level
  -- that never returns must not hang the start
  local ok, serr = check_script(pos[1], { apply_budget = o.apply_budget ~= 0 and o.apply_budget or nil,
                                          memory_max = o.memory_max })
  if not ok then return nil, serr end
  return {
    apply_budget = off0(o.apply_budget), memory_max = o.memory_max,
    digest_entries = off0(o.digest_entries), max_result_bytes = off0(o.max_result_bytes),
    id = o.id, peers = peers, join = o.join or false, http = o.http,
    storage = storage, data_dir = o.data or ("data/" .. o.id),
    election_ms = election, heartbeat_ms = heartbeat,
    pre_vote = not o.no_pre_vote, check_quorum = not o.no_check_quorum,
    snapshot_entries = o.snapshot_entries or D("snapshot_entries"), secret = secret,
    cluster_name = o.cluster_name, tls_ca = o.tls_ca,
    tls_cert = o.tls_ca and o.tls_cert, tls_key = o.tls_ca and o.tls_key, -- peers: with a CA only
    allow_faults = o.allow_faults or false, log_level = level,
    state_machine = pos[1], http_opts = http_opts, http_peers = http_peers,
  }
end

function cli.run(args)
  local o, pos = parse(args, RUN_SPEC)
  if not o then return die("run", pos .. " (try luaraft run --help)") end
  if o.help then io.stdout:write(USAGE.run) return 0 end
  local opts, err = run_options(o, pos)
  if not opts then return die("run", err) end
  local core = require "raft.core"
  local node = require("raft.node").new(opts)
  local ok, serr = node:start()
  if not ok then
    io.stderr:write("luaraft run: " .. tostring(serr.message) .. "\n")
    return 1
  end
  if opts.http then core.log("info", opts.log_level, opts.id, "HTTP API on " .. opts.http) end
  local signals, code = {}, 0
  node.on_failure = function(msg)
    io.stderr:write("luaraft run: node " .. opts.id .. " stopped: " .. tostring(msg) .. "\n")
    code = 1
    for _, s in ipairs(signals) do s:close() end
    core.loop_stop()
  end
  local function stop(name)
    core.log("info", opts.log_level, opts.id, "got " .. name .. ", stopping")
    node:stop()
    for _, s in ipairs(signals) do s:close() end
    core.loop_stop()
  end
  signals[1] = core.signal("SIGTERM", stop)
  signals[2] = core.signal("SIGINT", stop)
  local loop = require "raft.loop"
  loop.run()
  -- let the closing handles finish (bounded: a write in flight completes)
  for _ = 1, 100 do
    if not core.loop_run_once(true) then break end
  end
  return code
end

-- ---- cluster ----------------------------------------------------------------
local CLUSTER_SPEC = {
  nodes = { key = "nodes", kind = "int" }, port = { key = "port", kind = "int" },
  ["http-port"] = { key = "http_port", kind = "int" }, data = { key = "data", kind = "string" },
  storage = { key = "storage", kind = "string" },
  ["election-ms"] = { key = "election_ms", kind = "int" },
  ["heartbeat-ms"] = { key = "heartbeat_ms", kind = "int" },
  ["log-level"] = { key = "log_level", kind = "string" },
  ["secret-file"] = { key = "secret_file", kind = "string" },
  ["snapshot-entries"] = { key = "snapshot_entries", kind = "int" },
  ["no-restart"] = { key = "no_restart", kind = "flag" },
  help = { key = "help", kind = "flag" },
}

function cli.cluster(args)
  local o, pos = parse(args, CLUSTER_SPEC)
  if not o then return die("cluster", pos .. " (try luaraft cluster --help)") end
  if o.help then io.stdout:write(USAGE.cluster) return 0 end
  if #pos ~= 1 then return die("cluster", "one SCRIPT.lua expected") end
  local ok, serr = check_script(pos[1])
  if not ok then return die("cluster", serr) end
  local n = o.nodes or 3
  if n < 1 or n > 64 then return die("cluster", "--nodes must be 1 to 64") end
  local port, http_port, data = o.port or 7001, o.http_port or 8001, o.data or "./data"
  local uv = require "luv"
  -- The supervision is raft.cluster's: the same start, restart and stop as
  -- scripts get, with the nodes' output prefixed by their id.
  local extra = {}
  for _, k in ipairs { "storage", "secret_file" } do
    if o[k] then
      extra[#extra + 1] = "--" .. k:gsub("_", "-")
      extra[#extra + 1] = tostring(o[k])
    end
  end
  local function say(fmt, ...) io.stderr:write("[cluster] " .. fmt:format(...) .. "\n") end
  local restart = not o.no_restart
  local c
  ok, serr = pcall(function()
    c = require("raft.cluster").new {
      nodes = n, state_machine = pos[1], binary = uv.exepath(), dir = data,
      -- 0: free ports, each found by binding port 0 (printed below)
      port = port ~= 0 and port or nil, http_port = http_port ~= 0 and http_port or nil,
      faults = false, args = extra,
      election_ms = o.election_ms, heartbeat_ms = o.heartbeat_ms,
      snapshot_entries = o.snapshot_entries, log_level = o.log_level,
      output = function(id, line, is_err)
        local out = is_err and io.stderr or io.stdout
        out:write(("[n%d] %s\n"):format(id, line))
        out:flush()
      end,
      restart_dead = restart,
      on_exit = function(id, code, signal, err)
        if err then
          say("node %d could not be restarted: %s", id, tostring(err))
        else
          say("node %d exited (code %d, signal %d)%s", id, code or -1, signal or 0,
            restart and "; restarting it" or " (--no-restart: left down)")
        end
      end,
      on_restart = function(id, pid) say("node %d restarted: pid %d", id, pid) end,
    }
  end)
  if not ok then
    io.stderr:write("luaraft cluster: " .. tostring(serr) .. "\n")
    return 1
  end
  for _, id in ipairs(c:ids()) do
    say("node %d: pid %d, peer %s, http %s, data %s/%d", id, c:pid(id), c:address(id),
      c:http_address(id), data, id)
  end
  local sigs, stopping = {}, false
  for _, name in ipairs { "sigint", "sigterm" } do
    local sg = uv.new_signal()
    sg:start(name, function()
      if stopping then return end
      stopping = true
      uv.stop()
    end)
    sigs[#sigs + 1] = sg
  end
  uv.run("default")
  local running = 0
  for _, id in ipairs(c:ids()) do
    if c.procs[id] and not c.procs[id].exited then running = running + 1 end
  end
  say("stopping %d nodes", running)
  for _, sg in ipairs(sigs) do sg:close() end
  c:close(5) -- SIGTERM, then SIGKILL for a node that does not stop in 5 s
  return 0
end

-- ---- ctl ----------------------------------------------------------------------
local function http_target(addr)
  local host, port = tostring(addr):match("^(.+):(%d+)$")
  if not host then return nil end
  if host == "localhost" then host = "127.0.0.1" end
  return host, tonumber(port)
end

local function content_type_of(data)
  local cjson = require "cjson.safe"
  if data:match("^%s*[%[{\"%d%-tfn]") and cjson.decode(data) ~= nil then return "application/json" end
  return "text/plain"
end

local CTL_SPEC = {
  http = { key = "http", kind = "string", env = "LUARAFT_HTTP" },
  learner = { key = "learner", kind = "flag" },
  force = { key = "force", kind = "flag" },
  consistency = { key = "consistency", kind = "string" },
  timeout = { key = "timeout", kind = "int" },
  ["client-id"] = { key = "client", kind = "string" },
  seq = { key = "seq", kind = "int" },
  signal = { key = "signal", kind = "string" },
  help = { key = "help", kind = "flag" },
}

-- `luaraft ctl kill-leader`: find the leader among the --http nodes and
-- signal its process. Only a pid that /v1/status reported and that is a
-- luaraft process here is signalled, so it cannot hit another program.
local function ctl_kill_leader(o)
  local uv = require "luv"
  local cjson = require "cjson.safe"
  local sig = (o.signal or "KILL"):upper():gsub("^SIG", "")
  if sig ~= "KILL" and sig ~= "STOP" and sig ~= "TERM" then
    return die("ctl", "--signal must be KILL, STOP or TERM")
  end
  local statuses = {}
  for addr in tostring(o.http or "127.0.0.1:8001"):gmatch("[^,%s]+") do
    local host, port = http_target(addr)
    if not host then return die("ctl", "--http must be HOST:PORT[,HOST:PORT...]") end
    local client = require("raft.http_client").new(host, port)
    local status, body = client:request("GET", "/v1/status", nil, nil, o.timeout or 3)
    client:close()
    local st = status == 200 and cjson.decode(body)
    if type(st) == "table" then
      st.http = addr
      statuses[#statuses + 1] = st
    else
      io.stderr:write(("luaraft ctl: %s: %s\n"):format(addr, tostring(body)))
    end
  end
  uv.run("nowait")
  local best
  for _, st in ipairs(statuses) do
    if st.role == "leader" and (not best or st.term > best.term) then
      local follow = 0
      for _, other in ipairs(statuses) do
        if other.term == st.term and other.leader == st.id then follow = follow + 1 end
      end
      if follow > #statuses // 2 then best = st end
    end
  end
  if not best then
    io.stderr:write("luaraft ctl: kill-leader: no node of --http is a leader that a majority of " ..
      "the answering nodes follow (list every node with --http A,B,C)\n")
    return 1
  end
  local pid = math.tointeger(best.pid)
  if not pid then
    io.stderr:write("luaraft ctl: kill-leader: node " .. tostring(best.id) .. " reports no pid\n")
    return 1
  end
  local f = io.open("/proc/" .. pid .. "/cmdline")
  local cmdline = f and f:read("a") or ""
  if f then f:close() end
  if not cmdline:find("luaraft", 1, true) or not cmdline:find("run", 1, true) then
    io.stderr:write(("luaraft ctl: kill-leader: pid %d (node %s at %s) is not a luaraft run " ..
      "process on this machine; not signalled\n"):format(pid, tostring(best.id), best.http))
    return 1
  end
  local ok, err = uv.kill(pid, "sig" .. sig:lower())
  if ok ~= 0 and ok ~= true then
    io.stderr:write(("luaraft ctl: kill-leader: kill %d: %s\n"):format(pid, tostring(err or ok)))
    return 1
  end
  io.stdout:write(("sent SIG%s to node %d (pid %d, %s), the leader of term %d\n"):format(
    sig, best.id, pid, best.http, best.term))
  return 0
end

-- command -> method, path, body, headers | nil, message
local function ctl_request(o, pos)
  local cmd = pos[1]
  local id = math.tointeger(tonumber(pos[2] or ""))
  local function need(n, what)
    if #pos ~= n + 1 then return "'" .. cmd .. "' needs " .. what end
  end
  local e
  if cmd == "status" then return "GET", "/v1/status"
  elseif cmd == "members" then return "GET", "/v1/members"
  elseif cmd == "metrics" then return "GET", "/metrics"
  elseif cmd == "snapshot" then return "POST", "/v1/snapshot", ""
  elseif cmd == "propose" or cmd == "read" then
    e = need(1, cmd == "propose" and "DATA" or "QUERY")
    if e then return nil, e end
    local headers = { ["Content-Type"] = content_type_of(pos[2]) }
    if o.client then headers["Raft-Client-Id"], headers["Raft-Seq"] = o.client, o.seq or 1 end
    local path = "/v1/" .. cmd
    if cmd == "read" and o.consistency then path = path .. "?consistency=" .. o.consistency end
    return "POST", path, pos[2], headers
  elseif cmd == "add" then
    e = need(2, "ID ADDR")
    if e then return nil, e end
    if not id or id <= 0 then return nil, "'add' needs a node id and HOST:PORT" end
    local ok, why = require("raft.options").address(pos[3])
    if not ok then return nil, "'add': " .. why end
    local cjson = require "cjson"
    return "POST", "/v1/members", cjson.encode { id = id, address = pos[3], learner = o.learner or false,
      force = o.force or false }, { ["Content-Type"] = "application/json" }
  elseif cmd == "promote" or cmd == "remove" or cmd == "transfer" then
    e = need(1, "ID")
    if e then return nil, e end
    if not id then return nil, "'" .. cmd .. "' needs a node id" end
    local force = o.force and '{"force":true}' or nil
    local jh = { ["Content-Type"] = "application/json" }
    if cmd == "promote" then return "POST", "/v1/members/" .. id .. "/promote", force or "", force and jh end
    if cmd == "remove" then return "DELETE", "/v1/members/" .. id, force, force and jh end
    return "POST", "/v1/leader/transfer", '{"to":' .. id .. "}", { ["Content-Type"] = "application/json" }
  end
  return nil, cmd and ("unknown command '" .. cmd .. "'") or "a command is needed"
end

function cli.ctl(args)
  local o, pos = parse(args, CTL_SPEC)
  if not o then return die("ctl", pos .. " (try luaraft ctl --help)") end
  if o.help then io.stdout:write(USAGE.ctl) return 0 end
  if pos[1] == "kill-leader" then
    if #pos ~= 1 then return die("ctl", "'kill-leader' takes no arguments") end
    return ctl_kill_leader(o)
  end
  local method, path, body, headers = ctl_request(o, pos)
  if not method then return die("ctl", path .. " (try luaraft ctl --help)") end
  local host, port = http_target(o.http or "127.0.0.1:8001")
  if not host then return die("ctl", "--http must be HOST:PORT") end
  local status, rbody, rheaders
  -- A follower answers membership and transfer calls with a redirect to the
  -- leader (307, same method and body): follow it, a few hops at most.
  for _ = 1, 4 do
    local client = require("raft.http_client").new(host, port)
    status, rbody, rheaders = client:request(method, path, body, headers, o.timeout or 10)
    client:close()
    require("luv").run("nowait")
    local loc = status == 307 and rheaders and rheaders.location
    local lhost, lport, lpath = tostring(loc):match("^http://([^/:]+):(%d+)(/.*)$")
    if not lhost then break end
    host, port, path = lhost, tonumber(lport), lpath
  end
  if not status then
    io.stderr:write(("luaraft ctl: %s:%d: %s\n"):format(host, port, tostring(rbody)))
    return 1
  end
  local out = status < 300 and io.stdout or io.stderr
  out:write(rbody)
  if rbody:sub(-1) ~= "\n" then out:write("\n") end
  return status < 300 and 0 or 1
end

-- ---- bench ----------------------------------------------------------------------
-- lua/raft/cli_bench.lua; it uses this file's flag parser and messages
function cli.bench(args)
  return require("raft.cli_bench").run(args, { parse = parse, die = die, usage = USAGE.bench,
                                               http_target = http_target })
end

local TRACE_USAGE = [[
usage: luaraft trace INPUT [-o OUT.html] [--check MODEL] [--title TITLE]
Draws INPUT, a luaraft-trace JSON file (sim:export_trace(path), or a
raft.trace.record(c) recorder's rec:export(path)) or a bare history (a JSON
list of ops), as one self-contained HTML page: a lane per node coloured by
role, leader changes, crashes, pauses, partitions, membership, client
operations by outcome and the checker's verdict. OUT defaults to INPUT with
.html. --check MODEL (kv) checks a bare history for linearizability.
]]

function cli.trace(args)
  local list = {}
  for i, a in ipairs(args) do list[i] = a == "-o" and "--output" or a end
  local o, pos = parse(list, {
    output = { key = "output", kind = "string" }, check = { key = "check", kind = "string" },
    title = { key = "title", kind = "string" }, help = { key = "help", kind = "flag" },
  })
  if not o then return die("trace", pos .. " (try luaraft trace --help)") end
  if o.help then io.stdout:write(TRACE_USAGE) return 0 end
  if #pos ~= 1 then return die("trace", "needs one INPUT file (try luaraft trace --help)") end
  local trace = require "raft.trace"
  local t, err = trace.read(pos[1], { model = o.check })
  if not t then return die("trace", err) end
  if o.title then t.title = o.title end
  local out = o.output or (pos[1]:gsub("%.json$", "") .. ".html")
  local f, ferr = io.open(out, "w")
  if not f then return die("trace", "cannot write " .. out .. ": " .. tostring(ferr)) end
  f:write(trace.html(t))
  f:close()
  io.stdout:write(("wrote %s (%d nodes, %d events, %d ops)\n"):format(out, #t.nodes,
    #(t.events or {}), #(t.ops or {})))
  return 0
end

function cli.main(command, ...)
  local args = { ... }
  local fn = ({ run = cli.run, cluster = cli.cluster, ctl = cli.ctl, bench = cli.bench,
                trace = cli.trace })[command]
  if not fn then
    io.stderr:write("luaraft: unknown command '" .. tostring(command) .. "'\n")
    return 2
  end
  return fn(args)
end

cli._parse = parse
cli._parse_peers = parse_peers
return cli
