-- Real processes: peer TLS (--tls-cert/--tls-key/--tls-ca). A cluster whose
-- certificates come from one CA forms and replicates over mutual TLS; a
-- peer that presents a certificate from another CA is refused, and so is a
-- peer that speaks plaintext. Throwaway CAs and certificates are made with
-- the openssl CLI in a temporary folder.
local cluster = require "raft.cluster"
local procs = require "support.procs"
local cjson = require "cjson"

local KV = "examples/kv.lua"
local JSON = { ["Content-Type"] = "application/json" }

local function sh(cmd)
  local code, out = procs.run("sh -c '" .. cmd .. "'", 60)
  assert(code == 0, cmd .. "\n" .. out)
end

-- CA `ca` in dir, and certificate `name` signed by it.
local function make_ca(dir, ca)
  sh(("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 " ..
    "-subj /CN=%s -keyout %s.key -out %s.pem"):format(dir, ca, ca, ca))
end
local function make_cert(dir, ca, name)
  sh(("cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=%s " ..
    "-keyout %s.key -out %s.csr && openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key " ..
    "-CAcreateserial -days 2 -out %s.pem"):format(dir, name, name, name, name, ca, ca, name))
end

local function file(path) return procs.read_file(path) or "" end

describe("peer TLS", function()
  local c, dir, pids = nil, nil, {}
  setup(function()
    dir = procs.mkdtemp()
    make_ca(dir, "ca")
    make_ca(dir, "other")
    make_cert(dir, "ca", "peer")
    make_cert(dir, "other", "foreign")
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary(),
      -- the API in clear: raft.cluster's client speaks plain HTTP
      args = { "--tls-cert", dir .. "/peer.pem", "--tls-key", dir .. "/peer.key", "--tls-ca", dir .. "/ca.pem",
               "--http-plain" } }
  end)
  teardown(function()
    for _, pid in pairs(pids) do procs.kill(pid) end
    if c then c:close() end
    procs.rmdir(dir)
  end)

  it("forms a cluster over mutual TLS that replicates", function()
    local l = assert(c:leader(20))
    assert.equal(true, (c:node(l):propose({ op = "set", key = "t", value = "over tls" })))
    for _, id in ipairs(c:ids()) do
      assert.truthy(c:wait_for(function()
        return c:node(id):read({ key = "t" }, { timeout = 2 }) == "over tls"
      end, 20), "node " .. id .. " does not read the write\n" .. c:log(id))
      assert.truthy(c:log(id):find("peer TLS", 1, true), c:log(id))
    end
  end)

  it("refuses a peer whose certificate comes from another CA, and one without TLS", function()
    local l = assert(c:leader(20))
    -- node 4 trusts the cluster's CA but presents a certificate of another
    local addr, http = "127.0.0.1:" .. procs.free_port(), "127.0.0.1:" .. procs.free_port()
    local peers = { "4=" .. addr }
    for _, id in ipairs(c:ids()) do peers[#peers + 1] = id .. "=" .. c:address(id) end
    pids[1] = procs.spawn({ procs.binary(), "run", "--id", 4, "--join", "--peers", table.concat(peers, ","),
      "--http", http, "--data", dir .. "/4", "--tls-cert", dir .. "/foreign.pem", "--tls-key", dir .. "/foreign.key",
      "--tls-ca", dir .. "/ca.pem", "--http-plain", KV }, dir .. "/4.log")
    -- node 5 has no TLS at all
    local addr5 = "127.0.0.1:" .. procs.free_port()
    peers[1] = "5=" .. addr5
    pids[2] = procs.spawn({ procs.binary(), "run", "--id", 5, "--join", "--peers", table.concat(peers, ","),
      "--data", dir .. "/5", KV }, dir .. "/5.log")
    assert.truthy((c:node(l):add_member(4, addr, { learner = true })))
    assert.truthy((c:node(l):add_member(5, addr5, { learner = true })))
    assert.equal(true, (c:node(l):propose({ op = "set", key = "t", value = "after" })))
    -- the members refuse node 4's certificate (it dials them, and the leader dials it)
    local function members_say(pat)
      for _, id in ipairs(c:ids()) do
        if c:log(id):find(pat) then return true end
      end
    end
    assert.truthy(c:wait_for(function()
      return members_say("TLS handshake with [^\n]*failed: certificate verify failed")
    end, 20), "no member refused the foreign certificate\n" .. c:log(l))
    -- node 5 speaks plaintext: a member's TLS handshake with it fails, and it
    -- reports what it got as not a luaraft peer
    assert.truthy(c:wait_for(function()
      return file(dir .. "/5.log"):find("not a luaraft peer", 1, true)
    end, 20), file(dir .. "/5.log"))
    -- neither learns the cluster or its data; the cluster goes on
    cluster.sleep(1)
    for _, p in ipairs { { http, dir .. "/4.log" } } do
      local code, body = procs.http(p[1], "GET", "/v1/status", nil, nil, 2)
      assert.equal(200, code, file(p[2]))
      local st = cjson.decode(body)
      assert.equal(("0"):rep(16), st.cluster_id, file(p[2]))
      assert.equal(0, st.applied_index)
    end
    assert.is_nil(file(dir .. "/5.log"):find("joined cluster", 1, true))
    assert.is_nil(file(dir .. "/4.log"):find("joined cluster", 1, true))
    assert.equal(true, (c:node(l):propose({ op = "set", key = "t", value = "still" })))
    local code, body = procs.http(c:http_address(l), "POST", "/v1/read", cjson.encode { key = "t" }, JSON, 10)
    assert.equal(200, code)
    assert.equal("still", cjson.decode(body).result)
  end)

  it("refuses to start with a key that does not match the certificate, naming the files", function()
    local code, out = procs.run(("%s run --id 9 --peers 9=127.0.0.1:%d --data %s/9 --tls-cert %s/peer.pem " ..
      "--tls-key %s/foreign.key --tls-ca %s/ca.pem %s"):format(procs.binary(), procs.free_port(), dir, dir, dir,
      dir, KV), 30)
    assert.equal(1, code, out)
    assert.truthy(out:find("foreign.key", 1, true), out)
  end)
end)
