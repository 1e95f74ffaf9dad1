--- JSON as the HTTP API reads and writes it.
--
-- Debian's lua-cjson (2.1.0) decodes every JSON number as a float, so `5`
-- becomes `5.0`, and a command that works over HTTP (`{"n": 5}` applied as
-- `cmd.n == 5` with `math.type` integer, used as a table key, encoded by
-- `raft.encode`) behaves differently in an embedder's own handler. This module
-- decodes the way the HTTP API does: integral numbers become Lua integers and
-- JSON `null` becomes `nil` (so `null` members vanish from objects).
--
-- It uses its own cjson instance, so its settings do not change the
-- embedder's `require "cjson"`.
-- @module raft.json
local cjson = require("cjson").new()

cjson.decode_invalid_numbers(false)

local json = {}

--- The value cjson decodes JSON `null` to (a light userdata). `normalize`
-- turns it into `nil`; pass it to `encode` to write an explicit `null`.
json.null = cjson.null

--- How deep `normalize` (and so `decode`) follows nested tables.
json.max_depth = 100

local function clean(v, depth)
  if v == cjson.null then return nil end
  if type(v) == "number" then
    -- what overflowed to inf (1e400) is not a number JSON can mean
    if v ~= v or v == math.huge or v == -math.huge then error("number out of range", 0) end
    return math.tointeger(v) or v
  end
  if type(v) == "table" then
    if depth > json.max_depth then error("JSON nested too deeply", 0) end
    local t = {}
    for k, x in pairs(v) do
      local ck = clean(k, depth + 1)
      if ck ~= nil then t[ck] = clean(x, depth + 1) end
    end
    return t
  end
  return v
end

--- Normalises a value decoded by any cjson: integral floats become integers
-- (also as table keys), `null` becomes `nil`; a new table is returned,
-- the argument is not changed.
-- @param value a decoded value
-- @return the normalised value
-- @raise "JSON nested too deeply" beyond `json.max_depth` levels, "number
-- out of range" for NaN or an infinity (1e400 decodes to one)
function json.normalize(value)
  return clean(value, 0)
end

--- Decodes JSON text as the HTTP API decodes a request body.
-- @string text JSON text
-- @return the value: integral numbers as integers, `null` as `nil`
-- @raise "malformed JSON: ..." (with cjson's reason) on bad input
function json.decode(text)
  if type(text) ~= "string" then
    error("raft.json.decode: string expected, got " .. type(text), 2)
  end
  local ok, v = pcall(cjson.decode, text)
  if not ok then error("malformed JSON: " .. tostring(v):gsub("^.-: ", ""), 2) end
  return clean(v, 0)
end

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- The shortest of %.14g..%.17g that reads back as the same float.
local function float(x)
  if x ~= x or x == math.huge or x == -math.huge then
    error("raft.json.encode: " .. tostring(x) .. " is not a JSON number", 0)
  end
  for digits = 14, 17 do
    local s = string.format("%." .. digits .. "g", x)
    if tonumber(s) == x then return s end
  end
  return string.format("%.17g", x)
end

local function key_string(k)
  if type(k) == "string" then return k end
  if math.type(k) == "integer" then return string.format("%d", k) end
  if type(k) == "number" then return float(k) end
  error("raft.json.encode: a " .. type(k) .. " key cannot be a JSON object key", 0)
end

local function encode(v, depth, out)
  local t = type(v)
  if v == nil or v == cjson.null then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif math.type(v) == "integer" then
    out[#out + 1] = string.format("%d", v)
  elseif t == "number" then
    out[#out + 1] = float(v)
  elseif t == "string" then
    out[#out + 1] = quote(v)
  elseif t == "table" then
    if depth > json.max_depth then error("raft.json.encode: nested too deeply (or a cycle)", 0) end
    local n, count = #v, 0
    for _ in pairs(v) do count = count + 1 end
    if n > 0 and n == count then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], depth + 1, out)
      end
      out[#out + 1] = "]"
    else
      -- object: keys sorted, so equal tables give equal text
      local keys = {}
      for k, x in pairs(v) do keys[#keys + 1] = { key_string(k), x } end
      table.sort(keys, function(a, b) return a[1] < b[1] end)
      out[#out + 1] = "{"
      for i, kv in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = quote(kv[1])
        out[#out + 1] = ":"
        encode(kv[2], depth + 1, out)
      end
      out[#out + 1] = "}"
    end
  else
    error("raft.json.encode: a " .. t .. " value cannot be encoded as JSON", 0)
  end
end

--- Encodes a Lua value as JSON text that `decode` reads back to an equal
-- value. Integers are written in full (cjson 2.1.0 rounds them to 14
-- digits), floats with the fewest digits that read back exactly. A table
-- whose keys are exactly 1..n (n > 0) is an array; any other table,
-- the empty one included, is an object with its keys sorted (numbers as
-- strings, so `{[1] = "a", [3] = "b"}` is `{"1":"a","3":"b"}`).
-- @param value nil, boolean, number, string, `json.null` or a table of those
-- @treturn string JSON text
-- @raise on values JSON cannot hold (functions, NaN, infinities, tables
-- nested deeper than `json.max_depth`, cycles)
function json.encode(value)
  local out = {}
  local ok, err = pcall(encode, value, 0, out)
  if not ok then error(err, 2) end
  return table.concat(out)
end

return json
