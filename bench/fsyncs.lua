-- fsyncs per commit: one `luaraft run` node of the KV example (SQLite,
-- synchronous=FULL) under `strace -c -f -e trace=fsync,fdatasync`, loaded by
-- `luaraft bench` with 1 client; prints strace's summary, the storage batches
-- the node committed (its /metrics luaraft_fsync_seconds_count) and the
-- fsync + fdatasync calls per batch and per write. The node's start (open,
-- election) and stop (the closing checkpoint) are counted too: a few calls.
-- Usage: luaraft bench/fsyncs.lua [requests]   (needs strace)
local uv = require "luv"
local cluster = require "raft.cluster"
local http_client = require "raft.http_client"

local requests = tonumber(arg and arg[1]) or 3000
local build = os.getenv("LUARAFT_RELEASE_BUILD") or "build"
local binary = build .. "/luaraft"

local support = dofile((arg and arg[0] and arg[0]:match("^(.*)/") or "bench") .. "/support.lua")
local sh, free_port = support.sh, support.free_port

local dir = sh("mktemp -d /tmp/luaraft-fsyncs.XXXXXX"):gsub("%s+$", "")
local http = "127.0.0.1:" .. free_port()
local peer = "127.0.0.1:" .. free_port()
local out = dir .. "/strace.txt"
local exited = false
local handle, pid
handle, pid = uv.spawn("strace", { args = { "-c", "-f", "-e", "trace=fsync,fdatasync", "-o", out,
  binary, "run", "--id", "1", "--peers", "1=" .. peer, "--http", http, "--data", dir .. "/1",
  "--log-level", "warn", "examples/kv.lua" }, stdio = { nil, 1, 2 } }, function()
  exited = true
  handle:close()
end)
assert(handle, "cannot start strace: " .. tostring(pid))

local ok, err = pcall(function()
  local host, port = http:match("^(.*):(%d+)$")
  local leader = false
  for _ = 1, 300 do
    local c = http_client.new(host, port)
    local status, body = c:request("GET", "/v1/status", nil, nil, 1)
    c:close()
    if status == 200 and body:find('"role":"leader"', 1, true) then leader = true break end
    cluster.sleep(0.05)
  end
  assert(leader, "the node did not become leader")
  io.write(sh(("%s bench --http %s --clients 1 --requests %d --size 100"):format(binary, http, requests)))
  local m = sh("curl -s --max-time 5 http://" .. http .. "/metrics")
  local batches = tonumber(m:match("\nluaraft_fsync_seconds_count (%d+)"))
  -- the node is strace's child: stop it (SIGTERM), and strace writes its summary
  local child = sh("cat /proc/" .. pid .. "/task/*/children"):match("(%d+)")
  assert(child, "cannot find the node's pid")
  uv.kill(tonumber(child), "sigterm")
  for _ = 1, 600 do
    if exited then break end
    uv.run("once")
    cluster.sleep(0.05)
  end
  local summary = sh("cat " .. out)
  io.write(summary)
  local calls = 0
  for line in summary:gmatch("[^\n]+") do
    local f = {}
    for w in line:gmatch("%S+") do f[#f + 1] = w end
    -- % time, seconds, usecs/call, calls, [errors], syscall
    if (f[#f] == "fsync" or f[#f] == "fdatasync") and tonumber(f[4]) then calls = calls + tonumber(f[4]) end
  end
  print(("storage batches committed: %d; fsync+fdatasync calls: %d = %.3f per batch, %.3f per write")
    :format(batches or 0, calls, calls / (batches or 1), calls / requests))
end)
if not exited then pcall(uv.kill, pid, "sigkill") end
sh("rm -rf " .. dir)
if not ok then error(err, 0) end
