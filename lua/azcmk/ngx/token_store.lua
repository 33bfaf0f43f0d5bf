--- Tokens shared by all nginx workers: the `store` and `lock` hooks of azcmk.token_cache over
-- a `lua_shared_dict` (docs/openresty.md).
--
--   # nginx.conf:  lua_shared_dict azcmk_tokens 1m;
--   local token_store = require("azcmk.ngx.token_store")
--   local cache = token_store.cache{ dict = "azcmk_tokens" }   -- an azcmk.token_cache
--   local p = azcmk.new{ token_cache = cache }
--
-- * L1: a per-worker Lua table of decoded entries, valid while the shared dict (L2) still
--   holds the same serialized entry (one dict get + string compare per lookup, no JSON decode).
-- * L2: the shared dict, entries expire with the token (exptime = expires_on - now).
-- * Single flight across workers: dict:add(lock key, worker id, lock_ttl) succeeds in one
--   worker, which fetches; the others serve the cached token while it is still valid, or wait
--   with ngx.sleep (step 20 ms, at most wait_s) and re-read L2. A lock left by a crashed
--   worker expires after lock_ttl.
-- * Proactive refresh: token_store.refresher(...) from init_worker (ngx.timer.every).
-- Nothing here does I/O at require time, and nothing touches the dict before the first call.
local cjson = require("cjson.safe")
local token_cache = require("azcmk.token_cache")

local ngx = rawget(_G, "ngx")

local M = {}

M.LOCK_TTL = 30
M.WAIT = 10
M.STEP = 0.02

local function shared(name)
  local d = ngx and ngx.shared and ngx.shared[name]
  if not d then
    error("azcmk.ngx.token_store: no lua_shared_dict '" .. tostring(name) .. "' (add `lua_shared_dict "
      .. tostring(name) .. " 1m;` to the http block)", 3)
  end
  return d
end

local function can_sleep()
  local ok, t = pcall(require, "azcmk.transport.ngx")
  return ok and t.yieldable()
end

--- store{dict = name | shared dict, prefix = "tok:"} -> {get, set, delete} for token_cache.
function M.store(opts)
  opts = opts or {}
  local dict_name = opts.dict or "azcmk_tokens"
  local prefix = opts.prefix or "tok:"
  local l1 = {}
  local s = { l1 = l1, prefix = prefix }
  local function dict()
    if type(dict_name) ~= "string" then return dict_name end
    return shared(dict_name)
  end
  s.dict = dict
  function s.get(_, k)
    local raw = dict():get(prefix .. k)
    if raw == nil then
      l1[k] = nil
      return nil
    end
    local c = l1[k]
    if c and c.raw == raw then return c.entry end
    local e = cjson.decode(raw)
    if type(e) ~= "table" or type(e.token) ~= "table" then return nil end
    l1[k] = { raw = raw, entry = e }
    return e
  end
  function s.set(_, k, e)
    local raw = cjson.encode(e)
    if not raw then return end
    local ttl = (e.token.expires_on or 0) - ngx.time()
    if ttl <= 0 then
      dict():delete(prefix .. k)
      l1[k] = nil
      return
    end
    local ok, err = dict():set(prefix .. k, raw, ttl)
    if not ok and ngx.log then ngx.log(ngx.WARN, "azcmk: token store: ", err) end
    l1[k] = { raw = raw, entry = e }
  end
  function s.delete(_, k)
    dict():delete(prefix .. k)
    l1[k] = nil
  end
  return s
end

--- lock{store = the store above, lock_ttl, wait_s, step_s, now} -> function(key, fn) for
-- token_cache: runs fn in the one worker holding `lock:<key>` in the dict.
function M.lock(opts)
  opts = opts or {}
  local st = assert(opts.store, "azcmk.ngx.token_store.lock: store required")
  local ttl = opts.lock_ttl or M.LOCK_TTL
  local wait = opts.wait_s or M.WAIT
  local step = opts.step_s or M.STEP
  local stats = { fetched = 0, waited = 0, served_stale = 0 }
  local function lock(key, fn)
    local d = st.dict()
    local lk = "lock:" .. st.prefix .. key
    local owner = tostring(ngx.worker and ngx.worker.pid and ngx.worker.pid() or 0)
    local deadline = ngx.now() + wait
    local waited = false
    while true do
      local ok = d:add(lk, owner, ttl)
      if ok then
        stats.fetched = stats.fetched + 1
        local ok2, tok, err = pcall(fn)
        if d:get(lk) == owner then d:delete(lk) end
        if not ok2 then error(tok, 0) end
        return tok, err
      end
      -- someone else fetches: serve the still-valid token, or wait for theirs
      local e = st:get(key)
      if e and e.token and (e.token.expires_on or 0) > ngx.time() then
        -- after a wait: fetched by the lock holder meanwhile; else: the old, still valid one
        if waited then stats.waited = stats.waited + 1 else stats.served_stale = stats.served_stale + 1 end
        return e.token
      end
      if not can_sleep() or ngx.now() >= deadline then
        -- cannot wait here (init phases) or waited long enough: fetch without the lock
        return fn()
      end
      waited = true
      ngx.sleep(step)
      ngx.update_time()
    end
  end
  return lock, stats
end

--- cache{dict, prefix, lock_ttl, wait_s, refresh_offset, log} -> an azcmk.token_cache whose
-- entries live in the shared dict, with the cross-worker lock. cache.lock_stats counts
-- fetches under the lock, waits and stale serves (this worker).
function M.cache(opts)
  opts = opts or {}
  local st = M.store(opts)
  local lock, stats = M.lock({ store = st, lock_ttl = opts.lock_ttl, wait_s = opts.wait_s,
    step_s = opts.step_s })
  local c = token_cache.new({ store = st, lock = lock, refresh_offset = opts.refresh_offset, log = opts.log,
    now = function() return ngx.time() end })
  c.lock_stats = stats
  return c
end

--- Proactive refresh: every `every` seconds (default 60) get(cred, scope) for each target, so
-- tokens are renewed in a timer ahead of expiry rather than on a request. Call from
-- init_worker_by_lua*. targets: list of { pipeline = p, scope = s [, tenant = t] }, or a
-- function returning it (evaluated in the timer). all_workers = false (default): only
-- worker 0 refreshes (the shared lock makes several safe anyway).
function M.refresher(targets, opts)
  opts = opts or {}
  if not opts.all_workers and ngx.worker.id() ~= 0 and ngx.worker.id() ~= nil then return true end
  local function tick(premature)
    if premature then return end
    local list = type(targets) == "function" and targets() or targets
    for _, t in ipairs(list or {}) do
      local ok, err = pcall(function()
        local tok, terr = t.pipeline:token(t.scope or t.pipeline.cloud.arm_scope, t.tenant)
        if not tok then ngx.log(ngx.WARN, "azcmk: token refresh failed: ", tostring(terr)) end
      end)
      if not ok then ngx.log(ngx.ERR, "azcmk: token refresh: ", tostring(err)) end
    end
  end
  local ok, err = ngx.timer.at(0, tick)
  if not ok then return nil, err end
  return ngx.timer.every(opts.every or 60, tick)
end

return M
