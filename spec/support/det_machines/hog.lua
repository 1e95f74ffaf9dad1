-- {op = "grow", kb = n} keeps n KiB more, forever: memory_max halts the node.
local kept, count = {}, 0
return {
  apply = function(cmd, meta)
    if type(cmd) == "table" and cmd.op == "grow" then
      kept[#kept + 1] = string.rep("x", cmd.kb * 1024 - 1) .. #kept
    end
    count = count + 1
    return count
  end,
  query = function() return count end,
}
