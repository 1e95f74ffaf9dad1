-- The host commands end to end: `luaraft cluster` starts a local cluster,
-- `luaraft ctl` talks to it, `luaraft bench` measures it, and Ctrl-C (SIGINT
-- to the cluster process) stops every node.
local cjson = require "cjson"
local procs = require "support.procs"

local KV = "examples/kv.lua"

describe("luaraft cluster, ctl and bench", function()
  local dir, pid, hport
  local hports = {}
  local bin = procs.binary()

  local function ctl(args, addr)
    return procs.run(("%s ctl --http 127.0.0.1:%d %s"):format(bin, addr or hport, args), 20)
  end

  setup(function()
    dir = procs.mkdtemp()
    -- free ports (--port 0): the cluster prints each node's addresses
    pid = procs.spawn({ bin, "cluster", "--nodes", "3", "--port", 0, "--http-port", 0,
      "--data", dir .. "/data", "--election-ms", "200", "--heartbeat-ms", "40", KV }, dir .. "/cluster.log")
    local deadline = os.time() + 30
    repeat
      for id, http in (procs.read_file(dir .. "/cluster.log") or ""):gmatch("%[cluster%] node (%d+): pid %d+, peer %S+, http 127%.0%.0%.1:(%d+)") do
        hports[tonumber(id)] = tonumber(http)
      end
      if not hports[3] then procs.run("sleep 0.1") end
    until hports[3] or os.time() > deadline
    assert(hports[1] and hports[2] and hports[3], procs.read_file(dir .. "/cluster.log"))
    hport = hports[1]
  end)

  teardown(function()
    procs.kill(pid, "INT")
    procs.run("sleep 1")
    procs.kill(pid, "KILL")
    -- the node pids the cluster printed, in case it could not stop them
    for npid in (procs.read_file(dir .. "/cluster.log") or ""):gmatch("%[cluster%] node %d+: pid (%d+)") do
      procs.kill(tonumber(npid))
    end
    procs.rmdir(dir)
  end)

  local leader_http

  it("starts three nodes that elect a leader", function()
    local deadline = os.time() + 15
    repeat
      for i = 0, 2 do
        local code, out = ctl("status", hports[i + 1])
        if code == 0 then
          local st = cjson.decode(out)
          if st.role == "leader" then leader_http = hports[i + 1] end
        end
      end
      if not leader_http then procs.run("sleep 0.2") end
    until leader_http or os.time() > deadline
    assert.truthy(leader_http, procs.read_file(dir .. "/cluster.log"))
    local log = procs.read_file(dir .. "/cluster.log")
    assert.truthy(log:match("%[n1%] "), "logs are not prefixed by node id")
    assert.truthy(log:match("%[n3%] "))
  end)

  it("proposes, reads and lists members with ctl", function()
    local code, out = ctl([[propose '{"op":"set","key":"c","value":"v"}']], hports[2])
    assert.equal(0, code, out)
    assert.equal(true, cjson.decode(out).result)
    code, out = ctl([[read '{"key":"c"}']], hports[3])
    assert.equal(0, code, out)
    assert.equal("v", cjson.decode(out).result)
    code, out = ctl("members")
    assert.equal(0, code, out)
    assert.equal(3, #cjson.decode(out).members)
    code, out = ctl("snapshot", leader_http)
    assert.equal(0, code, out)
  end)

  it("exits 1 with the error on stderr for a failing call, and 2 for a bad command", function()
    local code, out = ctl("propose '{\"op\":\"bogus\",\"key\":1}'", leader_http)
    assert.equal(1, code)
    assert.equal("apply_error", cjson.decode(out).error)
    code = ctl("frobnicate")
    assert.equal(2, code)
    code, out = procs.run(bin .. " ctl --http 127.0.0.1:1 status", 10)
    assert.equal(1, code)
    assert.truthy(out:match("127%.0%.0%.1:1"), out)
  end)

  it("measures committed writes with bench", function()
    local code, out = procs.run(("%s bench --http 127.0.0.1:%d --clients 8 --requests 400 --size 50"):format(bin, leader_http), 60)
    assert.equal(0, code, out)
    assert.truthy(out:match("committed: 400 in [%d.]+ s = %d+ writes/s"), out)
    assert.truthy(out:match("p50 [%d.]+  p99 [%d.]+"), out)
  end)

  it("breaks a bench run down by stage from the nodes' /metrics", function()
    local code, out = procs.run(("%s bench --http 127.0.0.1:%d --clients 4 --requests 200 --size 50 --breakdown")
      :format(bin, leader_http), 60)
    assert.equal(0, code, out)
    assert.truthy(out:match("committed: 200 in"), out)
    -- each stage the leader timed over the run: 200 entries (or their batches)
    for _, stage in ipairs { "leader_persist", "ack_commit", "apply" } do
      local count = out:match("\n  " .. stage .. " +(%d+) ")
      assert.truthy(count, stage .. " missing\n" .. out)
      assert.truthy(tonumber(count) >= 1, out)
    end
    -- the leader applied at least the run's 200 entries during it
    assert.truthy(tonumber(out:match("\n  apply +(%d+) ")) >= 200, out)
  end)

  it("stops every node on SIGINT", function()
    procs.kill(pid, "INT")
    local deadline = os.time() + 10
    local alive
    repeat
      procs.run("sleep 0.2")
      alive = false
      for npid in procs.read_file(dir .. "/cluster.log"):gmatch("%[cluster%] node %d+: pid (%d+)") do
        local stat = procs.read_file("/proc/" .. npid .. "/stat")
        if stat and not stat:match("^%d+ %b() Z") then alive = true end
      end
    until not alive or os.time() > deadline
    assert.is_false(alive)
    assert.truthy(procs.read_file(dir .. "/cluster.log"):match("stopping"))
  end)
end)
