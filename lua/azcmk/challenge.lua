--- Key Vault 401 challenge: what a vault's WWW-Authenticate asks for, and whether to trust it.
-- parse(): WWW-Authenticate -> scheme + params; discover(): tenant and scope, with the
-- challenge resource VERIFIED to be a parent domain of the vault host (a token is never
-- minted for a resource the vault merely asked for); a small cache per vault origin.
local url = require("azcmk.url")
local errors = require("azcmk.errors")
local base = require("azcmk.credential.base")   -- the tenant and scope rules of every token request

local M = {}

--- Parse a WWW-Authenticate value: `Bearer authorization="...", resource="..."`.
-- Returns { scheme = "Bearer", params = { authorization = ..., ... } } or nil, message.
-- Parameter names are lower-cased; quoted values may contain commas and escaped quotes.
function M.parse(header)
  if type(header) ~= "string" or header == "" then return nil, "no WWW-Authenticate header" end
  local s = header:gsub("^%s+", "")
  local scheme, rest = s:match("^([%w%-_]+)%s*(.*)$")
  if not scheme then return nil, "malformed WWW-Authenticate header" end
  local params = {}
  local i, n = 1, #rest
  while i <= n do
    local _, e1, key = rest:find("^[%s,]*([%w%-_%.]+)%s*=%s*", i)
    if not key then break end
    i = e1 + 1
    local value
    if rest:sub(i, i) == '"' then
      local buf, j = {}, i + 1
      while j <= n do
        local c = rest:sub(j, j)
        if c == "\\" and j < n then buf[#buf + 1] = rest:sub(j + 1, j + 1); j = j + 2
        elseif c == '"' then break
        else buf[#buf + 1] = c; j = j + 1 end
      end
      if j > n then return nil, "unterminated quoted value in WWW-Authenticate" end
      value = table.concat(buf)
      i = j + 1
    else
      local v, e2 = rest:match("^([^,%s]*)()", i)
      value = v
      i = e2
    end
    params[key:lower()] = value
  end
  return { scheme = scheme, params = params }
end

--- Host of a resource or scope value ("https://vault.azure.net", ".../.default").
local function resource_host(v)
  local p = url.parse(v)
  if p then return p.host end
  return nil
end

--- Verify that the challenge resource's host is THE parent domain of the request host:
-- `myvault.vault.azure.net` accepts `vault.azure.net`, never a grand-parent such as
-- `azure.net` (the SDKs accept any parent; a vault name is one DNS label, so nothing real
-- needs more). Returns true or nil, err.
function M.verify(resource, request_host)
  local rh = resource_host(resource or "")
  request_host = (request_host or ""):lower()
  local label = rh and rh ~= "" and request_host:sub(-(#rh + 1)) == "." .. rh
    and request_host:sub(1, #request_host - #rh - 1)
  if label and label:match("^[%w%-]+$") then
    return true
  end
  return nil, errors.new("auth", {
    code = "ChallengeResourceMismatch",
    message = string.format("the vault %s asked for a token for %s, which is not a parent domain of the "
      .. "vault host; refusing to get a token for it", request_host, tostring(resource)),
  })
end

--- From a 401 response's WWW-Authenticate: { tenant, scope, resource, authority, scheme }
-- or nil, err (kind auth). request_host is the vault host being called.
function M.discover(header, request_host)
  local c, perr = M.parse(header)
  if not c then
    return nil, errors.new("auth", { code = "ChallengeMalformed", message = perr })
  end
  local scheme = c.scheme:lower()
  if scheme ~= "bearer" and scheme ~= "pop" then
    return nil, errors.new("auth", { code = "ChallengeMalformed",
                                     message = "unsupported authentication scheme " .. c.scheme })
  end
  local p = c.params
  local authority = p.authorization_uri or p.authorization
  if not authority then
    return nil, errors.new("auth", { code = "ChallengeMalformed",
                                     message = "challenge without authorization/authorization_uri" })
  end
  local ap = url.parse(authority)
  if not ap or ap.scheme ~= "https" then
    return nil, errors.new("auth", { code = "ChallengeMalformed",
      message = "challenge authority is not an https URL" })
  end
  local tenant = ap.path:match("^/([^/]+)")
  if not base.valid_tenant(tenant) then
    return nil, errors.new("auth", { code = "ChallengeMalformed",
      message = "challenge authority names no valid tenant" })
  end
  local scope, resource
  if p.scope and p.scope ~= "" then
    scope = p.scope:match("^(%S+)")
    resource = scope:gsub("/%.default$", "")
  elseif p.resource and p.resource ~= "" then
    resource = p.resource
    scope = resource:gsub("/+$", "") .. "/.default"
  else
    return nil, errors.new("auth", { code = "ChallengeMalformed",
      message = "challenge names no resource or scope" })
  end
  if not base.valid_scope(scope) then
    return nil, errors.new("auth", { code = "ChallengeMalformed",
      message = "challenge scope has invalid characters" })
  end
  local ok, verr = M.verify(resource, request_host)
  if not ok then return nil, verr end
  return { tenant = tenant, scope = scope, resource = resource, authority = url.origin(ap),
    scheme = c.scheme }
end

--- Cache of discovered challenges per vault origin (scheme://host[:port], default ports
-- normalised). A plain table; the pipeline owns one.
function M.cache()
  local t = {}
  return {
    get = function(_, origin) return t[origin] end,
    set = function(_, origin, v) t[origin] = v end,
    evict = function(_, origin) t[origin] = nil end,
  }
end

return M
