-- A deliberately nondeterministic state machine. {op = "mark", path = p}:
-- the first replica to apply it creates the file p (io is unguarded here) and
-- counts 1000 more than the others. digest() exposes the count, so the
-- replicas' digests disagree from then on.
local count = 0
return {
  unsafe = { io = true },
  apply = function(cmd, meta)
    if type(cmd) == "table" and cmd.op == "mark" then
      local f = io.open(cmd.path, "r")
      if f then
        f:close()
      else
        f = assert(io.open(cmd.path, "w"))
        f:close()
        count = count + 1000
      end
    end
    count = count + 1
    return count
  end,
  query = function() return count end,
  digest = function() return "count=" .. count end,
  snapshot = function() return tostring(count) end,
  restore = function(data) count = tonumber(data) end,
}
