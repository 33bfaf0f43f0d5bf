--- Policy: the Key Vault challenge. A call to a vault or managed-HSM host (without its own
-- scope) first learns which tenant and resource the vault wants tokens for: it is sent once
-- without body and token, and the 401's WWW-Authenticate names them (azcmk.challenge parses
-- it and checks that the resource is the parent domain of the vault host). What it finds is
-- cached per vault and handed to the bearer policy as req.scope / req.tenant. A later 401
-- with another challenge (the vault moved tenant) is discovered once more.
local challenge = require("azcmk.challenge")
local errors = require("azcmk.errors")
local url = require("azcmk.url")
local bearer = require("azcmk.policy.bearer")

local M = {}

local P = {}
P.__index = P

--- p: the pipeline (its cloud and challenge cache).
function M.new(p) return setmetatable({ name = "challenge", p = p }, P) end

local function copy(t)
  local r = {}
  for k, v in pairs(t) do r[k] = v end
  return r
end

-- the request without body and token: what elicits the challenge
local function probe_of(req)
  local probe = copy(req)
  local h = {}
  for k, v in pairs(req.headers) do
    local lk = k:lower()
    if lk ~= "content-type" and lk ~= "authorization" then h[k] = v end
  end
  probe.headers, probe.body = h, nil
  local m = req.method
  if m == "POST" or m == "PUT" or m == "PATCH" then h["Content-Length"] = "0" end
  probe.auth = false
  return probe
end

function P:send(req, next)
  local kind = req.host_kind
  if req.auth == false or req.scope or (kind ~= "vault" and kind ~= "hsm") then return next:send(req) end
  local p = self.p
  local refused = bearer.refuse(p.cloud, req)
  if refused then req.final = true; return nil, refused end
  local origin = url.origin(req.target)
  local host = req.target.host
  local ch = p.challenges:get(origin)
  if not ch then
    local res, err = next:send(probe_of(req))
    if not res then return nil, err end
    if res.status ~= 401 then
      if req.body == nil or res.status >= 300 then return res end
      req.final = true
      return nil, errors.new("auth", { code = "ChallengeMissing", status = res.status,
        message = "the vault answered a request without token with " .. res.status ..
          " instead of a 401 challenge",
        request_id = errors.request_id_of(res) })
    end
    local cerr
    ch, cerr = challenge.discover(res.headers["www-authenticate"], host)
    if not ch then
      p.challenges:evict(origin)
      cerr.request_id = cerr.request_id or errors.request_id_of(res)
      req.final = true
      return nil, cerr
    end
    p.challenges:set(origin, ch)
  end
  req.scope, req.tenant = ch.scope, ch.tenant
  local res, err = next:send(req)
  if res and res.status == 401 and res.headers["www-authenticate"] then
    -- the vault may have moved tenant: discover once more
    local ch2, cerr = challenge.discover(res.headers["www-authenticate"], host)
    if not ch2 then p.challenges:evict(origin); req.final = true; return nil, cerr end
    if ch2.tenant ~= ch.tenant or ch2.scope ~= ch.scope then
      p.challenges:set(origin, ch2)
      local r2 = copy(req)
      r2.headers = copy(req.headers)
      r2.scope, r2.tenant = ch2.scope, ch2.tenant
      res, err = next:send(r2)
      if r2.final then req.final = true end
    end
  end
  return res, err
end

return M
