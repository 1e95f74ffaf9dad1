-- Failover time after SIGKILL of the leader, on a local 3-node cluster of the
-- KV example (real processes, SQLite): from the kill until the new leader
-- acknowledges a write (survivors' status polled every few ms). Ten runs; prints each,
-- then the median and maximum against election_ms.
-- Usage: luaraft bench/failover.lua [runs] [election_ms]
local uv = require "luv"
local runs = tonumber(arg and arg[1]) or 10
local election_ms = tonumber(arg and arg[2]) or 300

local c = raft.cluster { nodes = 3, state_machine = "examples/kv.lua",
                         election_ms = election_ms, heartbeat_ms = 50, log_level = "warn" }
local times = {}
local ok, err = pcall(function()
  for run = 1, runs do
    local leader = assert(c:leader(10))
    assert(c:node(leader):propose { op = "set", key = "warm", value = run })
        local t0 = uv.hrtime()
    c:kill(leader)
    -- poll the survivors every few ms; once one leads, write through it
    while true do
      local new_leader
      for _, id in ipairs(c:ids()) do
        if id ~= leader then
          local st = c:node(id):status(0.2)
          if st and st.role == "leader" then new_leader = id end
        end
      end
      if new_leader and c:node(new_leader):propose({ op = "set", key = "after", value = run },
                                                   { timeout = 1 }) then
        break
      end
      if (uv.hrtime() - t0) / 1e9 > 10 then error("no failover within 10 s") end
      require("raft.cluster").sleep(0.002)
    end
    local ms = (uv.hrtime() - t0) / 1e6
    times[#times + 1] = ms
    print(string.format("run %2d: node %d killed, write acknowledged after %.0f ms", run, leader, ms))
    c:restart(leader)
    -- let the restarted node catch up before the next kill
    c:wait_for(function()
      local st = c:node(leader):status(1)
      return st and st.applied_index and st.applied_index >= 1 and st.leader ~= nil and st.leader ~= 0
    end, 10)
  end
end)
c:close()
if not ok then error(err, 0) end
table.sort(times)
local median = #times % 2 == 1 and times[(#times + 1) // 2] or (times[#times // 2] + times[#times // 2 + 1]) / 2
print(string.format("failover after SIGKILL of the leader (%d runs, election_ms %d): median %.0f ms (%.2fx), max %.0f ms (%.2fx)",
  #times, election_ms, median, median / election_ms, times[#times], times[#times] / election_ms))
