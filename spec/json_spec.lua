-- raft.json: JSON decoded the way the HTTP API decodes a request body
-- (integral numbers as integers, null as nil), and encoded so that it reads
-- back to an equal value. The last test sends the same body to a real node's
-- HTTP API and compares what its apply saw with raft.json.decode.
local raft = require "raft"
local json = raft.json

describe("raft.json", function()
  it("is the module the HTTP API shares", function()
    assert.equal(require "raft.json", json)
  end)

  it("decodes integral numbers as integers and keeps fractions", function()
    local v = json.decode('{"n": 5, "f": 5.5, "e": 1e3, "neg": -7, "list": [1, 2.0, 3]}')
    assert.equal("integer", math.type(v.n))
    assert.equal(5, v.n)
    assert.equal("float", math.type(v.f))
    assert.equal("integer", math.type(v.e))
    assert.equal(1000, v.e)
    assert.equal(-7, v.neg)
    for i = 1, 3 do assert.equal("integer", math.type(v.list[i])) end
    assert.equal("integer", math.type(json.decode("5")))
  end)

  it("turns null into nil, also inside tables", function()
    local v = json.decode('{"a": null, "b": [1, {"c": null, "d": true}]}')
    assert.is_nil(v.a)
    assert.same({ 1, { d = true } }, v.b)
    assert.is_nil(json.decode("null"))
  end)

  it("gives the same raft.encode bytes as the equivalent Lua table", function()
    local v = json.decode('{"op": "set", "key": "k", "value": 42, "tags": ["a", "b"]}')
    assert.equal(raft.encode { op = "set", key = "k", value = 42, tags = { "a", "b" } }, raft.encode(v))
  end)

  it("normalises a value decoded by another cjson without changing it", function()
    local cjson = require "cjson"
    local raw = cjson.decode('{"n": 5, "x": null}')
    assert.equal("float", math.type(raw.n))
    local v = json.normalize(raw)
    assert.equal("integer", math.type(v.n))
    assert.is_nil(v.x)
    assert.equal("float", math.type(raw.n))
    assert.equal(cjson.null, raw.x)
  end)

  it("raises a clear error on malformed JSON and on non-strings", function()
    local ok, err = pcall(json.decode, '{"op": ')
    assert.is_false(ok)
    assert.matches("malformed JSON", err)
    assert.has_error(function() json.decode(5) end, "raft.json.decode: string expected, got number")
  end)

  it("limits nesting", function()
    local deep = string.rep("[", 150) .. string.rep("]", 150)
    local ok, err = pcall(json.decode, deep)
    assert.is_false(ok)
    assert.matches("nested too deeply", tostring(err))
  end)

  it("encodes integers in full and floats exactly, and reads them back", function()
    assert.equal("123456789012345", json.encode(123456789012345))
    assert.equal("9007199254740992", json.encode(1 << 53))
    assert.equal("0.1", json.encode(0.1))
    for _, x in ipairs { 0.1, 1 / 3, 1e300, -2.5e-8, 123456789012345, -(1 << 53) } do
      local back = json.decode(json.encode(x))
      assert.equal(x, back)
    end
  end)

  it("encodes arrays, objects with sorted keys, null and escapes", function()
    assert.equal('[1,2,"x"]', json.encode { 1, 2, "x" })
    assert.equal('{"a":1,"b":[true,false],"c":null}', json.encode { c = json.null, b = { true, false }, a = 1 })
    assert.equal('{"1":"a","3":"b"}', json.encode { [1] = "a", [3] = "b" })
    assert.equal("{}", json.encode {})
    assert.equal("null", json.encode(nil))
    assert.equal('"q\\"b\\\\n\\n\\u0001"', json.encode('q"b\\n\n\1'))
    local v = { op = "set", key = "k", value = { 1, 2.5, "three", { deep = true } } }
    assert.same(v, json.decode(json.encode(v)))
  end)

  it("refuses what JSON cannot hold", function()
    assert.has_error(function() json.encode(0 / 0) end)
    assert.has_error(function() json.encode(math.huge) end)
    assert.has_error(function() json.encode { f = print } end)
    local cycle = {}
    cycle.self = cycle
    local ok, err = pcall(json.encode, cycle)
    assert.is_false(ok)
    assert.matches("nested too deeply", err)
  end)

  it("decodes a body as a real node's HTTP API hands it to apply", function()
    local cluster = require "raft.cluster"
    local procs = require "support.procs"
    local dir = procs.mkdtemp()
    local sm = dir .. "/echo.lua"
    local f = assert(io.open(sm, "w"))
    -- apply answers with the hex of raft.encode(cmd): the exact value it saw
    f:write([[return { apply = function(cmd)
      return (raft.encode(cmd):gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
    end }]])
    f:close()
    local function hex(s) return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end)) end
    local body = '{"op": "set", "n": 5, "f": 0.5, "skip": null, "list": [1, 2.0], "obj": {"k": 3}}'
    local c = cluster.new { nodes = 1, state_machine = sm, binary = procs.binary() }
    local ok, err = pcall(function()
      assert(c:leader(15))
      local res = assert(c:call(1, "POST", "/v1/propose", body, { ["Content-Type"] = "application/json" }, 10))
      local seen = res.result
      assert.equal(hex(raft.encode(json.decode(body))), seen)
      -- plain cjson decodes 5 as 5.0, which encodes differently: the reason for raft.json
      local raw = require("cjson").decode('{"n": 5}')
      assert.are_not.equal(raft.encode(raw), raft.encode(json.decode('{"n": 5}')))
    end)
    c:close()
    procs.rmdir(dir)
    collectgarbage()
    assert(ok, err)
  end)
end)
