-- The public `raft` module, built from the C parts (`raft.core`) and the
-- pure-Lua parts in lua/raft/. Submodules load on first use.
local core = require "raft.core"

local raft = {
  version = core.version,
  encode = core.encode,
  decode = core.decode,
}

-- Fields that are whole submodules, loaded lazily: raft.check, raft.errors.
local submodules = { check = "raft.check", errors = "raft.errors" }
-- Fields that are constructors living in a submodule: raft.sim { ... }.
local constructors = { sim = "raft.sim", node = "raft.node", cluster = "raft.cluster" }

return setmetatable(raft, {
  __index = function(t, name)
    local mod = submodules[name]
    if mod then
      local value = require(mod)
      rawset(t, name, value)
      return value
    end
    mod = constructors[name]
    if mod then
      local value = require(mod).new
      rawset(t, name, value)
      return value
    end
    return nil
  end,
})
