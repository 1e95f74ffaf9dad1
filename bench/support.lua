-- Helpers the benchmarks share (bench/*.lua): a shell command's output and
-- a free loopback port. Loaded with dofile from the bench's own folder.
local uv = require "luv"

local support = {}

--- support.sh(cmd) -> what cmd printed (stdout and stderr)
function support.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  p:close()
  return out
end

--- support.free_port() -> a port the kernel just handed out for 127.0.0.1
function support.free_port()
  local s = uv.new_tcp()
  assert(s:bind("127.0.0.1", 0))
  local port = s:getsockname().port
  s:close()
  return port
end

return support
