-- raft.options: every option of raft.node, raft.sim, raft.cluster and
-- `luaraft run`, with its default and its check, defined once.
--
-- Each entry: the option's name (the Lua key; the CLI flag is the same with
-- dashes), where it applies (node, sim, cluster, run), its type, its default
-- and a check that returns an error sentence for a bad value. `resolve`
-- fills defaults, checks every value and refuses unknown keys by name, with
-- the closest known one ("unknown option electon_ms (did you mean
-- election_ms?)"), so a typo never silently changes behaviour.
local options = {}

local N, S, C, R = "node", "sim", "cluster", "run"

-- Integers may be written as floats with no fraction (1e6): resolve keeps
-- them as integers.
local function int(v) return math.tointeger(v) end
local function positive_int(v)
  v = int(v)
  if not v or v <= 0 then return "must be a positive integer" end
end
local function nonneg_int(v)
  v = int(v)
  if not v or v < 0 then return "must be a non-negative integer" end
end
local function boolean(v)
  if type(v) ~= "boolean" then return "must be true or false" end
end
local function one_of(...)
  local set, list = {}, { ... }
  for _, v in ipairs(list) do set[v] = true end
  return function(v)
    if not set[v] then return "must be " .. table.concat(list, ", ", 1, #list - 1) .. " or " .. list[#list] end
  end
end
-- A positive integer, or false to turn the feature off (the CLI's 0).
local function int_or_false(min)
  return function(v)
    if v == false then return nil end
    v = int(v)
    if not v or v < min then
      return ("must be an integer of at least %d, or false"):format(min)
    end
  end
end
local function range(v)
  if type(v) ~= "table" or math.type(v[1]) ~= "integer" or math.type(v[2]) ~= "integer" or v[1] < 0 or v[2] < v[1] then
    return "must be { lo, hi } with 0 <= lo <= hi (milliseconds)"
  end
end

-- name = { applies, default, check, doc }
local SPEC = {
  election_ms = { { N, S, C, R }, 300, positive_int,
    "election timeout base: each election timeout is random in [t, 2t)" },
  heartbeat_ms = { { N, S, C, R }, 50, positive_int, "leader heartbeat interval" },
  pre_vote = { { N, S, C, R }, true, boolean, "pre-vote before a real election (thesis 9.6)" },
  check_quorum = { { N, S, C, R }, true, boolean,
    "a leader steps down without a quorum's contact for an election timeout; enables lease reads" },
  snapshot_entries = { { N, S, C, R }, 10000, nonneg_int,
    "take a snapshot after this many applied entries (0: never)" },
  apply_budget = { { N, S, C, R }, 100000000, int_or_false(1),
    "Lua instructions one apply may run (false: no limit)" },
  memory_max = { { N, S, C, R }, 1 << 30, function(v)
    v = int(v)
    if not v or v < 65536 then return "must be at least 65536 bytes" end
  end, "bytes a state machine's Lua state may hold" },
  digest_entries = { { N, S, C, R }, 1000, int_or_false(1),
    "entries between digest() checkpoints (false: never)" },
  log_level = { { N, C, R }, "info", one_of("error", "warn", "info", "debug"), "log threshold" },
  storage = { { N, R }, "sqlite", one_of("sqlite", "memory"), "where the log and snapshots live" },
  -- simulator only
  seed = { { S }, 1, function(v) if not int(v) then return "must be an integer" end end,
    "the simulation's only source of randomness" },
  disk_ms = { { S }, { 0, 2 }, range, "virtual disk latency range" },
  delay = { { S }, { 1, 5 }, range, "virtual network delay range" },
  checks = { { S }, true, boolean, "run the invariant checks after every step" },
}
options.SPEC = SPEC

-- The keys each kind accepts besides SPEC's (identity, wiring and the
-- state machine; checked where they are used).
local OTHER = {
  node = { "id", "peers", "join", "listen", "data_dir", "secret", "allow_faults", "state_machine",
    "http", "http_opts", "http_peers", "cluster_name", "tls_cert", "tls_key", "tls_ca",
    "max_result_bytes" },
  sim = { "nodes", "state_machine", "trace", "max_entry_bytes", "max_inflight_msgs",
    "max_append_bytes", "snapshot_chunk_bytes", "snapshot_trailing", "max_sessions",
    "node_memory_max" },
  cluster = { "nodes", "state_machine", "binary", "dir", "secret", "args", "port", "http_port",
    "faults", "output", "restart_dead", "on_exit", "on_restart" },
}

-- Damerau-Levenshtein distance (adjacent transpositions count as one edit).
local function distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

--- options.suggest(name, candidates) -> the closest candidate, or nil when
-- none is close (at most a third of the name's length in edits, at least 2).
function options.suggest(name, candidates)
  local best, best_d
  for _, c in ipairs(candidates) do
    local d = distance(name, c)
    if not best_d or d < best_d or (d == best_d and c < best) then best, best_d = c, d end
  end
  if best and best_d <= math.max(2, #name // 3) then return best end
end

--- options.unknown(name, candidates) -> "unknown option X (did you mean Y?)"
function options.unknown(name, candidates, what)
  local s = ("unknown %s %s"):format(what or "option", name)
  local near = options.suggest(name, candidates)
  if near then s = s .. (" (did you mean %s?)"):format(near) end
  return s
end

--- options.names(kind) -> sorted list of every key kind accepts
function options.names(kind)
  local out = {}
  for name, spec in pairs(SPEC) do
    for _, k in ipairs(spec[1]) do if k == kind then out[#out + 1] = name end end
  end
  for _, name in ipairs(OTHER[kind] or {}) do out[#out + 1] = name end
  table.sort(out)
  return out
end

local function applies(spec, kind)
  for _, k in ipairs(spec[1]) do if k == kind then return true end end
  return false
end

--- options.resolve(kind, given) -> a new table: given's keys, defaults for
-- the missing SPEC keys of kind, every SPEC value checked. Returns nil and a
-- sentence ("election_ms must be a positive integer", "unknown option
-- electon_ms (did you mean election_ms?)") on the first problem.
function options.resolve(kind, given)
  local names = options.names(kind)
  local known = {}
  for _, n in ipairs(names) do known[n] = true end
  local keys = {}
  for k in pairs(given) do
    if type(k) ~= "string" then return nil, "option keys must be strings, got " .. tostring(k) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if not known[k] then return nil, options.unknown(k, names) end
  end
  local out = {}
  for k, v in pairs(given) do out[k] = v end
  for name, spec in pairs(SPEC) do
    if applies(spec, kind) then
      if out[name] == nil then
        local d = spec[2]
        if type(d) == "table" then d = { table.unpack(d) } end
        out[name] = d
      end
      local why = spec[3](out[name])
      if why then return nil, name .. " " .. why end
      if math.type(out[name]) == "float" then out[name] = int(out[name]) end
    end
  end
  if out.election_ms <= out.heartbeat_ms then
    return nil, "election_ms must be greater than heartbeat_ms"
  end
  return out
end

--- options.check(kind, given, who) -> options.resolve(kind, given), or
-- raises "who: <sentence>" at the caller's caller (raft.node, raft.sim).
function options.check(kind, given, who)
  local out, why = options.resolve(kind, given)
  if not out then error(who .. ": " .. why, 3) end
  return out
end

--- options.default(name) -> the default of a SPEC option (a copy for tables)
function options.default(name)
  local spec = SPEC[name]
  if not spec then error("raft.options: no option " .. tostring(name), 2) end
  local d = spec[2]
  if type(d) == "table" then d = { table.unpack(d) } end
  return d
end

--- options.address(a) -> host, port | nil, message
-- The one check of a "host:port" peer address that raft.node, the HTTP API
-- and the CLI share (the C binding checks the same before the core sees
-- it): a non-empty host, then ':' and a port of 1-65535 in decimal digits.
-- IPv6 hosts are bracketed ("[::1]:7001").
function options.address(a)
  if type(a) ~= "string" then return nil, "address must be a \"host:port\" string" end
  local host, port = a:match("^(.*):(%d+)$")
  port = port and math.tointeger(tonumber(port))
  if not host or host == "" or not port or port < 1 or port > 65535 or #a > 255 then
    return nil, ("bad address '%s' (want HOST:PORT with a port of 1-65535)"):format(a)
  end
  return host, port
end

--- options.flag(name) -> "--election-ms"
function options.flag(name) return "--" .. name:gsub("_", "-") end

return options
