-- raft.trace and `luaraft trace` (docs/trace.md): simulator runs and
-- raft.cluster runs become luaraft-trace JSON, and the page made from it is
-- rendered by headless Chromium, whose DOM must hold the expected lanes,
-- bands and operations.
local raft = require "raft"
local trace = require "raft.trace"
local cjson = require "cjson"
local procs = require "support.procs"

local function chromium()
  for _, name in ipairs({ "chromium", "chromium-browser", "google-chrome" }) do
    local code = procs.run("sh -c 'command -v " .. name .. "' >/dev/null", 5)
    if code == 0 then return name end
  end
  return nil
end
local browser = chromium()

-- The DOM after the page's script ran. -> dom text
local function render(dir, html_path)
  local cmd = ("%s --headless --no-sandbox --disable-gpu --user-data-dir=%s/chrome "
    .. "--window-size=1200,600 --dump-dom file://%s 2>/dev/null"):format(browser, dir, html_path)
  local code, out = procs.run(cmd, 120)
  assert(code == 0, "chromium failed: " .. out)
  return out
end

local function count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

local function attr(dom, name)
  return dom:match('id="summary"[^>]-data%-' .. name:gsub("%-", "%%-") .. '="([^"]*)"')
end

local function failover_sim()
  local sim = raft.sim { nodes = 3, seed = 11, state_machine = "examples/kv.lua" }
  assert(sim:run_until(function() return sim:leader() end, 5000))
  for i = 1, 20 do sim:propose({ op = "set", key = "k" .. i % 3, value = i }); sim:advance(30) end
  local leader = sim:leader()
  local other = leader % 3 + 1
  sim:partition({ other }, { leader, other % 3 + 1 })
  -- cut off for longer than its timeout: it times out, a failed read (a read
  -- still waiting when the partition heals is asked of the leader again)
  sim:read({ key = "x" }, { node = other, timeout = 500 })
  sim:advance(1000)
  sim:heal()
  sim:crash(leader)
  sim:propose({ op = "incr", key = "n" }, { node = leader }) -- to a crashed node: unknown
  assert(sim:run_until(function() local l = sim:leader() return l and l ~= leader end, 10000))
  sim:restart(leader)
  sim:advance(6000)
  return sim, leader, other
end

describe("raft.trace from a simulator run", function()
  local dir
  before_each(function() dir = procs.mkdtemp() end)
  after_each(function() procs.rmdir(dir) end)

  it("turns sim:trace() and sim:history() into events and ops with outcomes", function()
    local sim <close>, leader, other = failover_sim()
    local t = trace.from_sim(sim)
    assert.equal("luaraft-trace", t.format)
    assert.same({ 1, 2, 3 }, t.nodes)
    local kinds = {}
    for _, e in ipairs(t.events) do kinds[e.kind] = (kinds[e.kind] or 0) + 1 end
    assert.equal(1, kinds.crash)
    assert.equal(1, kinds.restart)
    assert.equal(1, kinds.partition)
    assert.equal(1, kinds.heal)
    assert.truthy(kinds.members >= 3)
    local leaders = {}
    for _, e in ipairs(t.events) do
      if e.kind == "role" and e.role == "leader" then leaders[#leaders + 1] = e.node end
    end
    assert.equal(leader, leaders[1])
    assert.truthy(#leaders >= 2 and leaders[#leaders] ~= leader)
    local out = {}
    for _, op in ipairs(t.ops) do out[op.outcome] = (out[op.outcome] or 0) + 1 end
    assert.equal(22, #t.ops)
    assert.equal(20, out.ok)
    assert.equal(1, out.failed)
    assert.equal(1, out.unknown)
    local failed
    for _, op in ipairs(t.ops) do if op.outcome == "failed" then failed = op end end
    assert.equal(other, failed.node)
    assert.equal("read", failed.kind)
    assert.equal("timeout", failed.error)
    assert.equal("read x", failed.label)
    assert.is_true(t.verdict.linearizable)
    assert.equal("kv", t.verdict.model)
  end)

  it("renders one self-contained page that headless Chromium draws with a lane per node", function()
    local sim <close> = failover_sim()
    local json = dir .. "/run.json"
    assert.is_true(sim:export_trace(json, { title = "spec </script> run" }))
    local html = dir .. "/run.html"
    local code, out = procs.run(("%s trace %s -o %s"):format(procs.binary(), json, html), 30)
    assert.equal(0, code, out)
    assert.truthy(out:find("3 nodes", 1, true), out)
    local page = assert(procs.read_file(html))
    -- self-contained: no scripts, styles or images fetched from anywhere
    assert.is_nil(page:find("<script[^>]-src="))
    assert.is_nil(page:find("<link"))
    assert.is_nil(page:find("<img"))
    assert.is_nil(page:find("url%(['\"]?https?:"))
    assert.equal(2, count(page, "</script>")) -- the title's "</script>" was escaped
    if not browser then
      print("skipped the Chromium rendering: no chromium on PATH (scripts/setup installs it)")
      return
    end
    local dom = render(dir, html)
    assert.truthy(dom:find('data-rendered="1"', 1, true), "the page's script did not finish")
    assert.equal("3", attr(dom, "lanes"))
    assert.equal(3, count(dom, '<g class="lane" data%-node="%d+"'))
    for id = 1, 3 do assert.truthy(dom:find('data-node="' .. id .. '"', 1, true)) end
    assert.equal("22", attr(dom, "ops"))
    assert.equal("20", attr(dom, "ok"))
    assert.equal("1", attr(dom, "failed"))
    assert.equal("1", attr(dom, "unknown"))
    assert.equal("1", attr(dom, "crashes"))
    assert.equal("1", attr(dom, "partitions"))
    assert.equal("ok", attr(dom, "verdict"))
    assert.truthy(tonumber(attr(dom, "leader-changes")) >= 2)
    -- drawn: role segments in the lanes, a partition band, one bar per op
    assert.truthy(count(dom, 'class="seg role%-leader"') >= 2)
    assert.truthy(count(dom, 'class="seg role%-down"') >= 1)
    assert.equal(1, count(dom, 'class="partition"'))
    assert.equal(20, count(dom, 'class="op op%-ok"'))
    assert.equal(1, count(dom, 'class="op op%-failed"'))
    assert.equal(1, count(dom, 'class="op op%-unknown"'))
    assert.truthy(dom:find("linearizable (kv)", 1, true))
    assert.truthy(dom:find("spec &lt;/script&gt; run", 1, true))
  end)

  it("aggregates a long run's operations and shows a failing verdict", function()
    if not browser then
      print("skipped: no chromium on PATH (scripts/setup installs it)")
      return
    end
    -- a 10-minute history of 3000 ops whose last read sees a value never written
    local history = {}
    for i = 1, 3000 do
      history[i] = { kind = "propose", node = i % 3 + 1, cmd = { op = "set", key = "a", value = i },
                     invoke_ms = i * 200, complete_ms = i * 200 + 50, done = true, result = true }
    end
    history[#history + 1] = { kind = "read", node = 1, q = { key = "b" }, invoke_ms = 600500,
                              complete_ms = 600600, done = true, result = -1 }
    local json = dir .. "/history.json"
    local f = assert(io.open(json, "w"))
    f:write(cjson.encode(history))
    f:close()
    local html = dir .. "/history.html"
    local code, out = procs.run(("%s trace %s -o %s --check kv"):format(procs.binary(), json, html), 60)
    assert.equal(0, code, out)
    local dom = render(dir, html)
    assert.equal("3001", attr(dom, "ops"))
    assert.equal("3", attr(dom, "lanes"))
    assert.equal("failed", attr(dom, "verdict"))
    assert.truthy(dom:find("NOT linearizable (kv)", 1, true))
    assert.truthy(dom:find('data-aggregated="1"', 1, true), "3001 ops were drawn one by one")
    assert.equal(0, count(dom, 'class="op op%-ok"'))
    assert.truthy(count(dom, 'class="agg op%-ok"') > 50)
  end)

  it("refuses input that is not a trace with one clear line and exit code 2", function()
    local bad = dir .. "/bad.json"
    local f = assert(io.open(bad, "w"))
    f:write('{"format":"something-else"}')
    f:close()
    local code, out = procs.run(("%s trace %s -o %s/x.html"):format(procs.binary(), bad, dir), 30)
    assert.equal(2, code)
    assert.truthy(out:find('^luaraft trace: .*bad%.json: format is not "luaraft%-trace"'), out)
    code, out = procs.run(("%s trace %s/missing.json"):format(procs.binary(), dir), 30)
    assert.equal(2, code)
    assert.truthy(out:find("^luaraft trace: "), out)
  end)
end)

describe("raft.trace.record on a raft.cluster", function()
  it("records kills, pauses, partitions and roles of real processes", function()
    local c = raft.cluster { nodes = 3, state_machine = "examples/kv.lua", binary = procs.binary() }
    local dir = procs.mkdtemp()
    local ok, err = pcall(function()
      local rec = trace.record(c)
      local l = assert(c:leader(20))
      rec:sample()
      assert.equal(true, (c:node(l):propose { op = "set", key = "a", value = "1" }))
      local f = l % 3 + 1
      c:pause(f)
      assert.equal(true, (c:node(l):propose { op = "set", key = "b", value = "2" }))
      c:resume(f)
      c:kill(l)
      local l2 = assert(c:leader(20))
      rec:sample()
      c:restart(l)
      local third = 6 - l - l2
      c:partition({ l2 }, { l, third })
      c:heal()
      assert.truthy(c:wait_for(function()
        return c:node(l):read({ key = "b" }, { timeout = 1 }) == "2" -- linearizable: it joins the history
      end, 20))
      rec:sample()
      local json = dir .. "/cluster.json"
      assert.is_true(rec:export(json))
      local t = assert(trace.read(json))
      assert.equal("cluster", t.source)
      local kinds = {}
      for _, e in ipairs(t.events) do kinds[e.kind] = (kinds[e.kind] or 0) + 1 end
      assert.equal(1, kinds.crash)
      assert.equal(1, kinds.pause)
      assert.equal(1, kinds.resume)
      assert.equal(1, kinds.partition)
      assert.truthy(kinds.role >= 3)
      assert.is_true(t.verdict.linearizable, t.verdict.message)
      if not browser then
        print("skipped the Chromium rendering: no chromium on PATH")
        return
      end
      local html = dir .. "/cluster.html"
      local code, out = procs.run(("%s trace %s -o %s"):format(procs.binary(), json, html), 30)
      assert.equal(0, code, out)
      local dom = render(dir, html)
      assert.equal("3", attr(dom, "lanes"))
      assert.equal("1", attr(dom, "pauses"))
      assert.equal("1", attr(dom, "crashes"))
      assert.equal(1, count(dom, 'class="pause"'))
      assert.truthy(count(dom, 'class="seg role%-leader"') >= 2)
    end)
    c:close()
    procs.rmdir(dir)
    assert(ok, err)
  end)
end)
