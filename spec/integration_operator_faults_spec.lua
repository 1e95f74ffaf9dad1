-- Real processes: faults an operator causes are reported precisely and
-- quietly. A read-only data folder, an unreadable raft.db and a full disk
-- are named as such at start (never "not a luaraft database", which invites
-- deleting it); a removed node logs its removal once and then goes quiet,
-- and its former peers log its refusal once.
local cluster = require "raft.cluster"
local procs = require "support.procs"

local KV = "examples/kv.lua"

local function is_root()
  local p = io.popen("id -u")
  local uid = p:read("l")
  p:close()
  return uid == "0"
end

-- Runs `luaraft run` for node 1 on data dir `data` as an unprivileged user
-- (root ignores permissions). -> exit code, output
local function run_as_user(data, port)
  local cmd = ("%s run --id 1 --peers 1=127.0.0.1:%d --data %s %s"):format(procs.binary(), port, data, KV)
  if is_root() then cmd = "setpriv --reuid=65534 --regid=65534 --clear-groups " .. cmd end
  return procs.run(cmd, 30)
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

describe("a data folder the node cannot use", function()
  local dir, port
  before_each(function()
    dir = procs.mkdtemp()
    os.execute("chmod 755 " .. dir)
    port = procs.free_port()
    -- a node that ran once: its raft.db holds a bootstrapped cluster
    local pid = procs.spawn({ procs.binary(), "run", "--id", 1, "--peers", "1=127.0.0.1:" .. port,
      "--data", dir .. "/1", KV }, dir .. "/first.log")
    local ok = cluster.sleep and (function()
      for _ = 1, 400 do
        if (procs.read_file(dir .. "/first.log") or ""):find("started", 1, true) then return true end
        cluster.sleep(0.05)
      end
    end)()
    procs.kill(pid, "TERM")
    for _ = 1, 200 do
      if os.execute("kill -0 " .. pid .. " 2>/dev/null") ~= true then break end
      cluster.sleep(0.05)
    end
    assert(ok, procs.read_file(dir .. "/first.log"))
    os.execute("rm -f " .. dir .. "/1/raft.db-wal " .. dir .. "/1/raft.db-shm")
  end)
  after_each(function()
    os.execute("chmod -R u+rwX " .. dir)
    procs.rmdir(dir)
  end)

  it("says a read-only folder is read-only, and that raft.db is intact", function()
    os.execute("chmod 555 " .. dir .. "/1; chmod 644 " .. dir .. "/1/raft.db")
    local code, out = run_as_user(dir .. "/1", port)
    assert.equal(1, code, out)
    assert.truthy(out:find("cannot write in the data directory " .. dir .. "/1", 1, true), out)
    assert.truthy(out:find("raft.db is intact", 1, true), out)
    assert.is_nil(out:find("not a luaraft database", 1, true), out)
    assert.truthy(procs.read_file(dir .. "/1/raft.db"))
  end)

  it("says an unreadable raft.db is a permission problem", function()
    os.execute("chmod 777 " .. dir .. "/1; chmod 600 " .. dir .. "/1/raft.db")
    if not is_root() then os.execute("chmod 000 " .. dir .. "/1/raft.db") end
    local code, out = run_as_user(dir .. "/1", port)
    assert.equal(1, code, out)
    assert.truthy(out:find("cannot open " .. dir .. "/1/raft.db for reading and writing", 1, true), out)
    assert.truthy(out:find("ermission denied", 1, true), out)
    assert.is_nil(out:find("not a luaraft database", 1, true), out)
  end)

  it("says a full disk is full", function()
    -- a small file system of its own: a tmpfs in a private user and mount
    -- namespace (unshare -r -m), which root and ordinary users alike may make
    -- on Debian 12, so the spec always runs
    local pcode, pout = procs.run("unshare -r -m true", 10)
    assert.equal(0, pcode, "unshare -r -m is needed for a private tmpfs: " .. tostring(pout))
    local code, out = procs.run(("unshare -r -m sh -c 'mkdir -p %s/full && mount -t tmpfs -o size=256k tmpfs %s/full " ..
      "&& (dd if=/dev/zero of=%s/full/fill bs=4k 2>/dev/null; true) && %s run --id 1 --peers 1=127.0.0.1:%d " ..
      "--data %s/full/1 %s'"):format(dir, dir, dir, procs.binary(), port, dir, KV), 30)
    assert.equal(1, code, out)
    assert.truthy(out:find("is full", 1, true), out)
    assert.is_nil(out:find("not a luaraft database", 1, true), out)
  end)
end)

describe("a removed node", function()
  local c
  setup(function() c = cluster.new { nodes = 3, state_machine = KV, binary = procs.binary() } end)
  teardown(function() if c then c:close() end end)

  it("logs its removal once and goes quiet, and its former peers log it once", function()
    local l = assert(c:leader(20))
    local victim = l % 3 + 1
    assert.truthy((c:node(l):remove_member(victim)))
    assert.truthy(c:wait_for(function()
      return c:log(victim):find("it was removed from the cluster", 1, true)
    end, 20), c:log(victim))
    -- it keeps dialing its former peers (it may be added back); watch a while
    local others = {}
    for _, id in ipairs(c:ids()) do if id ~= victim then others[#others + 1] = id end end
    local t0 = os.time()
    c:wait_for(function() return os.time() - t0 >= 4 end, 10)
    local log = c:log(victim)
    assert.equal(1, count(log, "it was removed from the cluster"), log)
    -- one warning per former peer at most (then debug level)
    assert.truthy(count(log, "WARN[^\n]*refused us") <= #others, log)
    for _, id in ipairs(others) do
      local plog = c:log(id)
      assert.truthy(count(plog, "WARN[^\n]*%(node " .. victim .. "%)[^\n]*not a member") <= 1, plog)
    end
    -- the cluster goes on
    l = assert(c:leader(20))
    assert.equal(true, (c:node(l):propose({ op = "set", key = "q", value = 1 })))
  end)
end)
