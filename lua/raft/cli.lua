-- The host commands: luaraft run | cluster | ctl | bench.
local cli = {}

function cli.main(command, ...)
  io.stderr:write("luaraft: '" .. command .. "' is not available in this build yet\n")
  return 2
end

return cli
