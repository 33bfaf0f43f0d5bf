--- App Service / Functions / Container Apps identity endpoint, and the
-- older MSI_ENDPOINT forms (Azure ML with MSI_SECRET, Cloud Shell without).
-- new{ endpoint (IDENTITY_ENDPOINT), header (IDENTITY_HEADER), client_id | object_id |
--      resource_id (sent as mi_res_id), mode = "app_service" | "azure_ml" | "cloud_shell" }
local base = require("azcmk.credential.base")
local url = require("azcmk.url")
local sender = require("azcmk.sender")
local clock = require("azcmk.clock")

local C = base.class("AppServiceCredential")

local M = {}

M.API_VERSION = "2019-08-01"
M.LEGACY_API_VERSION = "2017-09-01"

function M.new(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local mode = opts.mode or "app_service"
  local ep, secret
  if mode == "app_service" then
    ep = opts.endpoint or getenv("IDENTITY_ENDPOINT"); secret = opts.header or getenv("IDENTITY_HEADER")
  else
    ep = opts.endpoint or getenv("MSI_ENDPOINT"); secret = opts.header or getenv("MSI_SECRET")
  end
  local n = (opts.client_id and 1 or 0) + (opts.object_id and 1 or 0) + (opts.resource_id and 1 or 0)
  if n > 1 then error("azcmk.credential.app_service: give at most one of client_id, object_id, resource_id",
    2) end
  local names = { app_service = "AppServiceCredential", azure_ml = "AzureMLCredential",
                  cloud_shell = "CloudShellCredential" }
  if not names[mode] then error("azcmk.credential.app_service: unknown mode " .. tostring(mode), 2) end
  return base.new(C, {
    name = names[mode], mode = mode, endpoint = ep ~= "" and ep or nil,
      secret = secret ~= "" and secret or nil,
    client_id = opts.client_id, object_id = opts.object_id, resource_id = opts.resource_id,
    ctx = opts.ctx or { getenv = getenv },
  })
end

function C:available()
  if not self.endpoint then
    return false, (self.mode == "app_service" and "IDENTITY_ENDPOINT" or "MSI_ENDPOINT") .. " not set"
  end
  if self.mode ~= "cloud_shell" and not self.secret then
    return false, (self.mode == "app_service" and "IDENTITY_HEADER" or "MSI_SECRET") .. " not set"
  end
  local p = url.parse(self.endpoint)
  if not p or (p.scheme ~= "http" and p.scheme ~= "https") then return false,
    "identity endpoint is not a URL" end
  return true
end

function C:cache_key()
  return self.name .. "|" .. tostring(self.endpoint) .. "|"
    .. tostring(self.client_id or self.object_id or self.resource_id or "system")
end

-- expires_on: epoch seconds (string or number), or a date like "11/22/2026 05:00:00 +00:00"
local function parse_expires_on(v)
  local n = tonumber(v)
  if n then return n end
  if type(v) ~= "string" then return nil end
  local mo, d, y, h, mi, s, sign, oh,
    om = v:match("^(%d+)/(%d+)/(%d+)%s+(%d+):(%d+):(%d+)%s*([%+%-])(%d%d):?(%d%d)")
  if mo then
    local t = clock.timegm(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi), tonumber(s))
    local off = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
    return t - off
  end
  return clock.parse_http_date(v)
end
M.parse_expires_on = parse_expires_on

function C:get_token(scope)
  local ok, why = self:available()
  if not ok then return nil, base.unavailable(self.name, why) end
  local sok, serr = base.check_scope(scope)
  if not sok then return nil, serr end
  local resource = base.scope_to_resource(scope)
  local ctx = self:context()
  local req
  if self.mode == "cloud_shell" then
    req = { method = "POST", url = self.endpoint, idempotent = true,
            headers = { Metadata = "true", ["Content-Type"] = "application/x-www-form-urlencoded" },
            body = url.encode_form({ { "resource", resource }, { "client_id", self.client_id },
                                     { "object_id", self.object_id }, { "msi_res_id", self.resource_id } }) }
  elseif self.mode == "azure_ml" then
    req = { method = "GET", headers = { secret = self.secret, Metadata = "true" },
            url = self.endpoint .. (self.endpoint:find("?", 1, true) and "&" or "?") .. url.encode_query({
              ["api-version"] = M.LEGACY_API_VERSION, resource = resource, clientid = self.client_id }) }
  else
    req = { method = "GET", headers = { ["X-IDENTITY-HEADER"] = self.secret, Metadata = "true" },
            url = self.endpoint .. (self.endpoint:find("?", 1, true) and "&" or "?") .. url.encode_query({
              ["api-version"] = M.API_VERSION, resource = resource, client_id = self.client_id,
              object_id = self.object_id, mi_res_id = self.resource_id }) }
  end
  local res, err = sender.send(ctx, req)
  if not res then err.credential = self.name; return nil, err end
  local j, jerr = base.token_json(self, res, "identity endpoint")
  if not j then return nil, jerr end
  local exp = parse_expires_on(j.expires_on)
  if not exp and tonumber(j.expires_in) then exp = ctx.now() + tonumber(j.expires_in) end
  return base.token({ token = j.access_token, expires_on = exp or (ctx.now() + 3600) })
end

M.class = C
return M
