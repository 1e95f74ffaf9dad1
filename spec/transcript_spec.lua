-- Scenario transcripts (spec/transcripts/*.txt), in the style of etcd-io/raft's testdata/.
--
-- A transcript is a list of commands, each followed by "----" and the output it
-- must print, ended by a blank line. Lines starting with "#" are comments.
--
--   # A leader that loses its quorum steps down (thesis 6.2).
--   sim nodes=3 seed=7
--   ----
--   ok
--
-- Commands (ids are node ids; times and timeouts are virtual milliseconds):
--   sim nodes=3 seed=7 election_ms=300 ...    raft.sim with these options
--                                             (state_machine: examples/kv.lua)
--   advance 700                               sim:advance; prints "now N ms"
--   run-until-leader timeout=5000             prints the leader, term and time
--   propose node=1 key=x value=1 timeout=1500 a set command; prints its ticket
--   read node=1 key=x consistency=stale       prints its ticket
--   wait ticket=2 timeout=3000                sim:wait; prints the ticket
--   isolate 2 | partition 1,2/3 | heal        the network
--   crash 1 | restart 1                       a node
--   status [1,2]                              role, term, leader, indexes
--   trace-since                               trace lines not printed yet
--   check                                     "ok" or the violation
-- Every command prints the sim:trace() lines written since the last print (so
-- commands that move time show what happened meanwhile), then its result, or
-- "ok" when there is nothing else to say. A ticket number is the request id
-- the trace shows as "#n". Each cluster is checked with sim:check() when the
-- transcript moves on from it, so no safety invariant may break even where
-- none is asked for.
--
-- LUARAFT_REWRITE=1 rewrites the files with the outputs the code prints now,
-- to be reviewed as a git diff; without it a mismatch fails with a diff.
local raft = require "raft"

local DIR = "spec/transcripts"
local REWRITE = os.getenv("LUARAFT_REWRITE") == "1"

-- ---- parsing ---------------------------------------------------------------
local function read_lines(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  if lines[#lines] == "" then lines[#lines] = nil end -- the final newline
  return lines
end

local function is_blank(line) return line:match("^%s*$") ~= nil end

-- Returns a list of items: { raw = line } for comments and blank lines, or
-- { line = n, text = "advance 700", expected = { ... } } for a command.
local function parse(path, lines)
  local items, i = {}, 1
  while i <= #lines do
    local line = lines[i]
    if is_blank(line) or line:match("^%s*#") then
      items[#items + 1] = { raw = line }
      i = i + 1
    else
      local item = { line = i, text = line, expected = {} }
      if lines[i + 1] ~= "----" then
        error(string.format("%s:%d: command %q is not followed by a ---- line", path, i, line), 0)
      end
      i = i + 2
      while i <= #lines and not is_blank(lines[i]) do
        item.expected[#item.expected + 1] = lines[i]
        i = i + 1
      end
      items[#items + 1] = item
    end
  end
  return items
end

-- "propose node=2 key=x value=1" -> "propose", { "node=2", ... }, { node = 2, ... }
local function words(text)
  local name, rest = text:match("^%s*(%S+)%s*(.-)%s*$")
  local pos, args = {}, {}
  for w in rest:gmatch("%S+") do
    local k, v = w:match("^([%w_]+)=(.*)$")
    if k then
      if v == "true" then v = true
      elseif v == "false" then v = false
      else v = math.tointeger(tonumber(v)) or tonumber(v) or v end
      args[k] = v
    else
      pos[#pos + 1] = w
    end
  end
  return name, pos, args
end

-- ---- rendering -------------------------------------------------------------
local function render_value(v)
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local function render_ticket(t)
  local head = string.format("%s #%d on n%d", t.kind, t.id, t.node)
  if not t.done then return head .. ": pending" end
  if t.err then
    return string.format("%s: error %s at %d ms", head, t.err.code, t.complete_ms)
  end
  return string.format("%s: ok %s at %d ms", head, render_value(t.result), t.complete_ms)
end

local function render_status(sim, id)
  local st = sim:status(id)
  if not st.up then return string.format("n%d: down", id) end
  local leader = st.leader and st.leader ~= 0 and ("n" .. st.leader) or "none"
  return string.format("n%d: %s term %d leader %s commit %d applied %d last %d", id, st.role,
                       st.term, leader, st.commit_index, st.applied_index, st.last_index)
end

-- "1,2" -> { 1, 2 }
local function ids(s)
  local list = {}
  for n in tostring(s):gmatch("%d+") do list[#list + 1] = tonumber(n) end
  return list
end

-- ---- execution -------------------------------------------------------------
local Run = {}
Run.__index = Run

local function need(v, what)
  if v == nil then error("missing argument " .. what, 0) end
  return v
end

-- The trace lines written since the last call, with the time column trimmed.
function Run:new_trace(out)
  local text = self.sim:trace()
  for line in text:sub(self.trace_pos + 1):gmatch("[^\n]+") do
    local t, rest = line:match("^%s*(%d+) (.*)$")
    out[#out + 1] = t and string.format("%5d %s", tonumber(t), rest) or line
  end
  self.trace_pos = #text
end

function Run:ticket(args)
  local id = need(args.ticket, "ticket=")
  return self.tickets[id] or error("no ticket #" .. id, 0)
end

local commands = {}

function commands.sim(run, _, args, out)
  if run.sim then run.sim:check() end -- the previous cluster, before it is dropped
  local opts = { state_machine = "examples/kv.lua" }
  for k, v in pairs(args) do opts[k] = v end
  run.sim, run.trace_pos, run.tickets = raft.sim(opts), 0, {}
  out[#out + 1] = "ok"
end

function commands.advance(run, pos, _, out)
  run.sim:advance(need(tonumber(pos[1]), "milliseconds"))
  run:new_trace(out)
  out[#out + 1] = string.format("now %d ms", run.sim:now())
end

function commands.run_until_leader(run, _, args, out)
  local sim = run.sim
  local found = sim:run_until(function() return sim:leader() ~= nil end, args.timeout or 10000)
  run:new_trace(out)
  if found then
    local id = sim:leader()
    out[#out + 1] = string.format("leader n%d term %d at %d ms", id, sim:status(id).term, sim:now())
  else
    out[#out + 1] = string.format("no leader at %d ms", sim:now())
  end
end

local function submit(run, t, out)
  run.tickets[t.id] = t
  run:new_trace(out)
  out[#out + 1] = render_ticket(t)
end

function commands.propose(run, _, args, out)
  local cmd = { op = "set", key = need(args.key, "key="), value = need(args.value, "value=") }
  submit(run, run.sim:propose(cmd, { node = args.node, timeout = args.timeout }), out)
end

function commands.read(run, _, args, out)
  local opts = { node = args.node, consistency = args.consistency, timeout = args.timeout }
  submit(run, run.sim:read({ key = need(args.key, "key=") }, opts), out)
end

function commands.wait(run, _, args, out)
  local t = run:ticket(args)
  run.sim:wait(t, args.timeout)
  run:new_trace(out)
  out[#out + 1] = render_ticket(t)
end

function commands.isolate(run, pos, _, out)
  run.sim:isolate(need(tonumber(pos[1]), "node id"))
  run:new_trace(out)
end

function commands.partition(run, pos, _, out)
  local groups = {}
  for g in need(pos[1], "groups like 1,2/3"):gmatch("[^/]+") do groups[#groups + 1] = ids(g) end
  run.sim:partition(table.unpack(groups))
  run:new_trace(out)
end

function commands.heal(run, _, _, out)
  run.sim:heal()
  run:new_trace(out)
end

function commands.crash(run, pos, _, out)
  local ok, err = run.sim:crash(need(tonumber(pos[1]), "node id"))
  if not ok and err then error("crash: " .. tostring(err), 0) end
  run:new_trace(out)
end

function commands.restart(run, pos, _, out)
  run.sim:restart(need(tonumber(pos[1]), "node id"))
  run:new_trace(out)
end

-- status [1,2]: every node when no list is given.
function commands.status(run, pos, _, out)
  local list = pos[1] and ids(pos[1]) or run.sim:nodes()
  for _, id in ipairs(list) do out[#out + 1] = render_status(run.sim, id) end
end

function commands.trace_since(run, _, _, out)
  run:new_trace(out)
  if #out == 0 then out[1] = "(no new trace)" end
end

function commands.check(run, _, _, out)
  local v = run.sim:violation()
  out[#out + 1] = v and ("violation " .. v) or "ok"
end

local function execute(run, item, path)
  local name, pos, args = words(item.text)
  local fn = commands[name:gsub("-", "_")]
  if not fn then error(string.format("%s:%d: unknown command %q", path, item.line, name), 0) end
  if name ~= "sim" and not run.sim then
    error(string.format("%s:%d: %s before sim", path, item.line, name), 0)
  end
  local out = {}
  local ok, err = pcall(fn, run, pos, args, out)
  if not ok then error(string.format("%s:%d: %s: %s", path, item.line, item.text, err), 0) end
  if #out == 0 then out[1] = "ok" end
  return out
end

-- ---- comparing -------------------------------------------------------------
-- A line diff by longest common subsequence: " " same, "-" expected, "+" got.
local function diff(a, b)
  local n, m, L = #a, #b, {}
  for i = n + 1, 1, -1 do
    L[i] = {}
    for j = m + 1, 1, -1 do
      if i > n or j > m then L[i][j] = 0
      elseif a[i] == b[j] then L[i][j] = L[i + 1][j + 1] + 1
      else L[i][j] = math.max(L[i + 1][j], L[i][j + 1]) end
    end
  end
  local lines, i, j = {}, 1, 1
  while i <= n or j <= m do
    if i <= n and j <= m and a[i] == b[j] then
      lines[#lines + 1] = "  " .. a[i]; i, j = i + 1, j + 1
    elseif i <= n and (j > m or L[i + 1][j] >= L[i][j + 1]) then
      lines[#lines + 1] = "- " .. a[i]; i = i + 1
    else
      lines[#lines + 1] = "+ " .. b[j]; j = j + 1
    end
  end
  return table.concat(lines, "\n")
end

local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

local function rewrite(path, items)
  local lines = {}
  for _, item in ipairs(items) do
    if item.raw then
      lines[#lines + 1] = item.raw
    else
      lines[#lines + 1] = item.text
      lines[#lines + 1] = "----"
      for _, l in ipairs(item.got) do lines[#lines + 1] = l end
    end
  end
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
end

-- Runs one transcript; returns the mismatches as readable text, or nil.
local function run_file(path)
  local items = parse(path, read_lines(path))
  local run = setmetatable({}, Run)
  local failures = {}
  for _, item in ipairs(items) do
    if not item.raw then
      item.got = execute(run, item, path)
      if not same(item.expected, item.got) then
        failures[#failures + 1] = string.format("%s:%d: %s\n%s", path, item.line, item.text,
                                                diff(item.expected, item.got))
      end
    end
  end
  if run.sim then run.sim:check() end
  if REWRITE then
    rewrite(path, items)
    return nil
  end
  if #failures > 0 then
    return table.concat(failures, "\n\n") ..
           "\n(- expected, + got; LUARAFT_REWRITE=1 rewrites the files with what we got)"
  end
end

-- The first sentence of the file's opening comment names the behaviour it proves.
local function title(path)
  local parts = {}
  for _, line in ipairs(read_lines(path)) do
    local c = line:match("^#%s*(.-)%s*$")
    if not c then break end
    parts[#parts + 1] = c
  end
  local text = table.concat(parts, " ")
  return text:match("^(.-%.)%s") or text:match("^(.-%.)$") or text
end

local function transcripts()
  local files = {}
  local p = assert(io.popen("ls -1 " .. DIR .. "/*.txt 2>/dev/null"))
  for f in p:lines() do files[#files + 1] = f end
  p:close()
  table.sort(files)
  return files
end

describe("scenario transcripts", function()
  local files = transcripts()

  it("finds transcripts in " .. DIR, function()
    assert.is_true(#files > 0)
  end)

  for _, path in ipairs(files) do
    it(path:match("[^/]+$") .. ": " .. title(path), function()
      local failure = run_file(path)
      if failure then error("\n" .. failure, 0) end
    end)
  end
end)
