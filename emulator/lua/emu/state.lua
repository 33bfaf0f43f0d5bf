--- emu.state: the emulator's world, kept in the shared dict `emu_state` as JSON values, so
-- every nginx worker sees the same state. Keys are strings; by convention a prefix names
-- the kind of record ("arm:" ARM resources by lower-case id, "dir:" directory principals,
-- "op:" long-running operations, ...). Use update() for read-modify-write that two requests
-- could race on; it holds a cross-worker lock around the function.
local json = require("emu.json")

local M = {}

local function pack(...) return { n = select("#", ...), ... } end

local dict = ngx.shared.emu_state
local meta = ngx.shared.emu_meta

--- Value stored at key (a fresh Lua table each call), or nil.
function M.get(key)
  local s = dict:get(key)
  if s == nil then return nil end
  return json.decode(s)
end

-- Per-worker cache of decoded values for get_ro, keyed by the stored text.
local ro_cache, ro_n = {}, 0

--- Like get, but the returned table is shared and MUST NOT be modified (cheap repeated reads:
-- authorization checks, subscription lookups). Use get() for anything you change.
function M.get_ro(key)
  local s = dict:get(key)
  if s == nil then return nil end
  local hit = ro_cache[key]
  if hit and hit[1] == s then return hit[2] end
  local v = json.decode(s)
  if ro_n > 2000 then ro_cache, ro_n = {}, 0 end
  if not hit then ro_n = ro_n + 1 end
  ro_cache[key] = { s, v }
  return v
end

-- The set of keys changes rarely (a resource made or deleted) but is listed on every list
-- request: each worker keeps the keys sorted and lists a prefix by binary search, listing the
-- dict again only when GEN moved. GEN counts changes to the set of keys; it starts at the clock
-- in microseconds, so a flushed dict never hands a worker back a number it has cached.
local GEN = "keys-generation"   -- in emu_meta
local function key_set_changed() meta:incr(GEN, 1, ngx.now() * 1e6) end

--- Stores value (any JSON-able value). Raises when the dict is full.
function M.put(key, value)
  local s = json.encode_store(value)
  local gen = meta:get(GEN)
  -- safe_*: a full store fails the request (500, in the log) instead of dropping other records
  local ok, err = dict:safe_add(key, s)
  if not ok and err == "exists" then
    ok, err = dict:safe_set(key, s)
    -- deleted in between by another worker (which bumped GEN), then made again here
    if ok and meta:get(GEN) ~= gen then key_set_changed() end
  elseif ok then
    key_set_changed()
  end
  if not ok then error("emu.state: cannot store " .. key .. ": " .. tostring(err)) end
  return value
end

--- Stores value only if key is absent; returns true, or false when it already exists.
function M.add(key, value)
  local ok, err = dict:safe_add(key, json.encode_store(value))
  if ok then
    key_set_changed()
    return true
  end
  if err == "exists" then return false end
  error("emu.state: cannot store " .. key .. ": " .. tostring(err))
end

function M.delete(key)
  if dict:get(key) == nil then return end   -- reads delete what may not be there: no change
  dict:delete(key)
  key_set_changed()
end

--- Atomic counter (created at `init` or 0).
function M.incr(key, n, init)
  if dict:safe_add(key, init or 0) then key_set_changed() end   -- made here: never by eviction
  return dict:incr(key, n or 1)
end

--- Runs fn() while holding the named cross-worker lock; returns fn's results.
-- Errors inside fn release the lock and propagate.
function M.with_lock(name, fn, ...)
  local lkey = "lock:" .. name
  local tries = 0
  while true do
    local ok = meta:add(lkey, true, 5)
    if ok then break end
    tries = tries + 1
    if tries > 5000 then error("emu.state: lock " .. name .. " stuck") end
    ngx.sleep(0.001)
  end
  local res = pack(pcall(fn, ...))
  meta:delete(lkey)
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

--- Atomic read-modify-write: fn(old_value_or_nil) returns the new value (nil deletes the key),
-- plus any extra results, which update returns after the new value.
function M.update(key, fn)
  return M.with_lock("k:" .. key, function()
    local old = M.get(key)
    local new, a, b, c = fn(old)
    if new == nil then M.delete(key) else M.put(key, new) end
    return new, a, b, c
  end)
end

-- this worker's sorted copy of every key, and the GEN it was taken at
local sorted, sorted_gen = {}, nil

local function all_keys()
  local gen = meta:get(GEN)   -- read before listing: a change in between is seen next time
  if gen == nil or gen ~= sorted_gen then
    sorted = dict:get_keys(0)
    table.sort(sorted)
    sorted_gen = gen
  end
  return sorted
end

--- Keys that start with prefix (sorted; a new table).
function M.keys(prefix)
  local ks, n = all_keys(), #prefix
  local lo, hi = 1, #ks + 1   -- the first key >= prefix
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if ks[mid] < prefix then lo = mid + 1 else hi = mid end
  end
  local out = {}
  while ks[lo] and ks[lo]:sub(1, n) == prefix do
    out[#out + 1] = ks[lo]
    lo = lo + 1
  end
  return out
end

--- Values whose keys start with prefix, sorted by key; optional filter(value, key).
function M.list(prefix, filter)
  local out = {}
  for _, k in ipairs(M.keys(prefix)) do
    local v = M.get(k)
    if v ~= nil and (not filter or filter(v, k)) then out[#out + 1] = v end
  end
  return out
end

--- Drops every record (the control API's reset re-seeds afterwards).
function M.flush()
  dict:flush_all()
  dict:flush_expired()
  key_set_changed()
end

return M
