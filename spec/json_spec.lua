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

  it("decodes a body as the HTTP API hands it to apply", function()
    raft.use_luv()
    local http_client = require "raft.http_client"
    local seen
    local n = raft.node {
      id = 1, peers = { [1] = "127.0.0.1:0" }, storage = "memory", http = "127.0.0.1:0",
      election_ms = 50, heartbeat_ms = 10, log_level = "error",
      state_machine = { apply = function(cmd) seen = cmd return true end },
    }
    assert(n:start())
    local body = '{"op": "set", "n": 5, "f": 0.5, "skip": null, "list": [1, 2.0], "obj": {"k": 3}}'
    local status, rbody
    for _ = 1, 200 do -- until the single node has elected itself
      local c = http_client.new("127.0.0.1", n.srv:port())
      status, rbody = c:request("POST", "/v1/propose", body, { ["Content-Type"] = "application/json" }, 5)
      c:close()
      if status == 200 then break end
      raft.sleep(0.05)
    end
    n:stop()
    assert.equal(200, status, rbody)
    assert.same(json.decode(body), seen)
    assert.equal("integer", math.type(seen.n))
    assert.equal("integer", math.type(seen.list[2]))
    assert.equal(raft.encode(json.decode(body)), raft.encode(seen))
  end)
end)
