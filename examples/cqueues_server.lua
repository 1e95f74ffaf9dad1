-- A cqueues HTTP server with a Raft node inside (docs/loops.md).
--
--   luaraft examples/cqueues_server.lua --id 1 \
--     --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
--     [--http 127.0.0.1:0] [--data DIR]
--
-- The other members can be `luaraft run --id N ... examples/kv.lua` peers or
-- more copies of this server. The HTTP server is plain cqueues sockets
-- (Debian 12 packages lua-http for Lua 5.1-5.3 only); it serves:
--   GET /kv/KEY          linearizable read of KEY -> {"value": ...}
--   PUT /kv/KEY          body: the value; replicated set -> {"ok": true}
--   GET /status          the node's status table
--   GET /ticks           how often a cqueues timer fired (the controller
--                        keeps serving while raft calls wait)
-- It prints "http listening on HOST:PORT" once it accepts connections (port
-- 0 picks a free port). Every request runs in its own cqueues coroutine; its
-- raft calls suspend only that coroutine.
local raft = require "raft"
local cqueues = require "cqueues"
local socket = require "cqueues.socket"
local cjson = require "cjson"

local function usage(msg)
  io.stderr:write("cqueues_server: ", msg, "\n")
  os.exit(2)
end

local opts = { http = "127.0.0.1:0" }
do
  local i = 1
  while arg[i] do
    local flag, value = arg[i], arg[i + 1]
    if flag == "--id" then opts.id = tonumber(value)
    elseif flag == "--peers" then opts.peers = value
    elseif flag == "--http" then opts.http = value
    elseif flag == "--data" then opts.data = value
    else usage("unknown flag " .. flag) end
    if value == nil then usage(flag .. " needs a value") end
    i = i + 2
  end
end
if not opts.id then usage("--id is required") end
if not opts.peers then usage("--peers is required") end
local peers = {}
for id, addr in opts.peers:gmatch("(%d+)=([^,]+)") do peers[tonumber(id)] = addr end
if not peers[opts.id] then usage("--peers has no address for --id " .. opts.id) end

local cq = raft.use_cqueues(cqueues.new())

local node = raft.node {
  id = opts.id, peers = peers,
  state_machine = "examples/kv.lua",
  storage = opts.data and "sqlite" or "memory", data_dir = opts.data,
  log_level = "warn",
}
assert(node:start())

local ticks = 0
cq:wrap(function()
  while true do
    cqueues.sleep(0.1)
    ticks = ticks + 1
  end
end)

local reasons = { [200] = "OK", [400] = "Bad Request", [404] = "Not Found",
                  [405] = "Method Not Allowed", [503] = "Service Unavailable" }

local function reply(con, status, value)
  local body = cjson.encode(value) .. "\n"
  con:xwrite(("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    .. "Connection: close\r\n\r\n%s"):format(status, reasons[status] or "", #body, body), "n")
end

local function failure(con, err)
  reply(con, 503, { error = err and err.code or "error", message = tostring(err),
                    leader = err and err.leader })
end

local function handle(con)
  con:setmode("tl", "bn")
  con:settimeout(10)
  local line = con:read("*l")
  if not line then return end
  local method, path = line:match("^(%u+) (%S+) HTTP/1%.%d$")
  if not method then return reply(con, 400, { error = "bad_request" }) end
  local length = 0
  for header in con:lines("*h") do
    local name, value = header:match("^([^:]+):%s*(.-)%s*$")
    if name and name:lower() == "content-length" then length = tonumber(value) or 0 end
  end
  con:read("*l") -- the empty line that ends the headers
  local body = length > 0 and con:read(length) or ""
  local key = path:match("^/kv/([%w_%-%.]+)$")
  if key and method == "GET" then
    local value, err = node:read({ key = key })
    if err then return failure(con, err) end
    return reply(con, 200, { value = value == nil and cjson.null or value })
  elseif key and method == "PUT" then
    local ok, err = node:propose({ op = "set", key = key, value = body })
    if err then return failure(con, err) end
    return reply(con, 200, { ok = ok })
  elseif path == "/status" and method == "GET" then
    return reply(con, 200, node:status())
  elseif path == "/ticks" and method == "GET" then
    return reply(con, 200, { ticks = ticks })
  elseif key or path == "/status" or path == "/ticks" then
    return reply(con, 405, { error = "method_not_allowed" })
  end
  return reply(con, 404, { error = "not_found" })
end

local host, port = opts.http:match("^(.*):(%d+)$")
if not host then usage("--http must be HOST:PORT") end
local srv = socket.listen { host = host, port = tonumber(port), reuseaddr = true }
local ok, err = srv:listen()
if not ok then usage("cannot listen on " .. opts.http .. ": " .. tostring(err)) end
local _, bound_host, bound_port = srv:localname()
io.stdout:write(("http listening on %s:%d\n"):format(bound_host, bound_port))
io.stdout:flush()

cq:wrap(function()
  for con in srv:clients() do
    cq:wrap(function()
      local done, why = pcall(handle, con)
      if not done then io.stderr:write("cqueues_server: ", tostring(why), "\n") end
      con:close()
    end)
  end
end)

local looped, why = cq:loop()
if not looped then
  io.stderr:write("cqueues_server: ", tostring(why), "\n")
  os.exit(1)
end
