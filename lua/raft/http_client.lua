-- A small HTTP/1.1 client over luv for talking to luaraft nodes (raft.cluster,
-- luaraft ctl and bench): one keep-alive connection per client object,
-- requests one at a time, Content-Length bodies only (what the node sends).
--
-- Inside a coroutine that the loop resumes (raft.spawn, or any coroutine a
-- luv callback resumes) a request yields until its answer arrives; outside
-- one it runs the loop until then.
local uv = require "luv"

local http_client = {}
local Client = {}
Client.__index = Client

local function wait(is_done)
  local co, main = coroutine.running()
  if co and not main then
    return coroutine.yield()
  end
  while not is_done() do uv.run("once") end
end

function http_client.new(host, port)
  return setmetatable({ host = host, port = tonumber(port), sock = nil, buf = "", busy = false }, Client)
end

function Client:close()
  if self.sock and not self.sock:is_closing() then self.sock:close() end
  self.sock = nil
  self.buf = ""
end

-- Parses one response out of self.buf; returns status, body, headers or nil
-- if incomplete.
local function parse(self)
  local head_end = self.buf:find("\r\n\r\n", 1, true)
  if not head_end then return nil end
  local head = self.buf:sub(1, head_end - 1)
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "malformed response" end
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
  local len = tonumber(headers["content-length"] or "0")
  if #self.buf < head_end + 3 + len then return nil end
  local body = self.buf:sub(head_end + 4, head_end + 3 + len)
  self.buf = self.buf:sub(head_end + 4 + len)
  return status, body, headers
end

-- request(method, path, body, headers, timeout_s) -> status, body, headers
--                                               | nil, message
function Client:request(method, path, body, headers, timeout)
  assert(not self.busy, "http_client: one request at a time per client")
  self.busy = true
  body = body or ""
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: " .. self.host,
    "Content-Length: " .. #body }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. tostring(v) end
  local wire = table.concat(lines, "\r\n") .. "\r\n\r\n" .. body

  local co, main = coroutine.running()
  local in_co = co and not main
  local done, result = false, nil
  local timer = uv.new_timer()
  local function finish(...)
    if done then return end
    done = true
    result = table.pack(...)
    timer:stop()
    timer:close()
    if in_co then
      local ok, err = coroutine.resume(co)
      if not ok then error(err, 0) end
    end
  end
  local function fail(msg)
    self:close()
    finish(nil, msg)
  end
  local function on_read(err, chunk)
    if err or not chunk then fail(err or "connection closed by the node") return end
    self.buf = self.buf .. chunk
    local status, rbody, rheaders = parse(self)
    if status then finish(status, rbody, rheaders)
    elseif rbody then fail(rbody) end
  end
  local function send()
    self.sock:write(wire, function(err) if err then fail(err) end end)
  end
  timer:start(math.floor((timeout or 10) * 1000), 0, function() fail("timeout") end)
  if self.sock then
    self.sock:read_stop() -- the idle watcher below
    self.sock:read_start(on_read)
    send()
  else
    self.sock = uv.new_tcp()
    self.sock:nodelay(true)
    self.sock:connect(self.host, self.port, function(err)
      if err then fail(err) return end
      if done then return end
      self.sock:read_start(on_read)
      send()
    end)
  end
  wait(function() return done end)
  self.busy = false
  if self.sock and not self.sock:is_closing() then
    -- Between requests, notice the node closing the idle connection (its
    -- keep-alive timeout, docs/http.md), so that the next request opens a
    -- fresh connection instead of writing into a closed one.
    local sock = self.sock
    sock:read_stop()
    sock:read_start(function()
      if self.sock == sock and not self.busy then self:close() end
    end)
  end
  return table.unpack(result, 1, result.n)
end

return http_client
