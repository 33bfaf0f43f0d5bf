--- A given token (e.g. from `az account get-access-token`), or a function returning one.
-- new{ token = "...", expires_on = unix } or new{ get = function(scope) -> token, expires_on end }
-- Each instance has its own token-cache entries; `cache_key = "..."` lets several instances
-- (e.g. nginx workers building the same credential) share them on purpose.
local base = require("azcmk.credential.base")
local errors = require("azcmk.errors")

local C = base.class("StaticTokenCredential")

local M = {}

function M.new(opts)
  if type(opts) == "string" then opts = { token = opts } end
  if type(opts) ~= "table" then error("azcmk.credential.static: token string or options table expected",
    2) end
  if opts.token ~= nil and type(opts.token) ~= "string" then
    error("azcmk.credential.static: token must be a string", 2) end
  if opts.get ~= nil and type(opts.get) ~= "function" then
    error("azcmk.credential.static: get must be a function", 2) end
  if opts.cache_key ~= nil and type(opts.cache_key) ~= "string" then
    error("azcmk.credential.static: cache_key must be a string", 2) end
  return base.new(C, { static_token = opts.token, expires_on = opts.expires_on, getter = opts.get,
                       scopes = opts.scopes, ctx = opts.ctx, _instance_key = opts.cache_key })
end

function C:available()
  if self.static_token or self.getter then return true end
  return false, "no token given"
end

function C:get_token(scope)
  local ok, serr = base.check_scope(scope)
  if not ok then return nil, serr end
  if self.scopes then
    local found = false
    for _, s in ipairs(self.scopes) do if s == scope then found = true end end
    if not found then return nil, base.unavailable(self.name,
      "the static token is not for scope " .. scope) end
  end
  local tok, exp = self.static_token, self.expires_on
  if self.getter then
    local r, e = self.getter(scope)
    if type(r) == "table" then tok, exp = r.token, r.expires_on
    elseif r then tok = r; exp = e
    else return nil, errors.new("auth", { code = "StaticTokenFailed", credential = self.name,
                                           message = self.name .. ": " .. tostring(e or "no token") }) end
  end
  if not tok then return nil, base.unavailable(self.name, "no token given") end
  local now = (self.ctx and self.ctx.now or os.time)()
  exp = tonumber(exp) or (now + 3600)
  if exp <= now then
    return nil, errors.new("auth", { code = "ExpiredAuthenticationToken", credential = self.name,
                                     message = self.name .. ": the given token has expired" })
  end
  return base.token({ token = tok, expires_on = exp })
end

C.__tostring = function() return "azcmk.credential(StaticTokenCredential)" end

M.class = C
return M
