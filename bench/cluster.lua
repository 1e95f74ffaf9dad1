-- Real-cluster throughput: starts 3 `luaraft run` processes of the KV example
-- on loopback (SQLite, fsync on every batch), then runs `luaraft bench`
-- against the leader with 1 and with 64 concurrent keep-alive clients and
-- prints committed writes per second and p50/p99 latency for each, with
-- the per-stage breakdown (--breakdown) read from the leader and a follower.
-- Usage: luaraft bench/cluster.lua [requests] [size]
--   LUARAFT_RELEASE_BUILD=build picks the node binary (default build/).
local cluster = require "raft.cluster"

local requests = tonumber(arg and arg[1]) or 10000
local size = tonumber(arg and arg[2]) or 100
local build = os.getenv("LUARAFT_RELEASE_BUILD") or "build"
local binary = build .. "/luaraft"

local c = cluster.new { nodes = 3, state_machine = "examples/kv.lua", binary = binary,
  log_level = "warn" }
local ok, err = pcall(function()
  local leader = assert(c:leader(15))
  local http = c:http_address(leader)
  local follower = leader % 3 + 1
  for _, clients in ipairs { 1, 64 } do
    local n = clients == 1 and math.min(requests, 2000) or requests
    local cmd = ("%s bench --http %s --clients %d --requests %d --size %d --progress 0 --breakdown"
      .. " --metrics %s,%s"):format(binary, http, clients, n, size, http, c:http_address(follower))
    print("$ " .. cmd)
    local p = io.popen(cmd .. " 2>&1")
    io.write(p:read("a"))
    p:close()
  end
end)
c:close()
if not ok then error(err, 0) end
