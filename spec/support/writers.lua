-- Concurrent writers for the real-process specs and benches: `workers`
-- coroutines, each with its own keep-alive HTTP connection, propose `total`
-- commands between them (a failed request is retried on a fresh connection,
-- up to `retries` times). Bounded: every request has a timeout.
local uv = require "luv"
local http_client = require "raft.http_client"
local cjson = require "cjson"

local writers = {}

-- writers.run { addr = "127.0.0.1:8001" | fn(i) -> addr, total = n, workers = 16,
--               command = fn(i) -> table, timeout = 10, retries = 5 }
-- -> acknowledged count, { error strings }
function writers.run(o)
  local addr_of = type(o.addr) == "function" and o.addr or function() return o.addr end
  local issued, acked, errs, active = 0, 0, {}, 0
  for _ = 1, o.workers or 16 do
    active = active + 1
    local function work()
      local clients = {}
      local function client(addr)
        if not clients[addr] then
          local host, port = addr:match("^(.*):(%d+)$")
          clients[addr] = http_client.new(host, port)
        end
        return clients[addr]
      end
      while issued < o.total do
        issued = issued + 1
        local body = cjson.encode(o.command(issued))
        for attempt = 0, o.retries or 5 do
          local addr = addr_of(issued, attempt)
          local c = client(addr)
          local status, rbody = c:request("POST", "/v1/propose", body,
            { ["Content-Type"] = "application/json" }, o.timeout or 10)
          if status == 200 then
            acked = acked + 1
            break
          end
          if not status then c:close() end
          if attempt == (o.retries or 5) then
            errs[#errs + 1] = tostring(status) .. " " .. tostring(rbody):sub(1, 200)
          else
            local t = uv.new_timer() -- back off a little before retrying
            local co = coroutine.running()
            t:start(100, 0, function() t:close() coroutine.resume(co) end)
            coroutine.yield()
          end
        end
      end
      for _, c in pairs(clients) do c:close() end
    end
    coroutine.wrap(function()
      local ok, err = pcall(work)
      if not ok then errs[#errs + 1] = "writer failed: " .. tostring(err) end
      active = active - 1
    end)()
  end
  while active > 0 do uv.run("once") end
  return acked, errs
end

-- Bytes of a node's database (file plus WAL).
function writers.db_size(dir)
  local total = 0
  for _, name in ipairs { "raft.db", "raft.db-wal" } do
    local st = uv.fs_stat(dir .. "/" .. name)
    if st then total = total + st.size end
  end
  return total
end

return writers
