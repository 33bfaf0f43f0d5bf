--- Policy: a bearer token on every call that needs one, and never one where it must not go.
-- Which scope: req.scope (the caller's, or the one the Key Vault challenge found), else the
-- cloud's ARM scope for the ARM host; other calls go without a token, and so does any call
-- with auth = false. A call may bring its own token instead (req.bearer: a registry's access
-- token from its /oauth2/token, which no credential can give): it goes only to the registry
-- hosts of the cloud profile, and this policy is the one place that writes it into the
-- Authorization header. A token goes only over https and only to hosts of the cloud profile
-- (ARM, Key Vault, managed HSM, ACR). On a 401 the cached token is dropped (once: only if
-- it is still the one that failed) and the call is sent again with a fresh one.
local errors = require("azcmk.errors")
local logm = require("azcmk.log")

local M = {}

local TOKEN_HOSTS = { arm = true, vault = true, hsm = true, acr = true }

local P = {}
P.__index = P

--- p: the pipeline (its cloud, credential, token cache, log and p:token).
function M.new(p) return setmetatable({ name = "bearer", p = p }, P) end

--- nil when req may carry a token, else the input error (InsecureTokenTarget,
-- UntrustedTokenTarget) that refuses it.
function M.refuse(cloud, req)
  if req.target.scheme ~= "https" then
    return errors.input("bearer tokens are only sent over https: " .. logm.redact_url(req.url),
      { code = "InsecureTokenTarget" })
  end
  if not TOKEN_HOSTS[req.host_kind] then
    return errors.input("refusing to send a token to " .. req.target.host .. ", which is not a host of the "
      .. cloud.name .. " cloud profile (ARM, Key Vault, ACR)", { code = "UntrustedTokenTarget",
      hint = "use a custom cloud profile (cloud = {...}) for other endpoints" })
  end
  return nil
end

-- A call that brings its own registry token: checked like ours, never refreshed here (the
-- registry client asks its token service again).
local function own_bearer(cloud, req, next)
  local refused = M.refuse(cloud, req)
  if not refused and req.host_kind ~= "acr" then
    refused = errors.input("refusing to send a registry token to " .. req.target.host .. ", which is not a "
      .. "registry host of the " .. cloud.name .. " cloud profile", { code = "UntrustedTokenTarget",
      hint = "bearer= is for a registry's own token, sent only to its login server ("
        .. tostring(cloud.acr_suffix) .. ")" })
  end
  if refused then req.final = true; return nil, refused end
  req.headers.Authorization = "Bearer " .. req.bearer
  return next:send(req)
end

function P:send(req, next)
  if req.bearer ~= nil then return own_bearer(self.p.cloud, req, next) end
  if req.auth == false then return next:send(req) end
  local p = self.p
  local scope = req.scope
  if not scope then
    if req.host_kind ~= "arm" then return next:send(req) end
    scope = p.cloud.arm_scope
  end
  local refused = M.refuse(p.cloud, req)
  if refused then req.final = true; return nil, refused end
  local tenant = req.tenant
  local tok, terr = p:token(scope, tenant)
  if not tok then req.final = true; return nil, terr end
  local h = req.headers
  h.Authorization = "Bearer " .. tok.token
  local res, err = next:send(req)
  if res and res.status == 401 and p.tokens:invalidate(p.credential, scope, tenant, tok.token) then
    p.log:info("401 from " .. req.target.host .. ": dropping the cached token and retrying once")
    tok, terr = p:token(scope, tenant)
    if not tok then req.final = true; return nil, terr end
    h.Authorization = "Bearer " .. tok.token
    res, err = next:send(req)
  end
  return res, err
end

return M
