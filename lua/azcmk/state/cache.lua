--- A memo of reads shared by the facts of many registries during one run (the audit): a key
-- version, or the user-assigned identities of a subscription, is read once however many
-- registries use it - also when parallel tasks ask for it at the same moment (the later ones
-- wait for the first one's answer instead of sending the same request).
--
--   local cache = require("azcmk.state.cache").new()
--   local bundle, err = cache:once("key " .. kid, function() return c.keys:get{...} end, p.sleep)
--
-- What a read returned (values, errors, nil for "absent") is kept as it was: a failure is not
-- read again in the same run, so a run's answers agree with each other. `reads` counts the
-- functions run (the requests saved are the hits).
local M = {}

local C = {}
C.__index = C

local function pack(...) return { n = select("#", ...), ... } end
local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

--- A new, empty memo.
function M.new()
  return setmetatable({ entries = {}, reads = 0, hits = 0 }, C)
end

--- What fetch() returned the first time `key` was asked for. sleep(seconds): how to wait
-- while another task's fetch of the same key is under way (the pipeline's sleep: inside a
-- parallel task it lets the other tasks run).
function C:once(key, fetch, sleep)
  local e = self.entries[key]
  if e then
    self.hits = self.hits + 1
    while e.pending do sleep(0.002) end
    if e.failed then error(e.failed, 0) end
    return unpack(e.values, 1, e.values.n)
  end
  e = { pending = true }
  self.entries[key] = e
  self.reads = self.reads + 1
  local ok, values = pcall(function() return pack(fetch()) end)
  e.pending = nil
  if not ok then
    self.entries[key] = nil
    e.failed = values
    error(values, 0)
  end
  e.values = values
  return unpack(values, 1, values.n)
end

return M
