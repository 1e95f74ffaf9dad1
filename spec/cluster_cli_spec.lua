-- `luaraft cluster` supervises its nodes with raft.cluster: a node that dies
-- is restarted on its data unless --no-restart, and SIGINT stops them all.
-- Real processes; bounded waits.
local procs = require "support.procs"
local uv = require "luv"
local cjson = require "cjson.safe"

local function alive(pid) return pid and uv.kill(pid, 0) == 0 end

local function wait(fn, seconds)
  local deadline = uv.hrtime() + seconds * 1e9
  repeat
    local v = fn()
    if v then return v end
    local t = uv.new_timer()
    local fired = false
    t:start(50, 0, function() fired = true; t:close() end)
    while not fired do uv.run("once") end
  until uv.hrtime() > deadline
  return nil
end

local http_client = require "raft.http_client"
local function status(addr)
  local host, port = addr:match("^(.*):(%d+)$")
  local client = http_client.new(host, tonumber(port))
  local code, body = client:request("GET", "/v1/status", nil, nil, 1)
  client:close()
  uv.run("nowait")
  if code ~= 200 then return nil end
  return cjson.decode(body)
end

local function run_cluster(flags)
  local dir = procs.mkdtemp()
  -- free ports (--port 0): a block of consecutive ports picked "free" in
  -- the ephemeral range can be taken meanwhile by an outgoing connection's
  -- source port; the cluster prints the ports it got
  local argv = { procs.binary(), "cluster", "--nodes", "3", "--port", "0",
    "--http-port", "0", "--data", dir .. "/data" }
  for _, f in ipairs(flags) do argv[#argv + 1] = f end
  argv[#argv + 1] = "examples/kv.lua"
  -- started through libuv (not a shell in the background), so this
  -- process's loop reaps it
  local log = assert(uv.fs_open(dir .. "/out", "a", tonumber("644", 8)))
  local exe = table.remove(argv, 1)
  local handle, pid = uv.spawn(exe, { args = argv, stdio = { nil, log, log } }, function() end)
  uv.fs_close(log)
  assert(handle, pid)
  local addrs = {}
  wait(function()
    local out = procs.read_file(dir .. "/out") or ""
    for id, addr in out:gmatch("%[cluster%] node (%d+): pid %d+, peer %S+, http (127%.0%.0%.1:%d+)") do
      addrs[tonumber(id)] = addr
    end
    return addrs[1] and addrs[2] and addrs[3]
  end, 30)
  assert(addrs[1] and addrs[2] and addrs[3], procs.read_file(dir .. "/out"))
  return { pid = pid, handle = handle, dir = dir, addrs = addrs }
end

local function node_pids(cl)
  local t = {}
  for i, a in ipairs(cl.addrs) do
    local st = status(a)
    t[i] = st and st.pid
  end
  return t
end

local function finish(cl)
  local pids = node_pids(cl)
  procs.kill(cl.pid, "INT")
  local stopped = wait(function()
    for _, p in pairs(pids) do if alive(p) then return false end end
    return not alive(cl.pid)
  end, 20)
  procs.kill(cl.pid, "KILL")
  for _, p in pairs(pids) do procs.kill(p, "KILL") end
  wait(function() return not alive(cl.pid) end, 5)
  if not cl.handle:is_closing() then cl.handle:close() end
  uv.run("nowait")
  local out = procs.read_file(cl.dir .. "/out") or ""
  procs.rmdir(cl.dir)
  return stopped, out
end

describe("luaraft cluster", function()
  it("restarts a node that died, on its data, and stops them all on SIGINT", function()
    local cl = run_cluster({})
    local ok, err = pcall(function()
      local first = assert(wait(function()
        local p = node_pids(cl)
        return p[1] and p[2] and p[3] and p
      end, 30), "the nodes did not serve")
      procs.kill(first[2], "KILL")
      local again = wait(function()
        local st = status(cl.addrs[2])
        return st and st.pid ~= first[2] and st.pid
      end, 30)
      assert.truthy(again, "node 2 was not restarted")
      assert.is_false(alive(first[2]))
    end)
    local stopped, out = finish(cl)
    assert(ok, tostring(err) .. "\n" .. out)
    assert.truthy(stopped, "SIGINT did not stop every process\n" .. out)
    assert.truthy(out:find("[cluster] node 2 exited (code 0, signal 9); restarting it", 1, true), out)
    assert.truthy(out:find("[cluster] node 2 restarted: pid", 1, true), out)
    assert.truthy(out:find("[n1] ", 1, true), out) -- node output, prefixed
  end)

  it("leaves a dead node down with --no-restart", function()
    local cl = run_cluster({ "--no-restart" })
    local ok, err = pcall(function()
      local first = assert(wait(function()
        local p = node_pids(cl)
        return p[1] and p[2] and p[3] and p
      end, 30), "the nodes did not serve")
      procs.kill(first[3], "KILL")
      assert.truthy(wait(function() return not alive(first[3]) end, 10))
      -- well past the restart delay, it is still down
      assert.is_nil(wait(function() return status(cl.addrs[3]) end, 3))
    end)
    local stopped, out = finish(cl)
    assert(ok, tostring(err) .. "\n" .. out)
    assert.truthy(stopped, out)
    assert.truthy(out:find("node 3 exited (code 0, signal 9) (--no-restart: left down)", 1, true), out)
  end)
end)
