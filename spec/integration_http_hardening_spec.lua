-- The HTTP API of a real `luaraft run` process against hostile and careless
-- clients (issue 11): timeouts, the connection limit, duplicate and split
-- headers, half-closed clients, 413 without Expect, the body rule, strict
-- JSON numbers, results that cannot be encoded or are too large, and
-- snapshot() failures. One single-node cluster serves every test.
local procs = require "spec.support.procs"
local uv = require "luv"
local cjson = require("cjson").new()
cjson.decode_invalid_numbers(false) -- a response with NaN/Infinity must not parse

local SCRIPT = [[
local n = 0
return {
  apply = function(cmd)
    n = n + 1
    if type(cmd) == "table" then
      if cmd.op == "nan" then return 0 / 0 end
      if cmd.op == "inf" then return { x = math.huge } end
      if cmd.op == "big" then return string.rep("x", cmd.size) end
    end
    return { n = n, cmd = cmd }
  end,
  query = function() return n end,
  snapshot = function() error("snapshot is broken on purpose") end,
  restore = function() end,
}
]]

local TIMEOUT_MS = 1500 -- header, body and idle timeouts of the node

local function now() return uv.hrtime() / 1e9 end

-- Connects, then runs steps: { write = bytes } | { wait = ms } | { shutdown = true } |
-- { read = true } (start reading now, for a client that writes its whole
-- request before it reads; otherwise reading starts at once); reads until
-- the server closes or `limit` seconds pass.
-- -> what was read, why it stopped ("closed" | "timeout" | error), seconds
local function session(port, steps, limit)
  local sock = uv.new_tcp()
  local got, why = {}, nil
  local t0 = now()
  local timer = uv.new_timer()
  timer:start(math.floor((limit or 10) * 1000), 0, function() why = why or "timeout" end)
  local step_timer = uv.new_timer()
  local function on_read(rerr, chunk)
    if rerr then why = why or rerr return end
    if not chunk then why = why or "closed" return end
    got[#got + 1] = chunk
  end
  local i = 0
  local function next_step()
    i = i + 1
    local s = steps[i]
    if not s or why then return end
    if s.write and steps.read_later then
      sock:write(s.write, function(err)
        if err then why = why or ("write: " .. err) return end
        next_step()
      end)
    elseif s.write then
      sock:write(s.write, function() end)
      next_step()
    elseif s.read then
      sock:read_start(on_read)
      next_step()
    elseif s.wait then
      step_timer:start(s.wait, 0, next_step)
    elseif s.shutdown then
      sock:shutdown(function() end)
      next_step()
    end
  end
  sock:connect("127.0.0.1", port, function(err)
    if err then why = err return end
    sock:nodelay(true)
    if not steps.read_later then sock:read_start(on_read) end
    next_step()
  end)
  while not why do uv.run("once") end
  local elapsed = now() - t0
  timer:close(); step_timer:close()
  if not sock:is_closing() then sock:close() end
  uv.run("nowait")
  return table.concat(got), why, elapsed
end

local function status_of(raw) return tonumber(raw:match("^HTTP/1%.1 (%d%d%d)")) end
local function body_of(raw) return raw:match("\r\n\r\n(.*)$") end

local function request(method, path, body, headers)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: x", "Connection: close",
    "Content-Length: " .. #(body or "") }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

describe("the HTTP API of a real node, against hostile clients", function()
  local dir, pid, port, addr
  local bin = procs.binary()

  local function call(method, path, body, headers)
    local raw = session(port, { { write = request(method, path, body, headers) } }, 20)
    local b = body_of(raw)
    local ok, v = pcall(cjson.decode, b or "")
    return status_of(raw), ok and v or nil, raw
  end

  setup(function()
    dir = procs.mkdtemp()
    local f = assert(io.open(dir .. "/sm.lua", "w"))
    f:write(SCRIPT)
    f:close()
    port = procs.free_port()
    addr = "127.0.0.1:" .. port
    pid = procs.spawn({ bin, "run", "--id", "1", "--peers", "1=127.0.0.1:" .. procs.free_port(),
      "--http", addr, "--data", dir .. "/d", "--election-ms", "100", "--heartbeat-ms", "20",
      "--http-header-timeout-ms", TIMEOUT_MS, "--http-body-timeout-ms", TIMEOUT_MS,
      "--http-idle-timeout-ms", TIMEOUT_MS, "--http-max-conns", "256",
      "--max-result-bytes", "100000", dir .. "/sm.lua" }, dir .. "/node.log")
    local deadline = now() + 30
    while now() < deadline do
      local st, v = call("GET", "/v1/status")
      if st == 200 and v and v.role == "leader" then return end
      procs.run("sleep 0.1")
    end
    error("the node did not become leader: " .. tostring(procs.read_file(dir .. "/node.log")))
  end)

  teardown(function()
    procs.kill(pid)
    procs.rmdir(dir)
  end)

  it("refuses duplicate Raft-Seq and Raft-Client-Id headers with 400", function()
    local st, v = call("POST", "/v1/propose", '{"k":1}', { "Raft-Client-Id: c1", "Raft-Seq: 1", "Raft-Seq: 1" })
    assert.equal(400, st)
    assert.matches("duplicate Raft%-Seq", v.message)
    st, v = call("POST", "/v1/propose", '{"k":1}', { "Raft-Client-Id: a", "Raft-Client-Id: b", "Raft-Seq: 1" })
    assert.equal(400, st)
    assert.matches("duplicate Raft%-Client%-Id", v.message)
  end)

  it("joins a header name split across TCP segments, and never matches a suffix", function()
    -- "Raft-Se" + "q: 7": the header is Raft-Seq
    local head = "POST /v1/propose HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 7\r\n"
      .. "Raft-Client-Id: split1\r\nRaft-Se"
    local raw = session(port, { { write = head }, { wait = 150 }, { write = "q: 7\r\n\r\n{\"k\":2}" } })
    assert.equal(200, status_of(raw), raw)
    local first = cjson.decode(body_of(raw))
    -- the same client and seq again is the same write (answered from the session)
    local st, again = call("POST", "/v1/propose", '{"k":2}', { "Raft-Client-Id: split1", "Raft-Seq: 7" })
    assert.equal(200, st)
    assert.equal(first.result.n, again.result.n)
    -- "X-" + "Raft-Seq: 1" is X-Raft-Seq, which is nobody's business
    head = "POST /v1/propose HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 7\r\nX-"
    raw = session(port, { { write = head }, { wait = 150 }, { write = "Raft-Seq: 1\r\n\r\n{\"k\":3}" } })
    assert.equal(200, status_of(raw), raw)
  end)

  it("answers a client that half-closed after its request, and the write is applied", function()
    local before = select(2, call("POST", "/v1/read", "")).result
    local raw, why = session(port, { { write = request("POST", "/v1/propose", '{"k":"half"}') }, { shutdown = true } })
    assert.equal("closed", why)
    assert.equal(200, status_of(raw), raw)
    local v = cjson.decode(body_of(raw))
    assert.equal("half", v.result.cmd.k)
    local after = select(2, call("POST", "/v1/read", "")).result
    assert.is_true(after > before)
  end)

  it("delivers 413 readably to a client that sends a large body without Expect", function()
    -- the client writes all of it before it reads, as simple clients do
    local body = string.rep("a", 6 * 1024 * 1024)
    local raw, why = session(port, { read_later = true,
      { write = request("POST", "/v1/propose", body, { "Content-Type: text/plain" }) }, { read = true } })
    assert.equal("closed", why)
    assert.equal(413, status_of(raw), raw:sub(1, 200))
    assert.equal("too_large", cjson.decode(body_of(raw)).error)
  end)

  it("takes a body without Content-Type as JSON: malformed JSON is 400, unknown types 415", function()
    local st, v = call("POST", "/v1/propose", "{bad json")
    assert.equal(400, st)
    assert.equal("bad_request", v.error)
    st, v = call("POST", "/v1/propose", '{"k":"json"}')
    assert.equal(200, st)
    assert.same({ k = "json" }, v.result.cmd)
    st, v = call("POST", "/v1/propose", "plain words", { "Content-Type: text/plain" })
    assert.equal(200, st)
    assert.equal("plain words", v.result.cmd)
    st, v = call("POST", "/v1/propose", "<p>", { "Content-Type: text/html" })
    assert.equal(415, st)
    assert.equal("unsupported_media_type", v.error)
  end)

  it("refuses a query parameter or body field it does not know, naming the closest one", function()
    -- a typo must not silently change what a request does: wait=bogus is
    -- not "wait for apply", timout=1 is not "the default timeout"
    local before = select(2, call("POST", "/v1/read", "")).result
    local st, v = call("POST", "/v1/propose?wait=bogus", '{"k":"typo"}')
    assert.equal(400, st)
    assert.equal("wait must be apply or commit", v.message)
    st, v = call("POST", "/v1/propose?timout=1", '{"k":"typo"}')
    assert.equal(400, st)
    assert.equal("unknown query parameter timout (did you mean timeout?)", v.message)
    st, v = call("POST", "/v1/propose?timeout=soon", '{"k":"typo"}')
    assert.equal(400, st)
    assert.matches("^timeout must be a number of seconds", v.message)
    st, v = call("POST", "/v1/read?consistancy=stale", "")
    assert.equal(400, st)
    assert.equal("unknown query parameter consistancy (did you mean consistency?)", v.message)
    st, v = call("POST", "/v1/members", '{"id":9,"adress":"127.0.0.1:9"}')
    assert.equal(400, st)
    assert.equal("unknown field adress (did you mean address?)", v.message)
    st, v = call("POST", "/v1/leader/transfer", '{"too":2}')
    assert.equal(400, st)
    assert.equal("unknown field too (did you mean to?)", v.message)
    -- none of them was applied; the spelled-right ones work
    assert.equal(before, select(2, call("POST", "/v1/read", "")).result)
    st, v = call("POST", "/v1/propose?wait=commit&timeout=5", '{"k":"typo"}')
    assert.equal(200, st)
    assert.truthy(v.index)
    st = call("POST", "/v1/read?consistency=stale&timeout=2", "")
    assert.equal(200, st)
  end)

  it("refuses NaN, Infinity, hex and overflowing numbers with 400", function()
    local bads = { '{"v":NaN}', '{"v":Infinity}', '{"v":-Infinity}', '{"v":0x10}', '{"v":1e400}', '[-1e999]' }
    for _, bad in ipairs(bads) do
      local st, v = call("POST", "/v1/propose", bad, { "Content-Type: application/json" })
      assert.equal(400, st, bad)
      assert.equal("bad_request", v.error, bad)
    end
  end)

  it("never writes nan or inf: a committed write with such a result answers its index", function()
    for _, op in ipairs { "nan", "inf" } do
      local st, v, raw = call("POST", "/v1/propose", '{"op":"' .. op .. '"}')
      assert.is_table(v, raw) -- strict JSON
      local lower = raw:lower()
      assert.is_nil(lower:find("[:%[,]%s*%-?nan") or lower:find("[:%[,]%s*%-?inf"), raw)
      assert.equal(500, st)
      assert.equal("result_not_encodable", v.error)
      assert.is_true(v.applied)
      assert.is_true(v.index > 0 and v.index % 1 == 0)
    end
  end)

  it("drops a result over max_result_bytes, saying the write happened at its index", function()
    local before = select(2, call("POST", "/v1/read", "")).result
    local st, v = call("POST", "/v1/propose", '{"op":"big","size":200000}')
    assert.equal(500, st)
    assert.equal("result_too_large", v.error)
    assert.is_true(v.applied)
    assert.is_true(v.index > 0)
    assert.matches("max_result_bytes", v.message)
    assert.equal(before + 1, select(2, call("POST", "/v1/read", "")).result)
    -- under the bound it is delivered
    st, v = call("POST", "/v1/propose", '{"op":"big","size":1000}')
    assert.equal(200, st)
    assert.equal(1000, #v.result)
  end)

  it("reports a failing snapshot() as a server error", function()
    local st, v = call("POST", "/v1/snapshot")
    assert.equal(500, st)
    assert.equal("snapshot_failed", v.error)
    assert.matches("broken on purpose", v.message)
  end)

  it("answers 408 to a client that sends its headers too slowly, and to a slow body", function()
    local steps = { { write = "POST /v1/propose HTTP/1.1\r\n" } }
    for _ = 1, 40 do
      steps[#steps + 1] = { wait = 200 }
      steps[#steps + 1] = { write = "X-Slow: 1\r\n" }
    end
    local raw, why, secs = session(port, steps, 15)
    assert.equal("closed", why)
    assert.equal(408, status_of(raw), raw)
    assert.is_true(secs < TIMEOUT_MS / 1000 + 3, secs)
    local slow_body = "POST /v1/propose HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"k\""
    raw, why = session(port, { { write = slow_body } }, 15)
    assert.equal("closed", why)
    assert.equal(408, status_of(raw), raw)
  end)

  it("closes an idle keep-alive connection after its idle timeout", function()
    local raw, why, secs = session(port, { { write = "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n" } }, 15)
    assert.equal("closed", why)
    assert.equal(200, status_of(raw))
    assert.is_true(secs >= TIMEOUT_MS / 1000 * 0.9 and secs < TIMEOUT_MS / 1000 + 3, secs)
  end)

  it("keeps serving others within its timeouts under 2,000 idle connections and a slowloris", function()
    -- a separate process holds the connections (it may need more descriptors than this one)
    local flood = dir .. "/flood.lua"
    local f = assert(io.open(flood, "w"))
    f:write([[
      local uv = require "luv"
      local port, n = tonumber(arg[1]), tonumber(arg[2])
      local socks, up = {}, 0
      for i = 1, n do
        local s = uv.new_tcp()
        socks[i] = s
        s:connect("127.0.0.1", port, function(err)
          if not err then s:read_start(function() end) end
          up = up + 1
          if up == n then io.stdout:write("ready\n") io.stdout:flush() end
        end)
      end
      uv.run()
    ]])
    f:close()
    local fpid = procs.spawn({ "sh", "-c", 'ulimit -n 4096 && exec "$0" "$@"', bin, flood, port, 2000 },
      dir .. "/flood.log")
    local ok, err = pcall(function()
      local deadline = now() + 30
      while not (procs.read_file(dir .. "/flood.log") or ""):find("ready") and now() < deadline do
        procs.run("sleep 0.1")
      end
      assert.truthy((procs.read_file(dir .. "/flood.log") or ""):find("ready"), procs.read_file(dir .. "/flood.log"))
      -- a slowloris in the background: one header line every 200 ms
      local slow = uv.new_tcp()
      local slow_closed = false
      slow:connect("127.0.0.1", port, function()
        slow:read_start(function(_, chunk) if not chunk then slow_closed = true end end)
        slow:write("POST /v1/propose HTTP/1.1\r\n")
      end)
      local drip = uv.new_timer()
      drip:start(200, 200, function() if not slow:is_closing() then slow:write("X-Slow: 1\r\n", function() end) end end)
      -- others are served, every time, without waiting for the flood to give up
      local t0 = now()
      for i = 1, 10 do
        local st, v = call("POST", "/v1/propose", '{"k":"under flood ' .. i .. '"}')
        assert.equal(200, st)
        assert.equal("under flood " .. i, v.result.cmd.k)
      end
      assert.is_true(now() - t0 < 10)
      -- and the slowloris is cut off by the header timeout
      local deadline2 = now() + TIMEOUT_MS / 1000 + 5
      while not slow_closed and now() < deadline2 do uv.run("once") end
      drip:close()
      if not slow:is_closing() then slow:close() end
      uv.run("nowait")
      assert.is_true(slow_closed)
    end)
    procs.kill(fpid)
    assert(ok, err)
  end)
end)
