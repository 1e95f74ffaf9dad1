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

  it("answers a client that half-closed, and a second reply to the same request is gone", function()
    local id
    srv:close()
    srv = assert(core.http_listen("127.0.0.1:0", function(req) id = req.id end))
    local out, closed = {}, false
    local sock = uv.new_tcp()
    sock:connect("127.0.0.1", srv:port(), function()
      sock:read_start(function(_, chunk)
        if chunk then out[#out + 1] = chunk else closed = true end
      end)
      sock:write("GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
      sock:shutdown()
    end)
    local t0 = uv.now()
    while not id and uv.now() - t0 < 5000 do uv.run("once") end
    uv.run("nowait")
    assert.is_number(id)
    assert.is_true(srv:respond(id, 200, "text/plain", "late"))
    assert.is_false(srv:respond(id, 200, "text/plain", "again"))
    while not closed and uv.now() - t0 < 5000 do uv.run("once") end
    sock:close()
    assert.same({ 200 }, statuses(table.concat(out)))
    assert.truthy(table.concat(out):find("late", 1, true))
  end)

  it("answers Expect: 100-continue before the body, and 413 instead when it will not fit", function()
    local text = exchange(port, "POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
      .. "Connection: close\r\n\r\nabc")
    assert.same({ 100, 200 }, statuses(text))
    text = exchange(port, "POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n")
    assert.same({ 413 }, statuses(text))
  end)

  it("closes the longest-idle connection for a newcomer, and answers 503 when all are busy", function()
    srv:close()
    local held = {}
    srv = assert(core.http_listen("127.0.0.1:0", function(req)
      if req.path == "/hold" then held[#held + 1] = req.id
      else srv:respond(req.id, 200, "text/plain", "ok") end
    end, { max_conns = 2 }))
    local p = srv:port()
    local function open()
      local s = uv.new_tcp()
      local c = { sock = s, out = {}, closed = false }
      s:connect("127.0.0.1", p, function()
        s:read_start(function(_, chunk)
          if chunk then c.out[#c.out + 1] = chunk else c.closed = true end
        end)
      end)
      for _ = 1, 5 do uv.run("nowait") end
      return c
    end
    local function spin(cond)
      local t0 = uv.now()
      while not cond() and uv.now() - t0 < 5000 do uv.run("once") end
    end
    -- two idle connections fill the table; a third evicts the first
    local a = open()
    local b = open()
    spin(function() return srv:stats().open == 2 end)
    local c = open()
    spin(function() return a.closed end)
    assert.is_true(a.closed)
    assert.equal(1, srv:stats().evicted)
    assert.same({ 200 }, statuses(exchange(p, "GET /y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")))
    -- that newcomer evicted one of b and c, whichever was idle longer (they
    -- may have connected within the same millisecond: then the first slot)
    spin(function() return b.closed or c.closed end)
    assert.is_true(b.closed ~= c.closed)
    assert.equal(2, srv:stats().evicted)
    local live = b.closed and c or b
    -- every slot busy with a request in progress: the newcomer is refused
    live.sock:write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    local d = open()
    d.sock:write("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
    spin(function() return #held == 2 end)
    assert.equal(2, #held)
    local refused = exchange(p, "GET /z HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.same({ 503 }, statuses(refused))
    assert.truthy(refused:find("Retry-After", 1, true))
    assert.equal(1, srv:stats().rejected)
    for _, x in ipairs { a, b, c, d } do if not x.sock:is_closing() then x.sock:close() end end
  end)

  it("answers 408 when the headers do not arrive in time, and closes a silent connection", function()
    srv:close()
    srv = assert(core.http_listen("127.0.0.1:0", function() end, { header_timeout_ms = 200 }))
    local text = exchange(srv:port(), "GET /slow HTTP/1.1\r\n", 2000)
    assert.same({ 408 }, statuses(text))
    assert.equal("", exchange(srv:port(), "", 2000))
    assert.equal(2, srv:stats().timeouts)
  end)

  it("closes idle keep-alive connections, and raft's client notices and reconnects", function()
    srv:close()
    srv = assert(core.http_listen("127.0.0.1:0", function(req)
      srv:respond(req.id, 200, "text/plain", "hi")
    end, { idle_timeout_ms = 100 }))
    local client = require("raft.http_client").new("127.0.0.1", srv:port())
    assert.equal(200, (client:request("GET", "/a", nil, nil, 5)))
    local t = uv.new_timer()
    local waited = false
    t:start(400, 0, function() waited = true end)
    while not waited do uv.run("once") end
    t:close()
    assert.equal(0, srv:stats().open) -- the server closed it
    local status, body = client:request("GET", "/b", nil, nil, 5)
    assert.equal(200, status, body)
    assert.equal(2, srv:stats().connections)
    client:close()
  end)

  it("refuses a bad listen address with a clear message", function()
    local s, err = core.http_listen("nowhere", function() end)
    assert.is_nil(s)
    assert.matches("HOST:PORT", err)
  end)
end)
