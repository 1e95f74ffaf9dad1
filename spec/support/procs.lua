-- Process helpers for the integration specs: which binaries to run, raw TCP
-- pokes (garbage on a port), one-shot HTTP calls, temporary folders.
-- Everything here is bounded in time.
local uv = require "luv"

local procs = {}

-- The node processes run the release build when there is one (faster);
-- the specs themselves run under LUARAFT_BUILD (the ASan build).
function procs.binary()
  local build = os.getenv("LUARAFT_RELEASE_BUILD") or os.getenv("LUARAFT_BUILD") or "build"
  return build .. "/luaraft"
end

function procs.free_port()
  local s = uv.new_tcp()
  assert(s:bind("127.0.0.1", 0))
  local port = s:getsockname().port
  s:close()
  uv.run("nowait")
  return port
end

local function split(addr)
  local host, port = addr:match("^(.*):(%d+)$")
  return host, tonumber(port)
end

-- Connects to addr, writes `data`, reads until the peer closes, `until_pat`
-- matches what was read, or `timeout` seconds pass. -> what was read, why
-- it stopped ("closed" | "matched" | "timeout" | an error)
function procs.tcp_exchange(addr, data, timeout, until_pat)
  local host, port = split(addr)
  local sock = uv.new_tcp()
  local got, why = {}, nil
  local timer = uv.new_timer()
  timer:start(math.floor((timeout or 5) * 1000), 0, function() why = why or "timeout" end)
  sock:connect(host, port, function(err)
    if err then why = err return end
    sock:read_start(function(rerr, chunk)
      if rerr then why = why or rerr return end
      if not chunk then why = why or "closed" return end
      got[#got + 1] = chunk
      if until_pat and table.concat(got):find(until_pat) then why = why or "matched" end
    end)
    sock:write(data)
  end)
  while not why do uv.run("once") end
  timer:close()
  if not sock:is_closing() then sock:close() end
  uv.run("nowait")
  return table.concat(got), why
end

-- One HTTP/1.1 request with Connection: close. -> status, body, raw
function procs.http(addr, method, path, body, headers, timeout)
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: " .. addr, "Connection: close" }
  body = body or ""
  lines[#lines + 1] = "Content-Length: " .. #body
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  local raw = procs.tcp_exchange(addr, table.concat(lines, "\r\n") .. "\r\n\r\n" .. body, timeout or 10)
  local status = tonumber(raw:match("^HTTP/1%.%d (%d%d%d)"))
  local rbody = raw:match("\r\n\r\n(.*)$")
  return status, rbody, raw
end

function procs.mkdtemp()
  local p = io.popen("mktemp -d /tmp/luaraft-spec.XXXXXX")
  local dir = p:read("l")
  p:close()
  assert(dir and dir:match("^/tmp/luaraft%-spec%."), "cannot make a temporary folder")
  return dir
end

function procs.rmdir(dir)
  if dir and dir:match("^/tmp/luaraft%-spec%.") then os.execute("rm -rf '" .. dir .. "'") end
end

function procs.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Runs a command line to completion (bounded by `timeout` seconds through
-- coreutils timeout). -> exit code, stdout+stderr
function procs.run(cmdline, timeout)
  local p = io.popen(("timeout -s KILL %d %s 2>&1; echo \"exit:$?\""):format(timeout or 20, cmdline))
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("exit:(%d+)%s*$"))
  return code, out:gsub("exit:%d+%s*$", "")
end

-- Starts a background process (arguments are shell-quoted), output to log.
-- -> pid. Pair with procs.kill in a teardown.
local function quote(a) return "'" .. tostring(a):gsub("'", "'\\''") .. "'" end
function procs.spawn(argv, log)
  local q = {}
  for i, a in ipairs(argv) do q[i] = quote(a) end
  local p = io.popen(("sh -c %s"):format(quote("exec " .. table.concat(q, " ") .. " >>" .. quote(log) .. " 2>&1 & echo $!")))
  local pid = tonumber(p:read("l"))
  p:close()
  return assert(pid, "could not start " .. argv[1])
end

function procs.kill(pid, sig)
  if pid then os.execute(("kill -%s %d 2>/dev/null"):format(sig or "KILL", pid)) end
end

return procs
