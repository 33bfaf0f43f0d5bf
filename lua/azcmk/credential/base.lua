--- Shared parts of credentials.
-- Interface of every credential:
--   cred.name                               "ClientSecretCredential", ...
--   cred:get_token(scope [, opts]) -> token | nil, err
--       token = { token = "...", expires_on = unix seconds, refresh_on = unix|nil }
--       (its __tostring never shows the token); err.unavailable = true when the credential
--       cannot be used here at all (a chain moves on), else it is an authentication failure
--   cred:available() -> true | false, reason     (no network I/O)
--   cred:cache_key() -> string                    (tenant, client, kind)
--   cred:attach(ctx)                              (pipeline hands over transport/log/clock;
--                                                  a credential never builds a transport)
-- Building a credential never does I/O; the first get_token does.
local cjson = require("cjson.safe")
local errors = require("azcmk.errors")
local clock = require("azcmk.clock")

local M = {}

local token_mt = {
  __tostring = function(t)
    return string.format("azcmk.token(expires_on=%s)", tostring(t.expires_on))
  end,
}

--- Wrap a token. fields: token (string), expires_on, refresh_on.
function M.token(fields)
  return setmetatable({ token = fields.token, expires_on = fields.expires_on,
                        refresh_on = fields.refresh_on, token_type = fields.token_type or "Bearer" },
                          token_mt)
end

M.TENANT_PATTERN = "^[%w%.%-]+$"
M.SCOPE_PATTERN = "^[%w_%.:/%-]+$"

function M.valid_tenant(t) return type(t) == "string" and t ~= "" and t:match(M.TENANT_PATTERN) ~= nil end
function M.valid_scope(s) return type(s) == "string" and s ~= "" and s:match(M.SCOPE_PATTERN) ~= nil end

function M.check_scope(scope)
  if not M.valid_scope(scope) then
    return nil, errors.new("input", { code = "InvalidScope",
      message = "scope must be non-empty and only [A-Za-z0-9_.:/-]: " .. tostring(scope) })
  end
  return true
end

--- "unavailable" error (the chain moves on to the next credential).
function M.unavailable(name, reason)
  return errors.new("auth", { code = "CredentialUnavailable", unavailable = true, credential = name,
                              message = name .. ": " .. reason, reason = reason })
end

--- The decoded JSON answer of a token endpoint (Entra ID, IMDS, App Service), or nil, err
-- for a non-200 answer or one without access_token. `endpoint` names it in the message.
function M.token_json(cred, res, endpoint)
  if res.status ~= 200 then
    local e = errors.from_response(res, { kind = "auth" })
    e.credential = cred.name
    e.message = cred.name .. ": " .. tostring(e.message)
    return nil, e
  end
  local j = cjson.decode(res.body or "")
  if type(j) ~= "table" or type(j.access_token) ~= "string" then
    return nil, errors.new("auth", { code = "InvalidTokenResponse", status = res.status,
      credential = cred.name, message = cred.name .. ": " .. endpoint .. " answered without access_token",
      request_id = errors.request_id_of(res) })
  end
  return j
end

--- Reads environment variables through getenv, an empty value counting as unset.
function M.env_reader(getenv)
  return function(k)
    local v = getenv(k)
    if v == "" then return nil end
    return v
  end
end

--- Resource (v1) from a scope: "https://vault.azure.net/.default" -> "https://vault.azure.net".
function M.scope_to_resource(scope)
  return (scope:gsub("/%.default$", ""))
end

--- UUID v4 from the core (falls back to math.random when the core is not built).
function M.uuid()
  local ok, core = pcall(require, "azcmk.core")
  if ok and type(core) == "table" and core.uuid4 then return core.uuid4() end
  local t = {}
  for i = 1, 16 do t[i] = math.random(0, 255) end
  t[7] = t[7] % 16 + 64
  t[9] = t[9] % 64 + 128
  local h = string.format(string.rep("%02x", 16),
    table.unpack and table.unpack(t) or unpack(t)) -- luacheck: ignore
  return h:sub(1, 8) .. "-" .. h:sub(9, 12) .. "-" .. h:sub(13, 16) .. "-" .. h:sub(17,
    20) .. "-" .. h:sub(21)
end

--- Methods every credential gets.
local methods = {}

function methods:attach(ctx)
  self.ctx = self.ctx or {}
  for k, v in pairs(ctx or {}) do
    if self.ctx[k] == nil then self.ctx[k] = v end
  end
end

--- The context its pipeline handed over (transport, log, retry, now, sleep, getenv), with
-- now defaulting to the clock; no transport needed (clock and environment only).
function methods:settings()
  self.ctx = self.ctx or {}
  local ctx = self.ctx
  ctx.now = ctx.now or clock.now
  return ctx
end

--- The context, for I/O. A credential builds no transport of its own: one that must talk
-- to a token endpoint without one is a wiring mistake, and raises.
function methods:context()
  local ctx = self:settings()
  if not ctx.transport then
    error("azcmk.credential: " .. tostring(self.name) .. " has no transport: use it through a pipeline "
      .. "(azcmk.new{ credential = c }, pipeline.new{...}), or give it one first: "
      .. "c:attach{ transport = require('azcmk.transport.curl').new() }", 3)
  end
  return ctx
end

function methods.available(_) return true end

--- Classes that know their identity (tenant, client) key their cache entries by it. The
-- default keys by the instance, so two credentials without one (e.g. two static tokens)
-- never share an entry of a shared cache (the nginx shared dict).
function methods:cache_key()
  self._instance_key = self._instance_key or require("azcmk.core").uuid4()
  return self.name .. "|" .. self._instance_key
end

--- Make a credential class: returns the class table (with __index) whose instances get
-- the shared methods.
function M.class(name)
  local cls = { name = name }
  for k, v in pairs(methods) do cls[k] = v end
  cls.__index = cls
  cls.__tostring = function(self) return "azcmk.credential(" .. self.name .. ")" end
  return cls
end

M.methods = methods

function M.new(cls, fields)
  local o = fields or {}
  o.name = o.name or cls.name
  return setmetatable(o, cls)
end

return M
