-- HTTP authentication and HTTPS on real `luaraft run` processes (issue 11):
-- client and admin bearer tokens (--http-token-file,
-- --http-admin-token-file and their environment variables), the open
-- paths, and TLS (--tls-cert/--tls-key, client certificates with --tls-ca
-- and --http-client-certs) checked with curl against a throwaway CA.
local procs = require "spec.support.procs"
local uv = require "luv"
local cjson = require("cjson").new()

local CLIENT = "client-token-0123456789abcdef"
local CLIENT2 = "client-token-rotated-9876543210"
local ADMIN = "admin-token-0123456789abcdef"

local function now() return uv.hrtime() / 1e9 end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function wait_leader(addr, headers)
  local deadline = now() + 30
  while now() < deadline do
    local st, body = procs.http(addr, "GET", "/v1/status", nil, headers, 5)
    local ok, v = pcall(cjson.decode, body or "")
    if st == 200 and ok and v.role == "leader" then return true end
    procs.run("sleep 0.1")
  end
  return false
end

describe("HTTP bearer tokens on a real node", function()
  local dir, pid, addr
  local bin = procs.binary()

  local function call(method, path, body, token)
    local st, b, raw = procs.http(addr, method, path, body, token and { Authorization = "Bearer " .. token } or nil, 20)
    local ok, v = pcall(cjson.decode, b or "")
    return st, ok and v or nil, raw
  end

  setup(function()
    dir = procs.mkdtemp()
    write(dir .. "/sm.lua", "local n = 0\nreturn { apply = function() n = n + 1 return n end, "
      .. "query = function() return n end, snapshot = function() return tostring(n) end, "
      .. "restore = function(s) n = tonumber(s) end }\n")
    write(dir .. "/clients", "# rotated: both work\n" .. CLIENT .. "\n\n" .. CLIENT2 .. "\n")
    write(dir .. "/admins", ADMIN .. "\n")
    addr = "127.0.0.1:" .. procs.free_port()
    -- the admin token file through its environment variable
    pid = procs.spawn({ "env", "LUARAFT_HTTP_ADMIN_TOKEN_FILE=" .. dir .. "/admins", bin, "run", "--id", "1",
      "--peers", "1=127.0.0.1:" .. procs.free_port(), "--http", addr, "--data", dir .. "/d",
      "--election-ms", "100", "--heartbeat-ms", "20", "--http-token-file", dir .. "/clients",
      dir .. "/sm.lua" }, dir .. "/node.log")
    assert(wait_leader(addr), procs.read_file(dir .. "/node.log"))
  end)

  teardown(function()
    procs.kill(pid)
    procs.rmdir(dir)
  end)

  it("refuses unauthenticated writes and reads with 401 and a challenge", function()
    local st, v, raw = call("POST", "/v1/propose", '{"x":1}')
    assert.equal(401, st)
    assert.equal("unauthorized", v.error)
    assert.matches('WWW%-Authenticate: Bearer realm="luaraft"', raw)
    st = call("POST", "/v1/read", "")
    assert.equal(401, st)
    local st2, _, raw2 = call("POST", "/v1/propose", '{"x":1}', "not-" .. CLIENT)
    assert.equal(401, st2)
    assert.matches('error="invalid_token"', raw2)
    -- nothing was written
    st, v = call("POST", "/v1/read", "", CLIENT)
    assert.equal(200, st)
    assert.equal(0, v.result)
  end)

  it("accepts every token of the client file, and the admin token", function()
    for i, token in ipairs { CLIENT, CLIENT2, ADMIN } do
      local st, v = call("POST", "/v1/propose", '{"x":1}', token)
      assert.equal(200, st, token)
      assert.equal(i, v.result)
    end
  end)

  it("keeps membership, transfer, snapshot and faults for the admin token", function()
    local admin_routes = {
      { "POST", "/v1/members", '{"id":9,"address":"127.0.0.1:1"}' },
      { "DELETE", "/v1/members/9" }, { "POST", "/v1/members/9/promote" },
      { "POST", "/v1/leader/transfer", '{"to":1}' }, { "POST", "/v1/snapshot" },
      { "POST", "/v1/faults", '{"drop":[]}' },
    }
    for _, r in ipairs(admin_routes) do
      local st, v, raw = call(r[1], r[2], r[3], CLIENT)
      assert.equal(403, st, r[2])
      assert.equal("forbidden", v.error)
      assert.matches('error="insufficient_scope"', raw)
      st = call(r[1], r[2], r[3])
      assert.equal(401, st, r[2])
    end
    local st, v = call("POST", "/v1/snapshot", nil, ADMIN)
    assert.equal(200, st, v and v.message)
  end)

  it("leaves /v1/status and /metrics open by default", function()
    assert.equal(200, (call("GET", "/v1/status")))
    assert.equal(200, (call("GET", "/metrics")))
    assert.equal(401, (call("GET", "/v1/members")))
  end)

  it("closes the open paths with --http-open none", function()
    local addr2 = "127.0.0.1:" .. procs.free_port()
    local pid2 = procs.spawn({ bin, "run", "--id", "1", "--peers", "1=127.0.0.1:" .. procs.free_port(),
      "--http", addr2, "--data", dir .. "/d2", "--election-ms", "100", "--heartbeat-ms", "20",
      "--http-token-file", dir .. "/clients", "--http-open", "none", dir .. "/sm.lua" }, dir .. "/node2.log")
    local ok, err = pcall(function()
      assert.truthy(wait_leader(addr2, { Authorization = "Bearer " .. CLIENT }), procs.read_file(dir .. "/node2.log"))
      assert.equal(401, (procs.http(addr2, "GET", "/v1/status", nil, nil, 10)))
      assert.equal(401, (procs.http(addr2, "GET", "/metrics", nil, nil, 10)))
      -- with only client tokens, they also open the admin routes
      assert.equal(200, (procs.http(addr2, "POST", "/v1/snapshot", nil, { Authorization = "Bearer " .. CLIENT }, 10)))
    end)
    procs.kill(pid2)
    assert(ok, err)
  end)

  it("refuses to start with a token file that is empty or too weak", function()
    write(dir .. "/weak", "short\n")
    local code, out = procs.run(("%s run --id 1 --peers 1=127.0.0.1:1 --data %s/d3 --http 127.0.0.1:1 "
      .. "--http-token-file %s/weak %s/sm.lua"):format(bin, dir, dir, dir), 20)
    assert.equal(2, code)
    assert.matches("at least 16 characters", out)
    write(dir .. "/empty", "# nothing\n")
    code, out = procs.run(("%s run --id 1 --peers 1=127.0.0.1:1 --data %s/d3 --http 127.0.0.1:1 "
      .. "--http-token-file %s/empty %s/sm.lua"):format(bin, dir, dir, dir), 20)
    assert.equal(2, code)
    assert.matches("holds no token", out)
  end)
end)

describe("HTTPS on a real node", function()
  local dir
  local bin = procs.binary()

  local function in_dir(cmd)
    return "sh -c '" .. ("cd " .. dir .. " && " .. cmd):gsub("'", "'\\''") .. "'"
  end

  local function sh(cmd)
    local code, out = procs.run(in_dir(cmd), 60)
    assert(code == 0, cmd .. ": " .. out)
    return out
  end

  -- a CA, a server certificate for 127.0.0.1 and a client certificate
  local function make_pki()
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca 2>&1")
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>&1")
    write(dir .. "/ext", "subjectAltName=IP:127.0.0.1\n")
    sh("openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
      .. "-extfile ext 2>&1")
    sh("openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client1 2>&1")
    sh("openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 2>&1")
    -- another CA, whose certificates the node must refuse
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout evil.key -out evil.pem -days 2 -subj /CN=client1 2>&1")
  end

  local function start(addr, extra, log)
    local argv = { bin, "run", "--id", "1", "--peers", "1=127.0.0.1:" .. procs.free_port(), "--http", addr,
      "--data", dir .. "/" .. log, "--election-ms", "100", "--heartbeat-ms", "20",
      "--tls-cert", dir .. "/server.pem", "--tls-key", dir .. "/server.key" }
    for _, a in ipairs(extra) do argv[#argv + 1] = a end
    argv[#argv + 1] = dir .. "/sm.lua"
    return procs.spawn(argv, dir .. "/" .. log .. ".log")
  end

  -- curl with a bounded time; -> exit code, output
  local function curl(args)
    return procs.run(in_dir("curl -sS --max-time 10 " .. args .. " 2>&1"), 20)
  end

  local function wait_https(url, args)
    local deadline = now() + 30
    while now() < deadline do
      local code, out = curl((args or "") .. " --cacert ca.pem " .. url .. "/v1/status")
      if code == 0 and out:find('"role":"leader"', 1, true) then return true end
      procs.run("sleep 0.2")
    end
    return false
  end

  setup(function()
    dir = procs.mkdtemp()
    write(dir .. "/sm.lua", "local n = 0\nreturn { apply = function() n = n + 1 return n end }\n")
    make_pki()
  end)

  teardown(function()
    procs.rmdir(dir)
  end)

  it("serves the API over TLS to curl --cacert, and nothing in clear", function()
    local port = procs.free_port()
    local pid = start("127.0.0.1:" .. port, {}, "tls1")
    local ok, err = pcall(function()
      local url = "https://127.0.0.1:" .. port
      assert.truthy(wait_https(url), procs.read_file(dir .. "/tls1.log"))
      local code, out = curl("--cacert ca.pem -XPOST -d '{\"x\":1}' " .. url .. "/v1/propose")
      assert.equal(0, code, out)
      assert.matches('"result":1', out)
      -- without the CA, curl does not trust the node
      code = curl(url .. "/v1/status")
      assert.are_not.equal(0, code)
      -- plain HTTP on the TLS port gets no answer, and the node keeps serving
      local raw = procs.tcp_exchange("127.0.0.1:" .. port, "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n", 5)
      assert.is_nil(raw:match("^HTTP/1%.1 200"))
      assert.truthy(wait_https(url))
    end)
    procs.kill(pid)
    assert(ok, err)
  end)

  it("requires a client certificate from --tls-ca with --http-client-certs", function()
    local port = procs.free_port()
    local pid = start("127.0.0.1:" .. port, { "--tls-ca", dir .. "/ca.pem", "--http-client-certs" }, "tls2")
    local ok, err = pcall(function()
      local url = "https://127.0.0.1:" .. port
      assert.truthy(wait_https(url, "--cert client.pem --key client.key"), procs.read_file(dir .. "/tls2.log"))
      local code = curl("--cacert ca.pem " .. url .. "/v1/status")
      assert.are_not.equal(0, code)
      code = curl("--cacert ca.pem --cert evil.pem --key evil.key " .. url .. "/v1/status")
      assert.are_not.equal(0, code)
      local out
      code, out = curl("--cacert ca.pem --cert client.pem --key client.key -XPOST -d '{\"x\":1}' "
        .. url .. "/v1/propose")
      assert.equal(0, code, out)
      assert.matches('"result":1', out)
    end)
    procs.kill(pid)
    assert(ok, err)
  end)
end)
