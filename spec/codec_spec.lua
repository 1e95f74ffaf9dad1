-- raft.encode / raft.decode: the deterministic binary codec (API.md section 4;
-- the format is described at the top of src/codec/codec.c).
local raft = require "raft"

local encode, decode = raft.encode, raft.decode

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function unhex(h)
  return (h:gsub("%s", ""):gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

-- Deep equality that tells integers from floats, -0.0 from 0.0, and takes
-- NaN as equal to NaN. Table keys are compared by identity (see the table
-- key tests for those).
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then
    if math.type(a) ~= math.type(b) then return false end
    if a ~= a then return b ~= b end
    if a == 0 and math.type(a) == "float" then return 1 / a == 1 / b end
    return a == b
  end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do
    if not same(v, rawget(b, k)) then return false end
  end
  for k in pairs(b) do
    if rawget(a, k) == nil then return false end
  end
  return true
end

local function round_trip(v)
  local bytes = encode(v)
  assert.is_string(bytes)
  local back = decode(bytes)
  if not same(v, back) then error("value changed in a round trip: " .. hex(bytes)) end
  assert.are.equal(bytes, encode(back))
  return back, bytes
end

-- Asserts that decode(bytes) raises a clean message matching pattern.
local function rejects(bytes, pattern)
  local ok, err = pcall(decode, bytes)
  assert.is_false(ok, "decoded " .. hex(bytes))
  assert.is_string(err)
  assert.matches("^raft%.decode: .+ at byte %d+$", err)
  if pattern then assert.matches(pattern, err) end
  return err
end

local function encode_error(v)
  local ok, err = pcall(encode, v)
  assert.is_false(ok)
  return err
end

local function varint(n)
  local out = {}
  repeat
    local b = n % 128
    n = n // 128
    out[#out + 1] = string.char(n > 0 and b + 128 or b)
  until n == 0
  return table.concat(out)
end

local function nest(depth)
  local root = {}
  local t = root
  for _ = 2, depth do
    t[1] = {}
    t = t[1]
  end
  return root
end

describe("raft.encode and raft.decode", function()
  describe("round trips", function()
    it("keeps nil and booleans", function()
      round_trip(nil)
      round_trip(true)
      round_trip(false)
    end)

    it("keeps integers as integers, including the extremes", function()
      for _, n in ipairs { 0, 1, 63, 127, 128, 255, 300, -1, -64, -65, -128, math.tointeger(2 ^ 53) + 1,
                           math.maxinteger, math.mininteger, math.mininteger + 1 } do
        local back = round_trip(n)
        assert.are.equal("integer", math.type(back))
        assert.are.equal(n, back)
      end
    end)

    it("keeps floats as floats: 1.0, -0.0, inf, -inf and nan survive", function()
      for _, x in ipairs { 1.0, 0.0, -0.0, 0.1, -2.5, 2 ^ 63, -2 ^ 63, 1e308, 5e-324,
                           math.huge, -math.huge, math.pi } do
        local back = round_trip(x)
        assert.are.equal("float", math.type(back))
      end
      assert.are.equal(-math.huge, 1 / decode(encode(-0.0)))
      assert.are.equal(math.huge, 1 / decode(encode(0.0)))
      local nan = decode(encode(0 / 0))
      assert.are.equal("float", math.type(nan))
      assert.is_true(nan ~= nan)
    end)

    it("writes every NaN the same way", function()
      assert.are.equal(encode(0 / 0), encode(-(0 / 0)))
      assert.are.equal(encode(0 / 0), encode(math.huge - math.huge))
    end)

    it("keeps strings of any bytes, embedded zeros included", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      all = table.concat(all)
      assert.are.equal(all, (round_trip(all)))
      assert.are.equal("a\0b\0", (round_trip("a\0b\0")))
      for _, n in ipairs { 0, 1, 63, 64, 65, 127, 128, 1000, 100000 } do
        assert.are.equal(n, #round_trip(("\0x"):rep(n // 2) .. ("y"):rep(n % 2)))
      end
    end)

    it("keeps nested tables", function()
      round_trip { a = { b = { c = { 1, 2, { d = "e", f = { true, false } } } } }, g = {} }
    end)

    it("keeps sequences, maps and mixed tables apart", function()
      round_trip { 1, 2, 3 }
      round_trip { [1] = "a", [3] = "c" }
      round_trip { [2] = "b" }
      round_trip { [0] = 0, 1, 2 }
      round_trip { 1, 2, 3, x = 1 }
      round_trip { [-1] = 1 }
      round_trip {}
    end)

    it("keeps keys of every allowed type", function()
      local back = round_trip { [true] = 1, [false] = 0, [7] = "int", [-7] = "neg",
                                [1.5] = "float", [2 ^ 63] = "huge float", [math.huge] = "inf",
                                ["x y"] = "string", [""] = "empty" }
      assert.are.equal("float", math.type(next({ [2 ^ 63] = 1 })))
      assert.are.equal("huge float", back[2 ^ 63])
    end)

    it("keeps tables as keys", function()
      local back = decode(encode { [{ 1, 2 }] = "pair", [{}] = "empty" })
      local seen = {}
      for k, v in pairs(back) do
        assert.are.equal("table", type(k))
        seen[v] = k
      end
      assert.is_true(same({ 1, 2 }, seen.pair))
      assert.is_true(same({}, seen.empty))
    end)

    it("keeps equal-looking table keys, each with its value", function()
      local bytes = encode { [{}] = 2, [{}] = 1 }
      local back = decode(bytes)
      local values = {}
      for _, v in pairs(back) do values[#values + 1] = v end
      table.sort(values)
      assert.are.same({ 1, 2 }, values)
      assert.are.equal(bytes, encode(back))
    end)

    it("encodes a table shared in two places twice (a DAG is not a cycle)", function()
      local shared = { 1, 2 }
      local back = round_trip { a = shared, b = shared, c = { shared } }
      assert.are_not.equal(back.a, back.b)
    end)

    it("encodes the raw contents of a table with a metatable, calling no metamethod", function()
      local calls = 0
      local function count() calls = calls + 1 end
      local t = setmetatable({ x = 1 }, {
        __index = function() count() return "meta" end,
        __pairs = function() count() return next, {}, nil end,
        __len = function() count() return 99 end,
      })
      local back = decode(encode(t))
      assert.are.equal(0, calls)
      assert.is_nil(getmetatable(back))
      assert.are.same({ x = 1 }, back)
    end)
  end)

  describe("the format", function()
    it("starts every encoding with the version byte 1", function()
      assert.are.equal("\1", encode(nil):sub(1, 1))
    end)

    it("writes small values in one byte", function()
      assert.are.equal("0100", hex(encode(nil)))
      assert.are.equal("0102", hex(encode(true)))
      assert.are.equal("0185", hex(encode(5)))
      assert.are.equal("014161", hex(encode("a")))
    end)

    it("writes a sequence as a compact array and the empty table as an empty array", function()
      assert.are.equal("010603818283", hex(encode { 1, 2, 3 }))
      assert.are.equal("010600", hex(encode {}))
    end)

    it("writes a map with its keys sorted by their encoded bytes", function()
      assert.are.equal("010702416181416282", hex(encode { b = 2, a = 1 }))
      -- shorter strings first (their tag holds the length), then by bytes
      assert.are.equal("01070241628142616182", hex(encode { aa = 2, b = 1 }))
    end)

    it("writes floats as IEEE 754 little-endian and integers as zigzag varints", function()
      assert.are.equal("0103000000000000f03f", hex(encode(1.0)))
      assert.are.equal("010401", hex(encode(-1)))
      assert.are.equal("01048002", hex(encode(128)))
    end)
  end)

  describe("determinism", function()
    it("gives the same bytes whatever the insertion order", function()
      local keys = {}
      for i = 1, 200 do keys[i] = "key" .. i end
      keys[#keys + 1] = 3.25
      keys[#keys + 1] = true
      keys[#keys + 1] = -42
      local function build(order)
        local t = {}
        for _, i in ipairs(order) do t[keys[i]] = i end
        return t
      end
      local forward, backward, shuffled = {}, {}, {}
      for i = 1, #keys do forward[i], backward[#keys + 1 - i], shuffled[i] = i, i, i end
      math.randomseed(7)
      for i = #shuffled, 2, -1 do
        local j = math.random(i)
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
      end
      local a = encode(build(forward))
      assert.are.equal(a, encode(build(backward)))
      assert.are.equal(a, encode(build(shuffled)))
    end)

    it("gives the same bytes after the table was grown and shrunk", function()
      local t = {}
      for i = 1, 1000 do t["k" .. i] = i end
      for i = 4, 1000 do t["k" .. i] = nil end
      assert.are.equal(encode { k1 = 1, k2 = 2, k3 = 3 }, encode(t))
    end)

    it("gives the same bytes in two separate lua5.4 processes", function()
      local program = table.concat({
        'local raft = require "raft"',
        'local t = {}',
        'for i = 1, 100 do t["key" .. i] = { i, i * 1.5, tostring(i) } end',
        't[true] = "yes"; t[2.5] = "float"; t[{ 1 }] = "table key"',
        'io.write((raft.encode(t):gsub(".", function(c) return ("%02x"):format(c:byte()) end)))',
      }, " ")
      local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
      local function run()
        -- stock lua5.4 loads the release raft.so (the sanitizer build needs
        -- the ASan runtime preloaded, which a stock interpreter lacks)
        local build = os.getenv("LUARAFT_RELEASE_BUILD") or "build"
        local cmd = "lua5.4 -e " .. shell_quote("package.cpath = " .. ("%q"):format(build .. "/?.so;" .. package.cpath))
          .. " -e " .. shell_quote(program)
        local p = assert(io.popen(cmd, "r"))
        local out = p:read("a")
        assert.is_true(p:close())
        return out
      end
      local a, b = run(), run()
      assert.is_true(#a > 1000)
      assert.are.equal(a, b)
      local t = decode(unhex(a))
      assert.are.equal("yes", t[true])
    end)
  end)

  describe("encode errors", function()
    it("names the path to a function", function()
      assert.are.equal("raft.encode: cannot encode a function at a.b[3]",
        encode_error { a = { b = { 1, 2, print } } })
      assert.are.equal("raft.encode: cannot encode a function at value", encode_error(print))
    end)

    it("quotes keys that are not identifiers", function()
      assert.are.equal('raft.encode: cannot encode a function at ["x y"][true][2.5]',
        encode_error { ["x y"] = { [true] = { [2.5] = print } } })
    end)

    it("refuses threads and userdata", function()
      assert.matches("cannot encode a thread at co$", encode_error { co = coroutine.create(print) })
      assert.matches("cannot encode a userdata at f$", encode_error { f = io.stdout })
    end)

    it("refuses light userdata", function()
      local cjson = require "cjson" -- installed by scripts/setup; cjson.null is a light userdata
      assert.matches("cannot encode a light userdata at %[1%]$", encode_error { cjson.null })
    end)

    it("refuses a function as a key, at the table holding it", function()
      assert.matches("cannot encode a function as a table key at a$",
        encode_error { a = { [print] = 1 } })
    end)

    it("refuses cycles and names where the cycle closes", function()
      local t = {}
      t.self = t
      assert.matches("cannot encode a cycle at self$", encode_error(t))
      local a = { b = { c = {} } }
      a.b.c[1] = a.b
      assert.matches("cannot encode a cycle at b.c%[1%]$", encode_error(a))
      local k = {}
      k[1] = k
      assert.matches("cannot encode a cycle", encode_error { [k] = 1 })
    end)

    it("accepts 100 nested tables and refuses 101", function()
      round_trip(nest(100))
      assert.matches("nested deeper than 100", encode_error(nest(101)))
    end)

    it("raises on a missing argument", function()
      assert.has_error(function() encode() end)
    end)

    it("still works after an error", function()
      encode_error { print }
      assert.are.equal("010603818283", hex(encode { 1, 2, 3 }))
    end)
  end)

  describe("decoder strictness", function()
    local samples = {
      nil, true, 5, 300, -1, 1.5, "abc", ("z"):rep(100),
      { 1, 2, 3 }, { op = "set", key = "user:1", value = ("v"):rep(70) },
      { a = { b = { 1, { c = 2.5 } } }, [true] = "t" }, { [{ 1 }] = { 2 } },
    }

    it("raises a bad argument error for a non-string", function()
      for _, v in ipairs { 42, {}, true } do
        local ok, err = pcall(decode, v)
        assert.is_false(ok)
        assert.matches("bad argument #1 to .* %(string expected, got %a+%)", err)
      end
    end)

    it("refuses empty input", function()
      rejects("", "truncated input at byte 0")
    end)

    it("refuses every truncation of a valid encoding, cleanly", function()
      for i = 1, #samples do
        local bytes = encode(samples[i])
        for n = 0, #bytes - 1 do rejects(bytes:sub(1, n)) end
      end
      rejects(encode("abc"):sub(1, 4), "truncated input at byte 4")
    end)

    it("refuses trailing bytes", function()
      for i = 1, #samples do
        rejects(encode(samples[i]) .. "\0", "trailing bytes")
      end
    end)

    it("refuses unknown tags and unknown versions", function()
      for tag = 0x08, 0x3f do rejects("\1" .. string.char(tag), "unknown tag") end
      rejects("\2\0", "unknown format version 2")
      rejects("\0\0", "unknown format version 0")
    end)

    it("refuses huge declared lengths fast, without allocating", function()
      local before = collectgarbage("count")
      local t0 = os.clock()
      rejects("\1\5" .. varint(2 ^ 40), "string longer than the input left")
      rejects("\1\6" .. varint(2 ^ 31), "array longer than the input left")
      rejects("\1\7" .. varint(2 ^ 31), "map longer than the input left")
      rejects("\1\6" .. varint(2 ^ 62) .. "\0", "array longer")
      -- n pairs need 2n bytes: 3 pairs in 5 bytes are refused before reading one.
      rejects("\1\7\3\65\97\129\65\98", "map longer than the input left")
      -- Nested tables cannot promise the same bytes twice.
      rejects("\1\6\2\6\4\128\128\128\128", "array longer than the input left")
      assert.is_true(os.clock() - t0 < 0.5)
      assert.is_true(collectgarbage("count") - before < 1024)
    end)

    it("refuses over-long and non-minimal varints", function()
      rejects("\1\4" .. ("\255"):rep(10) .. "\1", "varint")
      rejects("\1\4\255\255\255\255\255\255\255\255\255\2", "varint overflows")
      rejects("\1\4\129\128\0", "non%-canonical varint")
    end)

    it("refuses values not written in their shortest form", function()
      rejects("\1\4\10", "non%-canonical integer")           -- 5 written long
      rejects("\1\5\3abc", "non%-canonical string length")     -- "abc" written long
      rejects("\1\3\0\0\0\0\0\0\248\255", "non%-canonical NaN") -- -nan
      rejects("\1\7\0", "empty map")
      rejects("\1\7\2\129\65\97\130\65\98", "sequence written as a map")
    end)

    it("refuses keys out of canonical order and duplicate keys", function()
      local ordered = encode { a = 1, b = 2 }
      assert.are.equal("\1\7\2\65a\129\65b\130", ordered)
      rejects("\1\7\2\65b\130\65a\129", "out of canonical order")
      rejects("\1\7\2\65a\129\65a\130", "duplicate map key")
      -- Equal table keys must come in order of their values.
      local tk = encode { [{}] = 2, [{}] = 1 }
      assert.are.equal("\1\7\2\6\0\129\6\0\130", tk)
      rejects("\1\7\2\6\0\130\6\0\129", "out of canonical order")
    end)

    it("refuses nil keys, nil values, nil in arrays, NaN keys and integral float keys", function()
      rejects("\1\7\1\0\129", "nil map key")
      rejects("\1\7\1\65a\0", "nil map value")
      rejects("\1\6\2\129\0", "nil in an array")
      rejects("\1\7\1\3\0\0\0\0\0\0\248\127\129", "NaN map key")
      rejects("\1\7\1\3\0\0\0\0\0\0\240\63\129", "float map key with an integer value")
      rejects("\1\7\1\3\0\0\0\0\0\0\0\128\129", "float map key with an integer value") -- -0.0
    end)

    it("refuses a depth bomb", function()
      rejects("\1" .. ("\6\1"):rep(101) .. "\6\0", "nested deeper than 100")
      rejects("\1" .. ("\6\1"):rep(100000), "nested deeper than 100")
      assert.is_table(decode("\1" .. ("\6\1"):rep(99) .. "\6\0"))
    end)

    it("refuses random garbage without crashing", function()
      math.randomseed(99)
      for _ = 1, 3000 do
        local n = math.random(0, 24)
        local b = {}
        for i = 1, n do b[i] = string.char(math.random(0, 255)) end
        local s = "\1" .. table.concat(b)
        local ok, v = pcall(decode, s)
        if ok then
          assert.are.equal(s, encode(v))
        else
          assert.matches("^raft%.decode: .+ at byte %d+$", v)
        end
      end
    end)
  end)

  describe("random values", function()
    local gen_value
    local function gen_scalar(allow_nil)
      local r = math.random(allow_nil and 0 or 1, 9)
      if r == 0 then return nil end
      if r == 1 then return math.random() < 0.5 end
      if r == 2 then return math.random(0, 127) end
      if r == 3 then return math.random(math.mininteger, math.maxinteger) end
      if r == 4 then return (math.random() - 0.5) * 10 ^ math.random(-300, 300) end
      if r == 5 then return ({ 0.0, -0.0, 1.0, math.huge, -math.huge, 0 / 0 })[math.random(6)] end
      if r == 6 then return -math.random(1, 1000) end
      local n = ({ 0, 3, 10, 63, 64, 200 })[math.random(6)]
      local b = {}
      for i = 1, n do b[i] = string.char(math.random(0, 255)) end
      return table.concat(b)
    end
    local function gen_key()
      local k = gen_scalar(false)
      if k ~= k then k = 0.5 end
      return k
    end
    function gen_value(depth)
      if depth > 3 or math.random() < 0.65 then return gen_scalar(true) end
      local t = {}
      if math.random() < 0.5 then
        for i = 1, math.random(0, 8) do
          local v = gen_value(depth + 1)
          t[i] = v == nil and false or v
        end
      else
        for _ = 1, math.random(0, 8) do t[gen_key()] = gen_value(depth + 1) end
      end
      return t
    end

    it("round-trip 3000 values from a seeded generator", function()
      math.randomseed(20240601)
      for i = 1, 3000 do
        local v = gen_value(0)
        local bytes = encode(v)
        local back = decode(bytes)
        if not same(v, back) then error("value " .. i .. " changed: " .. hex(bytes)) end
        assert.are.equal(bytes, encode(back))
      end
    end)
  end)
end)
