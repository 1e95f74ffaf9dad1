-- apply(n) builds a table with n string keys and returns the first key
-- pairs gives. query returns the last answer.
local last
return {

  apply = function(n, meta)
    local t = {}
    for i = 1, n do t["key" .. i] = i end
    for k in pairs(t) do last = k break end -- luacheck: ignore 512 (the first key pairs gives)
    return last
  end,
  query = function() return last end,
}
