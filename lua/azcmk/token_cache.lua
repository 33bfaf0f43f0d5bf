--- Token cache per credential (tenant, client, kind) and scope.
-- * refresh 300 s before expiry, or at refresh_on, or at half-life for tokens living >= 2 h
--   (MSAL) - whichever comes first;
-- * keep serving a still-valid token when a refresh fails, and retry the refresh at most
--   every 30 s (damping);
-- * single flight: one fetch per key at a time. In plain Lua calls do not overlap; the
--   `lock` hook lets the nginx face add cross-worker locking, and `store` lets it keep
--   entries in a shared dict.
-- * invalidate(): a 401 from a service drops the cached token (once: only if it is still the
--   token that failed).
local clock = require("azcmk.clock")

local M = {}

M.REFRESH_OFFSET = 300
M.RETRY_DELAY = 30
M.HALF_LIFE_MIN = 7200

local function table_store()
  local t = {}
  return {
    get = function(_, k) return t[k] end,
    set = function(_, k, v) t[k] = v end,
    delete = function(_, k) t[k] = nil end,
  }
end

local C = {}
C.__index = C

--- opts: now (fn), refresh_offset, retry_delay, store ({get,set,delete} methods),
-- lock (function(key, fn) -> fn's results; run fn under a lock), log.
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    now = opts.now or clock.now,
    refresh_offset = opts.refresh_offset or M.REFRESH_OFFSET,
    retry_delay = opts.retry_delay or M.RETRY_DELAY,
    store = opts.store or table_store(),
    lock = opts.lock,
    log = opts.log,
    fetches = 0,
  }, C)
end

function M.key(cred, scope, tenant)
  local id = cred.cache_key and cred:cache_key() or tostring(cred)
  return id .. "|" .. (tenant or "") .. "|" .. scope
end

--- When a token should be refreshed (unix seconds).
function M.refresh_at(tok, fetched_at, offset)
  local at = tok.expires_on - (offset or M.REFRESH_OFFSET)
  if tok.refresh_on and tok.refresh_on < at then at = tok.refresh_on end
  local life = tok.expires_on - fetched_at
  if not tok.refresh_on and life >= M.HALF_LIFE_MIN then
    local half = fetched_at + life / 2
    if half < at then at = half end
  end
  return at
end

function C:_fetch(key, cred, scope, opts)
  local function run()
    -- another holder of the lock may have refreshed meanwhile
    local e = self.store:get(key)
    local now = self.now()
    if e and opts._seen ~= e and now < e.refresh_at and now < e.token.expires_on then return e.token end
    self.fetches = self.fetches + 1
    local o = {}
    for k, v in pairs(opts) do if k ~= "_seen" then o[k] = v end end
    local tok, err = cred:get_token(scope, o)
    if not tok then return nil, err end
    if type(tok.expires_on) ~= "number" then tok.expires_on = now + 3600 end
    if self.log then
      local who = cred.name .. ((cred.selected and cred.selected.name) and ("/" .. cred.selected.name) or "")
      self.log:info(string.format("token for %s from %s, valid %ds", scope, who,
        math.floor(tok.expires_on - now)))
    end
    -- a chain's key names the provider it selected only after its first token: file the
    -- token under the key the next get() computes, else that get() fetches again
    self.store:set(M.key(cred, scope, opts.tenant_id), { token = tok, fetched_at = now,
      refresh_at = M.refresh_at(tok, now, self.refresh_offset) })
    return tok
  end
  if self.lock then return self.lock(key, run) end
  return run()
end

--- A token for scope from cred (cached). opts are passed to cred:get_token (e.g. tenant_id).
function C:get(cred, scope, opts)
  opts = opts or {}
  local key = M.key(cred, scope, opts.tenant_id)
  local e = self.store:get(key)
  local now = self.now()
  if e and now < e.token.expires_on then
    if now < e.refresh_at then return e.token end
    if e.next_try and now < e.next_try then return e.token end
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o._seen = e
    local tok, err = self:_fetch(key, cred, scope, o)
    if tok then return tok end
    e.next_try = now + self.retry_delay
    self.store:set(key, e)
    if self.log then self.log:warn("token refresh failed, using the cached token: " .. tostring(err)) end
    return e.token
  end
  return self:_fetch(key, cred, scope, opts)
end

--- Drop the cached token for (cred, scope, tenant) if it is `token` (the string that got a
-- 401), or unconditionally when token is nil. Returns true when something was dropped.
function C:invalidate(cred, scope, tenant, token)
  local key = M.key(cred, scope, tenant)
  local e = self.store:get(key)
  if not e then return false end
  if token ~= nil and e.token.token ~= token then return false end
  self.store:delete(key)
  return true
end

return M
