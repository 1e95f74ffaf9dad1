-- Regression for issue 10's first bullet: a write answered `not_leader` was
-- applied. Found by scripts/soak --mix issue10 (3 nodes; drop 3 %, duplicate
-- 3 %, delay 1-40 ms reordered; random crashes, restarts and partitions; five
-- clients on three keys, each request sent to a random node) at seed
-- 1023963, the 23,963rd seed of the run (the issue saw about one in 21,000).
-- In that run, on key "a":
--   #212 set a = 4       -> true        [8059, 8098] node 2
--   #213 read a          -> 4           [8059, 8102] node 1
--   #228 set a = 3       -> not_leader  [8703, 8769] node 2
--   #229 cas a 3 -> 1    -> true        [8761, 8864] node 3
-- The cas found 3, which only #228 writes: #228 was applied although its
-- proposer answered "not applied". raft.check.linearizable rejects the
-- history (not_leader counts as "no effect").
-- Seed 1039365 of the same run is a second case, on key "a":
--   #105 set a = 2       -> not_leader  [4370, 4384] node 1
--   #125 incr a by 2     -> 4           [5298, 5387] node 3
-- (every earlier write to "a" failed with not_leader, except an incr by 1
-- and a del of unknown outcome: only #105 can have made the 2).
--
-- The driver no longer answers a refusal of a forwarded proposal (the
-- refusing node may append a late duplicate of it once it leads): the
-- proposal goes to the next leader, and its outcome comes from its own
-- entry or a timeout ("unknown"). Both seeds failed before that change
-- (linearizable returned false); with it they run without a false "not
-- applied" answer. spec/failover_sim_spec.lua pins five more seeds of a
-- generator aimed at this bug. The seed depends on the generator in
-- spec/sim_random_spec.lua (mixed() with the issue10 mix): changing that
-- generator changes what the seed runs.
do
  local gen = dofile("spec/sim_random_spec.lua")

  describe("a write answered not_leader (issue 10)", function()
    for _, seed in ipairs { 1023963, 1039365 } do
      it("is never applied: seed " .. seed .. " of the issue10 mix is linearizable", function()
        local ok, msg, sim = gen.mixed(seed, { mix = "issue10" })
        sim:close()
        assert(ok == true, msg)
      end)
    end
  end)
end
