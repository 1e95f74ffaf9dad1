-- apply returns math.random(1, 1e9): seeded from the entry, the same on
-- every replica. query returns every number drawn so far.
local drawn = {}
return {
  apply = function(cmd, meta)
    local v = math.random(1, 1000000000)
    drawn[#drawn + 1] = v
    return v
  end,
  query = function() return drawn end,
}
