-- raft.trace: pictures of a run (docs/trace.md).
--
-- A trace is a JSON document (format "luaraft-trace", version 1): the nodes,
-- timed events (roles and terms, crashes, restarts, pauses, partitions,
-- membership, notes), the client operations with their outcome, and the
-- checker's verdict. Producers:
--   trace.from_sim(sim, opts)    a raft.sim run: its trace() text and history()
--   trace.record(c)              a recorder on a raft.cluster: wraps its fault
--                                methods and samples every node's role
--   trace.from_history(ops, opts)  a bare history (a list of ops)
-- and trace.write(t, path) / trace.read(path). trace.html(t) renders one
-- self-contained HTML page (inline SVG drawn by inline JS, no network); the
-- CLI is `luaraft trace INPUT -o OUT.html`.
local cjson = require "cjson"

local M = { FORMAT = "luaraft-trace", VERSION = 1 }

-- Error codes after which an operation certainly had no effect (the
-- checker's reading, lua/raft/check.lua).
local NO_EFFECT = { not_leader = true, too_large = true, busy = true, bad_request = true,
                    apply_error = true }

local function err_code(err)
  if err == nil then return nil end
  if type(err) == "table" then return err.code or "error" end
  return tostring(err)
end

-- "ok" | "failed" | "unknown", as the checker sees the op.
function M.outcome(op)
  local code = err_code(op.err)
  if code then
    if op.kind == "read" or NO_EFFECT[code] then return "failed" end
    return "unknown"
  end
  if op.done == true or op.complete_ms ~= nil and op.done == nil then return "ok" end
  return "unknown"
end

local function short(v, n)
  local s
  if type(v) == "table" then
    local ok, enc = pcall(cjson.encode, v)
    s = ok and enc or tostring(v)
  else
    s = tostring(v)
  end
  s = s:gsub("[%c\128-\255]", "?")
  if #s > n then s = s:sub(1, n - 3) .. "..." end
  return s
end

-- A short text for an op: "set a=1", "incr n", "read a", ...
function M.label(op)
  local x = op.kind == "read" and (op.q or op.query) or op.cmd
  if type(x) == "table" then
    local key = x.key ~= nil and short(x.key, 24) or nil
    if op.kind == "read" then return "read " .. (key or short(x, 40)) end
    if x.op and key then
      if x.op == "set" then return "set " .. key .. "=" .. short(x.value, 20) end
      if x.op == "cas" then return "cas " .. key .. " " .. short(x.old, 12) .. "->" .. short(x.new, 12) end
      return x.op .. " " .. key
    end
    return op.kind .. " " .. short(x, 40)
  end
  return op.kind .. (x ~= nil and " " .. short(x, 40) or "")
end

local function number_or_nil(v)
  if type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge then return v end
  return nil
end

local function convert_ops(history, flagged)
  flagged = flagged or {}
  local ops = {}
  for i, op in ipairs(history or {}) do
    if type(op) == "table" and (op.kind == "propose" or op.kind == "read") and number_or_nil(op.invoke_ms) then
      local outcome = M.outcome(op)
      ops[#ops + 1] = {
        id = i, kind = op.kind, node = op.node, invoke_ms = op.invoke_ms,
        complete_ms = number_or_nil(op.complete_ms),
        outcome = outcome, label = M.label(op), error = err_code(op.err),
        result = outcome == "ok" and op.result ~= nil and short(op.result, 40) or nil,
        counterexample = flagged[op] or nil,
      }
    end
  end
  return ops
end

-- The checker's verdict on history with model (a name or a table model).
-- -> verdict, set of the history's ops in the counterexample
local function verdict(history, model, violation)
  local v = { model = type(model) == "string" and model or (model and "custom") or nil }
  local flagged = {}
  if model then
    local check = require "raft.check"
    local ok, res, cex = pcall(check.linearizable, history, model)
    if not ok then
      v.linearizable, v.message = cjson.null, "the checker failed: " .. tostring(res)
    elseif res == true then
      v.linearizable = true
    else
      v.linearizable = cjson.null -- nil: it gave up
      if res == false then v.linearizable = false end
      v.message = type(cex) == "table" and cex.message or nil
      for _, op in ipairs(type(cex) == "table" and cex.ops or {}) do flagged[op] = true end
    end
  end
  if violation then v.safety = false; v.safety_message = tostring(violation) end
  return v, flagged
end

-- ---- the simulator ----------------------------------------------------------

-- Events of a sim:trace() text; -> events, last time seen.
function M.parse_sim_trace(text)
  local events, last = {}, 0
  local function add(e) events[#events + 1] = e end
  for line in (text or ""):gmatch("[^\n]+") do
    local t, rest = line:match("^%s*(%d+)%s+(.-)%s*$")
    t = tonumber(t)
    if t then
      if t > last then last = t end
      local n, role, term, leader = rest:match("^n(%d+) (%S+) term (%d+) leader (%d+)$")
      if n then
        add { t = t, kind = "role", node = tonumber(n), role = role, term = tonumber(term),
              leader = tonumber(leader) }
      else
        local cfg
        n, cfg = rest:match("^n(%d+) config(.*)$")
        if n then
          local members, learners = {}, {}
          for id, l in cfg:gmatch("(%d+)(L?)") do
            if l == "L" then learners[#learners + 1] = tonumber(id) else members[#members + 1] = tonumber(id) end
          end
          add { t = t, kind = "members", node = tonumber(n), members = members, learners = learners }
        else
          local what, id = rest:match("^(%a[%a_]*) n(%d+)$")
          if what == "crash" or what == "restart" or what == "add_node" or what == "step_down" then
            add { t = t, kind = what == "add_node" and "add" or what, node = tonumber(id) }
          elseif rest:match("^partition ") then
            local byg, order = {}, {}
            for nid, g in rest:gmatch("n(%d+):(%d+)") do
              if not byg[g] then byg[g] = {}; order[#order + 1] = g end
              table.insert(byg[g], tonumber(nid))
            end
            local groups = {}
            for i, g in ipairs(order) do groups[i] = byg[g] end
            add { t = t, kind = "partition", groups = groups }
          elseif rest == "heal" then
            add { t = t, kind = "heal" }
          elseif rest:match("^net ") or rest:match("^link ") or rest:match("^transfer ") then
            add { t = t, kind = "note", text = rest }
          else
            local sn, how, idx = rest:match("^n(%d+) snapshot (%a+) at (%d+)$")
            if sn then
              add { t = t, kind = "snapshot", node = tonumber(sn), how = how, index = tonumber(idx) }
            end
          end
        end
      end
    end
  end
  return events, last
end

--- trace.from_sim(sim, { model = "kv" | table | false, title }) -> trace
function M.from_sim(sim, opts)
  opts = opts or {}
  local events, last = M.parse_sim_trace(sim:trace())
  -- every node of the first configuration starts as a follower of term 0
  local initial, seen = {}, {}
  for _, e in ipairs(events) do
    if e.t == 0 and e.kind == "members" and not seen[e.node] then
      seen[e.node] = true
      initial[#initial + 1] = { t = 0, kind = "role", node = e.node, role = "follower", term = 0, leader = 0 }
    end
  end
  table.move(events, 1, #events, #initial + 1, initial)
  events = initial
  local history = sim:history()
  local end_ms = math.max(sim:now(), last)
  local model = opts.model
  if model == nil then model = "kv" end
  local v, flagged = verdict(history, model, sim:violation())
  return {
    format = M.FORMAT, version = M.VERSION, source = "sim", title = opts.title or "raft.sim run",
    nodes = sim:nodes(), end_ms = end_ms, events = events, ops = convert_ops(history, flagged),
    verdict = v,
  }
end

-- ---- a raft.cluster -------------------------------------------------------

local Recorder = {}
Recorder.__index = Recorder

--- trace.record(c) -> recorder: records c's faults (kill, stop, restart,
-- pause, resume, partition, heal, add_node) with their times, and the role,
-- term and members of every node at each of them and at rec:sample().
function M.record(c)
  local uv = require "luv"
  local rec = setmetatable({ c = c, events = {}, last = {}, uv = uv }, Recorder)
  local function wrap(name, kind, node_arg)
    local orig = c[name]
    c[name] = function(self, ...)
      local args = { ... }
      local r = table.pack(orig(self, ...))
      local e = { t = rec:now(), kind = kind }
      if node_arg then e.node = args[1] end
      if kind == "partition" then e.groups = args end
      rec.events[#rec.events + 1] = e
      if kind == "crash" or kind == "stop" then rec.last[args[1]] = nil end
      return table.unpack(r, 1, r.n)
    end
  end
  wrap("kill", "crash", true)
  wrap("stop", "stop", true)
  wrap("restart", "restart", true)
  wrap("pause", "pause", true)
  wrap("resume", "resume", true)
  wrap("partition", "partition", false)
  wrap("heal", "heal", false)
  wrap("add_node", "add", true)
  return rec
end

function Recorder:now() return self.uv.hrtime() / 1e6 - self.c.t0 end

-- Asks every live node for its status (1 s bound each) and records changes.
function Recorder:sample()
  for _, id in ipairs(self.c:ids()) do
    local p = self.c.procs and self.c.procs[id]
    if p and not p.exited and not p.paused then
      local st = self.c:call(id, "GET", "/v1/status", nil, nil, 1)
      if type(st) == "table" then
        local t = self:now()
        local last = self.last[id] or {}
        if st.role ~= last.role or st.term ~= last.term or st.leader ~= last.leader then
          self.events[#self.events + 1] = { t = t, kind = "role", node = id, role = st.role,
                                            term = st.term, leader = st.leader }
        end
        local ms, ls = {}, {}
        for _, m in ipairs(type(st.members) == "table" and st.members or {}) do
          if type(m) == "table" then
            if m.role == "learner" or m.learner then ls[#ls + 1] = m.id else ms[#ms + 1] = m.id end
          end
        end
        local key = table.concat(ms, ",") .. "/" .. table.concat(ls, ",")
        if key ~= last.members then
          self.events[#self.events + 1] = { t = t, kind = "members", node = id, members = ms, learners = ls }
        end
        self.last[id] = { role = st.role, term = st.term, leader = st.leader, members = key }
      end
    end
  end
end

--- rec:trace({ model = "kv" | false, title }) -> trace
function Recorder:trace(opts)
  opts = opts or {}
  local history = self.c:history()
  local model = opts.model
  if model == nil then model = "kv" end
  local events = {}
  for i, e in ipairs(self.events) do events[i] = e end
  table.sort(events, function(a, b) return a.t < b.t end)
  local v, flagged = verdict(history, model)
  return {
    format = M.FORMAT, version = M.VERSION, source = "cluster",
    title = opts.title or "raft.cluster run", nodes = self.c:ids(), end_ms = self:now(),
    events = events, ops = convert_ops(history, flagged), verdict = v,
  }
end

function Recorder:export(path, opts) return M.write(self:trace(opts), path) end

--- trace.from_history(ops, { model, nodes, title }) -> trace (ops only)
function M.from_history(history, opts)
  opts = opts or {}
  local v, flagged = verdict(history, opts.model)
  local ops = convert_ops(history, flagged)
  local nodes, seen, end_ms = {}, {}, 0
  for _, op in ipairs(ops) do
    if op.node ~= nil and not seen[op.node] then seen[op.node] = true; nodes[#nodes + 1] = op.node end
    end_ms = math.max(end_ms, op.complete_ms or op.invoke_ms)
  end
  table.sort(nodes, function(a, b) return tostring(a) < tostring(b) end)
  return {
    format = M.FORMAT, version = M.VERSION, source = "history", title = opts.title or "history",
    nodes = opts.nodes or nodes, end_ms = end_ms, events = {}, ops = ops, verdict = v,
  }
end

-- ---- files ------------------------------------------------------------------

function M.encode(t) return cjson.encode(t) end

function M.write(t, path)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  f:write(M.encode(t), "\n")
  f:close()
  return true
end

-- Checks the shape a renderer relies on. -> trace | nil, message
function M.validate(t)
  if type(t) ~= "table" then return nil, "not a JSON object" end
  if t.format ~= M.FORMAT then return nil, "format is not \"" .. M.FORMAT .. "\"" end
  if t.version ~= M.VERSION then return nil, "unsupported version " .. tostring(t.version) end
  if type(t.nodes) ~= "table" then return nil, "no nodes list" end
  if t.events ~= nil and type(t.events) ~= "table" then return nil, "events is not a list" end
  if t.ops ~= nil and type(t.ops) ~= "table" then return nil, "ops is not a list" end
  for i, e in ipairs(t.events or {}) do
    if type(e) ~= "table" or type(e.t) ~= "number" or type(e.kind) ~= "string" then
      return nil, "event " .. i .. " needs a number t and a string kind"
    end
  end
  for i, op in ipairs(t.ops or {}) do
    if type(op) ~= "table" or type(op.invoke_ms) ~= "number" then
      return nil, "op " .. i .. " needs a number invoke_ms"
    end
  end
  return t
end

-- Reads a trace, or a bare history (a JSON list of ops, as c:history()
-- encodes), which becomes a trace of ops only. -> trace | nil, message
function M.read(path, opts)
  local f, err = io.open(path, "r")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(cjson.decode, text)
  if not ok then return nil, path .. ": not JSON (" .. tostring(v) .. ")" end
  if type(v) == "table" and v.format == nil and (v[1] ~= nil or next(v) == nil) then
    v = M.from_history(v, opts)
  end
  local t, msg = M.validate(v)
  if not t then return nil, path .. ": " .. msg end
  return t
end

-- ---- the page -------------------------------------------------------------

-- The page: CSS, an SVG element, the trace as JSON, and the script that
-- draws it (kept dense: it ships inside every page).
-- luacheck: push ignore 631
local PAGE = [==[
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>@TITLE@</title>
<style>
body{font:13px/1.35 system-ui,-apple-system,"Segoe UI",sans-serif;margin:12px;color:#222;background:#fff}
h1{font-size:17px;margin:0 0 4px}
#meta{color:#555;margin-bottom:6px}
#verdict{display:inline-block;padding:2px 8px;border-radius:4px;font-weight:600;margin-right:8px}
.v-ok{background:#c8e6c9;color:#1b5e20}.v-bad{background:#ffcdd2;color:#b71c1c}.v-none{background:#eee;color:#555}
#bar{margin:6px 0}
#bar button{font:inherit;margin-right:4px}
#chart{border:1px solid #ddd;cursor:grab;user-select:none;display:block}
#legend span{display:inline-block;margin-right:12px}
#legend i{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin-right:4px;border:1px solid #0002}
#detail{color:#333;min-height:1.4em;margin-top:4px;white-space:pre-wrap}
text{font:11px system-ui,sans-serif}
</style></head><body>
<h1>@TITLE@</h1>
<div id="meta"><span id="verdict" class="v-none">not checked</span><span id="summary"></span></div>
<div id="bar"><button id="zin">zoom in</button><button id="zout">zoom out</button><button id="fit">fit</button>
<span id="range"></span> &middot; wheel: zoom, drag: pan, hover: details</div>
<svg id="chart" xmlns="http://www.w3.org/2000/svg"></svg>
<div id="detail"></div>
<div id="legend"></div>
<script id="trace-data" type="application/json">@DATA@</script>
<script>
(function(){
"use strict";
var D=JSON.parse(document.getElementById("trace-data").textContent);
function arr(x){return Array.isArray(x)?x:[];}
var NODES=arr(D.nodes),EV=arr(D.events),OPS=arr(D.ops);
var ROLE_C={leader:"#2e7d32",follower:"#90a4ae",candidate:"#ef6c00","pre-candidate":"#ffb74d",
  learner:"#7e57c2",down:"#212121",stopped:"#616161",starting:"#e0e0e0",unknown:"#eceff1"};
var OUT_C={ok:"#43a047",failed:"#e53935",unknown:"#fbc02d"};
var END=+D.end_ms||0;
EV.forEach(function(e){if(e.t>END)END=e.t;});
OPS.forEach(function(o){var t=o.complete_ms!=null?o.complete_ms:o.invoke_ms;if(t>END)END=t;});
if(END<=0)END=1;
// per node: role segments, pause bands, membership marks
var lanes={},ids=[];
NODES.forEach(function(n){var k=String(n);ids.push(k);lanes[k]={id:n,segs:[],pauses:[],marks:[],cur:null,from:0,paused:null};});
function lane(n){var k=String(n);if(!lanes[k]){ids.push(k);lanes[k]={id:n,segs:[],pauses:[],marks:[],cur:null,from:0,paused:null};}return lanes[k];}
function close(L,t){if(L.cur)L.segs.push({a:L.from,b:t,role:L.cur.role,term:L.cur.term,leader:L.cur.leader});}
function setRole(L,t,st){close(L,t);L.cur=st;L.from=t;}
var parts=[],curPart=null,leaders=[],counts={crashes:0,pauses:0,partitions:0,leader_changes:0,members:0};
var lastLeader=null;
EV.slice().sort(function(a,b){return a.t-b.t;}).forEach(function(e){
  var t=e.t;
  if(e.kind==="role"){var L=lane(e.node);setRole(L,t,{role:e.role||"unknown",term:e.term,leader:e.leader});
    if(e.role==="leader"){var key=e.node+"/"+e.term;if(key!==lastLeader){lastLeader=key;leaders.push({t:t,node:e.node,term:e.term});counts.leader_changes++;}}}
  else if(e.kind==="crash"||e.kind==="stop"){var L2=lane(e.node);setRole(L2,t,{role:e.kind==="crash"?"down":"stopped"});counts.crashes++;
    if(L2.paused!=null){L2.pauses.push({a:L2.paused,b:t});L2.paused=null;}}
  else if(e.kind==="restart"||e.kind==="add"){var L3=lane(e.node);setRole(L3,t,{role:"starting"});L3.marks.push({t:t,text:e.kind==="add"?"added":"restart"});}
  else if(e.kind==="pause"){var L4=lane(e.node);if(L4.paused==null)L4.paused=t;counts.pauses++;}
  else if(e.kind==="resume"){var L5=lane(e.node);if(L5.paused!=null){L5.pauses.push({a:L5.paused,b:t});L5.paused=null;}}
  else if(e.kind==="partition"){if(curPart){curPart.b=t;parts.push(curPart);}curPart={a:t,groups:arr(e.groups)};counts.partitions++;}
  else if(e.kind==="heal"){if(curPart){curPart.b=t;parts.push(curPart);curPart=null;}}
  else if(e.kind==="members"){var L6=lane(e.node);var txt="members "+arr(e.members).join(" ")+(arr(e.learners).length?" learners "+arr(e.learners).join(" "):"");
    if(L6.lastMembers!==txt){L6.marks.push({t:t,text:txt,members:true});L6.lastMembers=txt;counts.members++;}}
  else if(e.kind==="snapshot"){lane(e.node).marks.push({t:t,text:"snapshot "+(e.how||"")+" at "+e.index});}
  else if(e.kind==="note"){parts.push({a:t,b:t,note:e.text});}
});
ids.forEach(function(k){var L=lanes[k];close(L,END);if(L.paused!=null)L.pauses.push({a:L.paused,b:END});});
if(curPart){curPart.b=END;parts.push(curPart);}
var oc={ok:0,failed:0,unknown:0};OPS.forEach(function(o){oc[o.outcome]=(oc[o.outcome]||0)+1;});
// verdict
var V=D.verdict||{},vEl=document.getElementById("verdict"),vtext="not checked",vcls="v-none";
if(V.linearizable===true){vtext="linearizable ("+(V.model||"model")+")";vcls="v-ok";}
else if(V.linearizable===false){vtext="NOT linearizable ("+(V.model||"model")+")";vcls="v-bad";}
else if(V.model){vtext="checker gave up ("+V.model+")";}
if(V.safety===false){vtext+=" · SAFETY VIOLATION";vcls="v-bad";}
vEl.textContent=vtext;vEl.className=vcls;
if(V.message||V.safety_message)vEl.title=(V.message||"")+" "+(V.safety_message||"");
function fmt(ms){ms=Math.max(0,ms);if(END>=10000){var s=ms/1000;return (s>=600?Math.floor(s/60)+"m"+("0"+Math.floor(s%60)).slice(-2)+"s":(Math.round(s*100)/100)+"s");}return Math.round(ms)+"ms";}
var sm=document.getElementById("summary");
sm.textContent=ids.length+" nodes · "+fmt(END)+" · "+OPS.length+" ops ("+oc.ok+" ok, "+oc.failed+" failed, "+oc.unknown+" unknown) · "+
  counts.leader_changes+" leader changes · "+counts.crashes+" crashes · "+counts.pauses+" pauses · "+counts.partitions+" partitions"+
  (D.source?" · source: "+D.source:"");
var ds=sm.dataset;ds.lanes=ids.length;ds.ops=OPS.length;ds.ok=oc.ok;ds.failed=oc.failed;ds.unknown=oc.unknown;
ds.leaderChanges=counts.leader_changes;ds.crashes=counts.crashes;ds.pauses=counts.pauses;ds.partitions=counts.partitions;
ds.verdict=V.linearizable===true?"ok":V.linearizable===false?"failed":"none";
// legend
var lg=document.getElementById("legend"),lh="";
["leader","follower","pre-candidate","candidate","learner","starting","down","stopped"].forEach(function(r){lh+='<span><i style="background:'+ROLE_C[r]+'"></i>'+r+'</span>';});
lh+='<span><i style="background:repeating-linear-gradient(45deg,#0006 0 2px,#fff0 2px 5px)"></i>paused</span>';
lh+='<span><i style="background:#ff980055"></i>partition</span>';
["ok","failed","unknown"].forEach(function(r){lh+='<span><i style="background:'+OUT_C[r]+'"></i>op '+r+'</span>';});
lg.innerHTML=lh;
// drawing
var svg=document.getElementById("chart"),NS="http://www.w3.org/2000/svg";
var W=Math.max(600,(window.innerWidth||1000)-30),LEFT=70,RIGHT=10,LANE_H=24,GAP=6,OP_ROWS=14,OP_H=7;
var v0=0,v1=END;
function el(name,attrs,parent,text){var x=document.createElementNS(NS,name);for(var k in attrs)x.setAttribute(k,attrs[k]);if(text!=null)x.textContent=text;(parent||svg).appendChild(x);return x;}
function X(t){return LEFT+(t-v0)/(v1-v0)*(W-LEFT-RIGHT);}
function tip(node,text){el("title",{},node,text);}
var det=document.getElementById("detail");
function draw(){
  while(svg.firstChild)svg.removeChild(svg.firstChild);
  var y=0,defs=el("defs",{});
  var pat=el("pattern",{id:"hatch",width:6,height:6,patternUnits:"userSpaceOnUse",patternTransform:"rotate(45)"},defs);
  el("rect",{width:2,height:6,fill:"#000",opacity:0.45},pat);
  var clip=el("clipPath",{id:"plot"},defs);el("rect",{x:LEFT,y:0,width:W-LEFT-RIGHT,height:10000},clip);
  // axis
  var ax=el("g",{"class":"axis"});var span=v1-v0,step=Math.pow(10,Math.floor(Math.log10(span/8)));
  [1,2,5,10].some(function(m){if(span/(step*m)<=10){step*=m;return true;}return false;});
  for(var t=Math.ceil(v0/step)*step;t<=v1;t+=step){el("line",{x1:X(t),x2:X(t),y1:14,y2:20,stroke:"#999"},ax);el("text",{x:X(t)+2,y:11,fill:"#555"},ax,fmt(t));}
  y=22;
  var plot=el("g",{"clip-path":"url(#plot)"});
  // network row: partitions and notes
  el("text",{x:4,y:y+14,fill:"#333"},null,"network");
  var net=el("g",{"class":"network"},plot);
  parts.forEach(function(p){if(p.b<v0||p.a>v1)return;
    if(p.note){var m=el("line",{x1:X(p.a),x2:X(p.a),y1:y+2,y2:y+LANE_H-2,stroke:"#6d4c41"},net);tip(m,fmt(p.a)+" "+p.note);return;}
    var r=el("rect",{"class":"partition",x:X(p.a),y:y+2,width:Math.max(1,X(p.b)-X(p.a)),height:LANE_H-4,fill:"#ff980055",stroke:"#ef6c00"},net);
    var g=p.groups.map(function(x){return arr(x).join(" ");}).join(" | ");
    tip(r,"partition "+g+"\n"+fmt(p.a)+" .. "+fmt(p.b));
    if(X(p.b)-X(p.a)>40)el("text",{x:X(p.a)+3,y:y+16,fill:"#bf360c"},net,g);});
  y+=LANE_H+GAP;
  // node lanes
  ids.forEach(function(k){var L=lanes[k];
    var g=el("g",{"class":"lane","data-node":k});
    el("text",{x:4,y:y+16,fill:"#111","font-weight":"600"},g,"node "+k);
    var pg=el("g",{"clip-path":"url(#plot)"},g);
    el("rect",{x:LEFT,y:y,width:W-LEFT-RIGHT,height:LANE_H,fill:ROLE_C.unknown},pg);
    L.segs.forEach(function(s){if(s.b<v0||s.a>v1)return;var x0=X(Math.max(s.a,v0)),x1=X(Math.min(s.b,v1));
      var r=el("rect",{"class":"seg role-"+s.role,x:x0,y:y,width:Math.max(0.6,x1-x0),height:LANE_H,fill:ROLE_C[s.role]||"#bbb"},pg);
      tip(r,"node "+k+": "+s.role+(s.term!=null?" term "+s.term:"")+(s.leader?" leader "+s.leader:"")+"\n"+fmt(s.a)+" .. "+fmt(s.b));
      if(s.term!=null&&x1-x0>26)el("text",{x:x0+3,y:y+16,fill:s.role==="leader"?"#fff":"#263238"},pg,"t"+s.term);});
    L.pauses.forEach(function(p){if(p.b<v0||p.a>v1)return;var r=el("rect",{"class":"pause",x:X(p.a),y:y,width:Math.max(1,X(p.b)-X(p.a)),height:LANE_H,fill:"url(#hatch)",stroke:"#000"},pg);tip(r,"node "+k+" paused\n"+fmt(p.a)+" .. "+fmt(p.b));});
    L.marks.forEach(function(m){if(m.t<v0||m.t>v1)return;var x=X(m.t);
      var p=el("path",{"class":m.members?"members":"mark",d:"M"+x+" "+(y-1)+" l4 5 l-4 5 l-4 -5 z",fill:m.members?"#7e57c2":"#fff",stroke:"#333"},pg);tip(p,"node "+k+" "+fmt(m.t)+": "+m.text);});
    y+=LANE_H+GAP;});
  // leader changes
  el("text",{x:4,y:y+14,fill:"#333"},null,"leader");
  var lg2=el("g",{"class":"leaders"},plot);
  leaders.forEach(function(l){if(l.t<v0||l.t>v1)return;var x=X(l.t);
    var m=el("line",{x1:x,x2:x,y1:22,y2:y+LANE_H,stroke:"#2e7d32","stroke-dasharray":"2,3",opacity:0.5},lg2);
    var c=el("circle",{cx:x,cy:y+10,r:4,fill:"#2e7d32"},lg2);tip(c,fmt(l.t)+": node "+l.node+" leads term "+l.term);
    tip(m,fmt(l.t)+": node "+l.node+" leads term "+l.term);});
  var lx=-1e9;leaders.forEach(function(l){if(l.t<v0||l.t>v1)return;var x=X(l.t);if(x-lx>44){el("text",{x:x+5,y:y+20,fill:"#1b5e20"},lg2,"n"+l.node+" t"+l.term);lx=x;}});
  y+=LANE_H+GAP;
  // client operations
  el("text",{x:4,y:y+12,fill:"#333"},null,"ops");
  var og=el("g",{"class":"ops"},plot);
  var vis=OPS.filter(function(o){var b=o.complete_ms!=null?o.complete_ms:END;return b>=v0&&o.invoke_ms<=v1;});
  var rows=[],drawn=0,agg=vis.length>600;
  if(!agg){vis.sort(function(a,b){return a.invoke_ms-b.invoke_ms;});
    vis.forEach(function(o){var b=o.complete_ms!=null?o.complete_ms:END,x0=X(o.invoke_ms),x1=Math.max(X(b),x0+2);
      var r=0;while(r<rows.length&&rows[r]>x0-1)r++;if(r>=OP_ROWS){agg=true;return;}rows[r]=x1;
      var rect=el("rect",{"class":"op op-"+o.outcome,x:x0,y:y+r*(OP_H+2),width:x1-x0,height:OP_H,fill:OUT_C[o.outcome]||"#999",stroke:o.counterexample?"#000":"none","stroke-width":o.counterexample?1.5:0},og);
      tip(rect,(o.label||o.kind)+" on node "+o.node+": "+o.outcome+(o.error?" ("+o.error+")":"")+(o.result!=null?" -> "+o.result:"")+(o.counterexample?" [in the counterexample]":"")+"\n"+fmt(o.invoke_ms)+" .. "+(o.complete_ms!=null?fmt(o.complete_ms):"never completed"));drawn++;});}
  if(agg){while(og.firstChild)og.removeChild(og.firstChild);drawn=0;
    var px=4,nb=Math.ceil((W-LEFT-RIGHT)/px),bk=[],mx=1;for(var i=0;i<nb;i++)bk.push({ok:0,failed:0,unknown:0});
    vis.forEach(function(o){var i=Math.floor((X(Math.max(o.invoke_ms,v0))-LEFT)/px);if(i>=0&&i<nb){bk[i][o.outcome]=(bk[i][o.outcome]||0)+1;}});
    bk.forEach(function(b){var s=b.ok+b.failed+b.unknown;if(s>mx)mx=s;});
    var H=OP_ROWS*(OP_H+2);
    bk.forEach(function(b,i){var base=y+H,x=LEFT+i*px;["ok","unknown","failed"].forEach(function(k2){if(!b[k2])return;var h=Math.max(1,b[k2]/mx*H);base-=h;
      var r=el("rect",{"class":"agg op-"+k2,x:x,y:base,width:px-0.5,height:h,fill:OUT_C[k2]},og);
      tip(r,b[k2]+" "+k2+" ops started in "+fmt(v0+(i*px)/(W-LEFT-RIGHT)*(v1-v0))+" .. "+fmt(v0+((i+1)*px)/(W-LEFT-RIGHT)*(v1-v0)));});});
    el("text",{x:LEFT+4,y:y+10,fill:"#555"},og,"aggregated: ops started per "+fmt((v1-v0)*px/(W-LEFT-RIGHT))+" (zoom in for single ops)");}
  y+=(agg?OP_ROWS:Math.max(2,rows.length))*(OP_H+2)+GAP;
  svg.setAttribute("width",W);svg.setAttribute("height",y);svg.setAttribute("viewBox","0 0 "+W+" "+y);
  svg.dataset.visibleOps=vis.length;svg.dataset.drawnOps=drawn;svg.dataset.aggregated=agg?"1":"0";
  document.getElementById("range").textContent=fmt(v0)+" .. "+fmt(v1);
}
function zoom(f,at){var c=at==null?(v0+v1)/2:at,n0=c-(c-v0)*f,n1=c+(v1-c)*f;if(n1-n0<1){return;}if(n1-n0>END){n0=0;n1=END;}
  if(n0<0){n1-=n0;n0=0;}if(n1>END){n0-=n1-END;n1=END;}v0=Math.max(0,n0);v1=n1;draw();}
function tAt(ev){var r=svg.getBoundingClientRect();return v0+(ev.clientX-r.left-LEFT)/(W-LEFT-RIGHT)*(v1-v0);}
svg.addEventListener("wheel",function(ev){ev.preventDefault();zoom(ev.deltaY<0?0.8:1.25,tAt(ev));},{passive:false});
var drag=null;
svg.addEventListener("mousedown",function(ev){drag={x:ev.clientX,v0:v0,v1:v1};svg.style.cursor="grabbing";});
window.addEventListener("mouseup",function(){drag=null;svg.style.cursor="grab";});
window.addEventListener("mousemove",function(ev){if(!drag)return;var dt=(drag.x-ev.clientX)/(W-LEFT-RIGHT)*(drag.v1-drag.v0);
  var n0=drag.v0+dt,n1=drag.v1+dt;if(n0<0){n1-=n0;n0=0;}if(n1>END){n0-=n1-END;n1=END;}v0=Math.max(0,n0);v1=n1;draw();});
svg.addEventListener("mouseover",function(ev){var t=ev.target.querySelector&&ev.target.querySelector("title");det.textContent=t?t.textContent:"";});
document.getElementById("zin").onclick=function(){zoom(0.5);};
document.getElementById("zout").onclick=function(){zoom(2);};
document.getElementById("fit").onclick=function(){v0=0;v1=END;draw();};
draw();
document.body.dataset.rendered="1";
})();
</script></body></html>
]==]
-- luacheck: pop

local function html_escape(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

--- trace.html(t) -> the page, one self-contained string
function M.html(t)
  -- "<" never appears raw inside the script element: no "</script>" or "<!--"
  local data = M.encode(t):gsub("<", "\\u003c")
  local title = html_escape(t.title or "luaraft trace")
  return (PAGE:gsub("@TITLE@", function() return title end):gsub("@DATA@", function() return data end))
end

return M
