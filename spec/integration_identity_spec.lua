-- Real processes: cluster identity. Two clusters never merge: a node of an
-- old cluster restarted at an address a new cluster's configuration names
-- is refused by both sides with one line naming both cluster ids, and both
-- clusters keep answering consistently. A joining node learns the id. A
-- node restarted with another own address refuses to start.
local cluster = require "raft.cluster"
local procs = require "support.procs"
local cjson = require "cjson"

local KV = "examples/kv.lua"
local JSON = { ["Content-Type"] = "application/json" }

local function wait_for(fn, timeout)
  local deadline = os.time() + timeout
  repeat
    local v = fn()
    if v then return v end
    cluster.sleep(0.05)
  until os.time() > deadline
  return nil
end

local function status(http)
  local code, body = procs.http(http, "GET", "/v1/status", nil, nil, 2)
  if code ~= 200 then return nil end
  return cjson.decode(body)
end

local function propose(http, key, value)
  local code, body = procs.http(http, "POST", "/v1/propose?timeout=5",
    cjson.encode { op = "set", key = key, value = value }, JSON, 10)
  return code == 200, body
end

local function read(http, key)
  local code, body = procs.http(http, "POST", "/v1/read?timeout=5", cjson.encode { key = key }, JSON, 10)
  if code ~= 200 then return nil, code end
  local r = cjson.decode(body).result
  if r == cjson.null then r = nil end
  return r, code
end

local function file(path) return procs.read_file(path) or "" end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

describe("cluster identity", function()
  local a, dir, pids = nil, nil, {}
  setup(function()
    a = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary() }
    dir = procs.mkdtemp()
  end)
  teardown(function()
    for _, pid in pairs(pids) do procs.kill(pid) end
    if a then a:close() end
    procs.rmdir(dir)
  end)

  it("refuses an old cluster's node at a new cluster's address on both sides; both clusters stay consistent",
    function()
    local la = assert(a:leader(20))
    assert.equal(true, (a:node(la):propose({ op = "set", key = "k", value = "a1" })))
    local a_id = assert(a:node(la):status()).cluster_id
    assert.truthy(a_id:match("^%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x$") and a_id ~= ("0"):rep(16), a_id)
    -- node 3 of cluster A goes away; a new cluster B is made whose node 3
    -- is expected at the address A's node 3 used
    local old = la == 3 and 1 or 3
    a:kill(old)
    local x = a:address(old)
    local b = {}
    for i = 1, 2 do b[i] = { peer = "127.0.0.1:" .. procs.free_port(), http = "127.0.0.1:" .. procs.free_port() } end
    local bids = {}
    for id = 1, 3 do if id ~= old then bids[#bids + 1] = id end end
    local peers = ("%d=%s,%d=%s,%d=%s"):format(old, x, bids[1], b[1].peer, bids[2], b[2].peer)
    for i, id in ipairs(bids) do
      pids[i] = procs.spawn({ procs.binary(), "run", "--id", id, "--peers", peers, "--http", b[i].http,
        "--data", dir .. "/b" .. id, KV }, dir .. "/b" .. i .. ".log")
    end
    local lb = wait_for(function()
      for i = 1, 2 do
        local st = status(b[i].http)
        if st and st.role == "leader" then return i end
      end
    end, 20)
    assert.truthy(lb, "cluster B elected no leader\n" .. file(dir .. "/b1.log"))
    assert.truthy((propose(b[lb].http, "k", "b1")))
    local b_id = status(b[lb].http).cluster_id
    assert.are_not.equal(a_id, b_id)
    -- the old node comes back at x, which B dials
    a:restart(old)
    local line = "cluster id mismatch: node %d+ is in cluster %x+, node %d+ in cluster %x+"
    local function mismatch_named(log)
      for l in log:gmatch("[^\n]+") do
        if l:match(line) and l:find(a_id, 1, true) and l:find(b_id, 1, true) then return true end
      end
    end
    assert.truthy(wait_for(function() return mismatch_named(a:log(old)) end, 20),
      "the old node logged no mismatch naming both ids\n" .. a:log(old))
    assert.truthy(wait_for(function()
      return mismatch_named(file(dir .. "/b1.log")) or mismatch_named(file(dir .. "/b2.log"))
    end, 20), "cluster B logged no mismatch naming both ids\n" .. file(dir .. "/b1.log"))
    -- both clusters take writes, and reads agree within each
    la = assert(a:leader(20))
    assert.equal(true, (a:node(la):propose({ op = "set", key = "k", value = "a2" })))
    assert.truthy(wait_for(function()
      local ok = true
      for _, id in ipairs(a:ids()) do
        if a:node(id):read({ key = "k" }, { timeout = 2 }) ~= "a2" then ok = false end
      end
      return ok
    end, 20), "cluster A's nodes disagree on k")
    assert.equal(a_id, assert(a:node(old):status()).cluster_id)
    lb = wait_for(function()
      for i = 1, 2 do
        local st = status(b[i].http)
        if st and st.role == "leader" then return i end
      end
    end, 20)
    assert.truthy((propose(b[lb].http, "k", "b2")))
    for i = 1, 2 do
      assert.truthy(wait_for(function() return read(b[i].http, "k") == "b2" end, 20),
        "cluster B's node " .. i .. " does not read b2")
      assert.equal(b_id, status(b[i].http).cluster_id)
    end
    -- the refusals repeat (B keeps dialing x) but are logged once per peer
    cluster.sleep(2)
    for i = 1, 2 do
      assert.truthy(count(file(dir .. "/b" .. i .. ".log"), "WARN[^\n]*cluster id mismatch") <= 2,
        file(dir .. "/b" .. i .. ".log"))
    end
    assert.truthy(count(a:log(old), "WARN[^\n]*cluster id mismatch") <= 2, a:log(old))
  end)
end)

describe("a joining node", function()
  local c, pid, dir
  setup(function()
    c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary() }
    dir = procs.mkdtemp()
  end)
  teardown(function()
    procs.kill(pid)
    if c then c:close() end
    procs.rmdir(dir)
  end)

  it("learns the cluster id from the member that adds it, persists it, and keeps it across a restart", function()
    local l = assert(c:leader(20))
    local id = assert(c:node(l):status()).cluster_id
    local addr, http = "127.0.0.1:" .. procs.free_port(), "127.0.0.1:" .. procs.free_port()
    local argv = { procs.binary(), "run", "--id", 4, "--join", "--peers", "4=" .. addr, "--http", http,
      "--data", dir .. "/4", KV }
    pid = procs.spawn(argv, dir .. "/4.log")
    assert.truthy(wait_for(function() return status(http) end, 20), file(dir .. "/4.log"))
    assert.equal(("0"):rep(16), status(http).cluster_id)
    assert.truthy((c:node(l):add_member(4, addr, { learner = true })))
    assert.truthy(wait_for(function() local st = status(http) return st and st.cluster_id == id end, 20),
      file(dir .. "/4.log"))
    assert.truthy(file(dir .. "/4.log"):find("joined cluster " .. id, 1, true), file(dir .. "/4.log"))
    procs.kill(pid)
    cluster.sleep(0.2)
    pid = procs.spawn(argv, dir .. "/4.log")
    assert.truthy(wait_for(function() local st = status(http) return st and st.cluster_id == id end, 20),
      file(dir .. "/4.log"))
  end)

  it("made with --cluster-name gets the id derived from the name", function()
    local d = procs.mkdtemp()
    for _, sub in ipairs { "x", "y", "z" } do os.execute("mkdir -p " .. d .. "/" .. sub) end
    local ok, err = pcall(function()
      local n1 = cluster.new { nodes = 1, state_machine = KV, binary = procs.binary(), dir = d .. "/x",
        args = { "--cluster-name", "payments-eu" } }
      local n2 = cluster.new { nodes = 1, state_machine = KV, binary = procs.binary(), dir = d .. "/y",
        args = { "--cluster-name", "payments-eu" } }
      local n3 = cluster.new { nodes = 1, state_machine = KV, binary = procs.binary(), dir = d .. "/z",
        args = { "--cluster-name", "payments-us" } }
      local ids = {}
      for i, k in ipairs { n1, n2, n3 } do
        assert(k:leader(20))
        ids[i] = k:node(1):status().cluster_id
        k:close()
      end
      assert.equal(ids[1], ids[2])
      assert.are_not.equal(ids[1], ids[3])
    end)
    procs.rmdir(d)
    assert(ok, err)
  end)
end)

describe("a node restarted with another own address", function()
  local c
  setup(function() c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary() } end)
  teardown(function() if c then c:close() end end)

  it("refuses to start and says how to change an address", function()
    assert(c:leader(20))
    c:stop(1)
    local peers = ("1=127.0.0.1:%d,2=%s,3=%s"):format(procs.free_port(), c:address(2), c:address(3))
    local cmd = ("%s run --id 1 --peers %s --data %s/1 %s"):format(procs.binary(), peers, c.dir, KV)
    local code, out = procs.run(cmd, 30)
    assert.equal(1, code, out)
    assert.truthy(out:find("differs from its address in the stored configuration", 1, true), out)
    assert.truthy(out:find(c:address(1), 1, true), out)
    assert.truthy(out:find("remove_member", 1, true) and out:find("add_member", 1, true), out)
    -- its old address still works
    c:restart(1)
    assert.truthy(c:wait_for(function() local st = c:node(1):status(1) return st and st.leader end, 20), c:log(1))
  end)
end)
