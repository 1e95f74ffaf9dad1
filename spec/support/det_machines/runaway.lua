-- "loop" never ends; the instruction budget stops it on every replica.
local count = 0
return {
  apply = function(cmd, meta)
    if cmd == "loop" then while true do end end
    if cmd == "pcall_loop" then -- a pcall cannot swallow the budget
      while true do pcall(function() while true do end end) end
    end
    count = count + 1
    return count
  end,
  query = function() return count end,
}
