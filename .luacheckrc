-- luacheck configuration: `luacheck lua spec examples bench` must report no
-- warnings (scripts/check-dist luacheck, run by scripts/test).
std = "lua54"
-- `raft` is a global in state machine scripts and under `luaraft SCRIPT.lua`.
globals = { "raft" }
-- Callback signatures name their arguments for the reader: a state machine's
-- apply(cmd, meta) that ignores meta, a method that ignores self.
ignore = { "212/cmd", "212/meta", "212/self" }
-- Line length is left to review: long error messages and test tables read
-- better on one line than split.
max_line_length = false
files["spec/"] = { std = "+busted" }
