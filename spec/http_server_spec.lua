-- The C HTTP server under the HTTP API (src/http): keep-alive, pipelining,
-- the body limit answered without buffering the excess, malformed requests
-- answered with 400, and asynchronous replies. Real sockets on loopback.
local raft = require "raft"
local core = require "raft.core"
local uv = raft.use_luv()

-- Sends raw bytes on a fresh connection and collects everything the server
-- writes until it closes or `idle_ms` pass without data.
local function exchange(port, bytes, idle_ms)
  local out, done = {}, false
  local sock = uv.new_tcp()
  local timer = uv.new_timer()
  local function finish()
    if done then return end
    done = true
    timer:stop(); timer:close()
    if not sock:is_closing() then sock:close() end
  end
  local function arm() timer:stop(); timer:start(idle_ms or 300, 0, finish) end
  sock:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    sock:read_start(function(rerr, chunk)
      if rerr or not chunk then finish() return end
      out[#out + 1] = chunk
      arm()
    end)
    if type(bytes) == "table" then
      for _, b in ipairs(bytes) do sock:write(b) end
    else
      sock:write(bytes)
    end
    arm()
  end)
  while not done do uv.run("once") end
  return table.concat(out)
end

local function statuses(text)
  local list = {}
  for code in text:gmatch("HTTP/1.1 (%d%d%d)") do list[#list + 1] = tonumber(code) end
  return list
end

describe("the HTTP server", function()
  local srv, port, seen
  before_each(function()
    seen = {}
    srv = assert(core.http_listen("127.0.0.1:0", function(req)
      seen[#seen + 1] = req
      if req.path == "/later" then
        local t = uv.new_timer()
        t:start(20, 0, function()
          t:close()
          srv:respond(req.id, 200, "text/plain", "later " .. req.body)
        end)
      else
        srv:respond(req.id, 200, "text/plain", req.method .. " " .. req.path .. "?" .. req.query)
      end
    end, { max_body = 64 }))
    port = srv:port()
  end)
  after_each(function()
    srv:close()
    uv.run("nowait")
  end)

  it("answers a request and passes method, path, query, body and raft headers", function()
    local body = "hello"
    local text = exchange(port, "POST /v1/propose?consistency=lease HTTP/1.1\r\nHost: x\r\n"
      .. "Raft-Client-Id: c7\r\nRaft-Seq: 42\r\nContent-Type: text/plain\r\n"
      .. "Content-Length: " .. #body .. "\r\nConnection: close\r\n\r\n" .. body)
    assert.same({ 200 }, statuses(text))
    assert.truthy(text:find("POST /v1/propose?consistency=lease", 1, true))
    assert.equal("hello", seen[1].body)
    assert.equal("c7", seen[1].client_id)
    assert.equal("42", seen[1].seq)
    assert.equal("text/plain", seen[1].content_type)
  end)

  it("serves pipelined requests on one keep-alive connection in order", function()
    local text = exchange(port, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /later HTTP/1.1\r\nHost: x\r\n"
      .. "Content-Length: 1\r\n\r\nzGET /c HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.same({ 200, 200, 200 }, statuses(text))
    local a, b, c = text:find("GET /a?", 1, true), text:find("later z", 1, true), text:find("GET /c?", 1, true)
    assert.truthy(a and b and c and a < b and b < c)
  end)

  it("refuses a declared body over the limit with 413 before reading it", function()
    local text = exchange(port, "POST /v1/propose HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
    assert.same({ 413 }, statuses(text))
    assert.truthy(text:find('"error":"too_large"', 1, true))
    assert.equal(0, #seen)
    assert.equal(1, srv:stats().too_large)
  end)

  it("refuses a chunked body as soon as it passes the limit", function()
    local chunk = string.rep("x", 40)
    local text = exchange(port, { "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
      "28\r\n" .. chunk .. "\r\n", "28\r\n" .. chunk .. "\r\n", "0\r\n\r\n" })
    assert.same({ 413 }, statuses(text))
    assert.equal(0, #seen)
  end)

  it("answers garbage with 400 and keeps serving other connections", function()
    local text = exchange(port, "\0\1\2GARBAGE\r\n\r\n")
    assert.same({ 400 }, statuses(text))
    assert.equal(1, srv:stats().bad_requests)
    local ok = exchange(port, "GET /still HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert.same({ 200 }, statuses(ok))
  end)

  it("reports a reply to a closed connection as gone", function()
    local id
    srv:close()
    srv = assert(core.http_listen("127.0.0.1:0", function(req) id = req.id end))
    exchange(srv:port(), "GET /x HTTP/1.1\r\nHost: x\r\n\r\n", 50)
    uv.run("nowait")
    assert.is_number(id)
    assert.is_false(srv:respond(id, 200, "text/plain", "late"))
  end)

  it("refuses a bad listen address with a clear message", function()
    local s, err = core.http_listen("nowhere", function() end)
    assert.is_nil(s)
    assert.matches("HOST:PORT", err)
  end)
end)
