-- Codec throughput: raft.encode / raft.decode against lua-cjson, on the same
-- realistic mix of commands and results, in the same run.
--
-- Usage: lua5.4 bench/codec.lua [BUILD_DIR] [SECONDS_PER_MEASURE]
--   BUILD_DIR (default "build") holds raft.so.
-- Prints, for encode and decode:
--   encode  luaraft  123.4 MB/s  1.23 M values/s | cjson 100.0 MB/s  1.00 M values/s | ratio 1.23x
-- MB/s counts each codec's own bytes (its output when encoding, its input when
-- decoding); the ratio compares values/s, the work a node actually does.
local build = arg[1] or "build"
local seconds = tonumber(arg[2]) or 1.0
package.cpath = build .. "/?.so;" .. package.cpath

local raft = require "raft"
local ok, cjson = pcall(require, "cjson")
if not ok then
  io.stderr:write("bench/codec.lua: lua-cjson is not installed; measuring luaraft alone\n")
  cjson = nil
end

-- A deterministic mix, the shape of what a key-value state machine sees.
local function make_mix(n)
  math.randomseed(42)
  local function key() return "user:" .. math.random(1, 99999) end
  local function str(len)
    local b = {}
    for i = 1, len do b[i] = string.char(math.random(97, 122)) end
    return table.concat(b)
  end
  local values = {}
  for i = 1, n do
    local r = math.random(100)
    local v
    if r <= 35 then
      v = { op = "set", key = key(), value = str(100) }
    elseif r <= 50 then
      v = { op = "incr", key = key(), by = 3 }
    elseif r <= 58 then
      v = { op = "cas", key = key(), old = str(20), new = str(20) }
    elseif r <= 63 then
      v = { op = "del", key = key() }
    elseif r <= 71 then
      v = true
    elseif r <= 77 then
      v = math.random(1, 1000000)
    elseif r <= 83 then
      v = str(math.random(5, 40))
    elseif r <= 92 then -- a small nested table: a batch, or a result record
      if r % 2 == 0 then
        v = { op = "batch", ops = { { op = "set", key = key(), value = str(16) },
                                    { op = "del", key = key() } } }
      else
        v = { ok = true, index = math.random(1, 1e9), term = 7,
              result = { value = str(12), version = math.random(1, 100), ttl = 2.5 } }
      end
    elseif r <= 96 then -- a 50-element array
      v = {}
      for j = 1, 50 do v[j] = math.random(1, 1e6) end
    else -- a 20-key map
      v = {}
      for j = 1, 20 do v["field_" .. j] = (j % 3 == 0) and str(8) or math.random(1, 1e6) end
    end
    values[i] = v
  end
  return values
end

local values = make_mix(2000)

-- Runs fn(values or encoded) repeatedly for about `seconds`, best of 3 rounds;
-- returns values per second and bytes per second.
local function measure(fn, inputs, bytes_per_pass)
  local best = 0
  for _ = 1, 3 do
    local passes, t0 = 0, os.clock()
    local elapsed
    repeat
      fn(inputs)
      passes = passes + 1
      elapsed = os.clock() - t0
    until elapsed >= seconds / 3
    local rate = passes / elapsed
    if rate > best then best = rate end
  end
  return best * #inputs, best * bytes_per_pass
end

local function encode_all(codec_encode)
  return function(inputs)
    for i = 1, #inputs do codec_encode(inputs[i]) end
  end
end

local function decode_all(codec_decode)
  return function(inputs)
    for i = 1, #inputs do codec_decode(inputs[i]) end
  end
end

local function encoded(codec_encode)
  local out, bytes = {}, 0
  for i = 1, #values do
    out[i] = codec_encode(values[i])
    bytes = bytes + #out[i]
  end
  return out, bytes
end

local function line(what, rv, rb, cv, cb)
  local s = string.format("%-7s luaraft %7.1f MB/s %6.2f M values/s", what, rb / 1e6, rv / 1e6)
  if cv then
    s = s .. string.format(" | cjson %7.1f MB/s %6.2f M values/s | ratio %.2fx",
      cb / 1e6, cv / 1e6, rv / cv)
  end
  print(s)
end

local raft_bytes, raft_size = encoded(raft.encode)
local cjson_bytes, cjson_size
if cjson then cjson_bytes, cjson_size = encoded(cjson.encode) end
print(string.format("mix: %d values, luaraft %d bytes%s", #values, raft_size,
  cjson and string.format(", cjson %d bytes", cjson_size) or ""))

local rv, rb = measure(encode_all(raft.encode), values, raft_size)
local cv, cb
if cjson then cv, cb = measure(encode_all(cjson.encode), values, cjson_size) end
line("encode", rv, rb, cv, cb)

rv, rb = measure(decode_all(raft.decode), raft_bytes, raft_size)
if cjson then cv, cb = measure(decode_all(cjson.decode), cjson_bytes, cjson_size) end
line("decode", rv, rb, cv, cb)
