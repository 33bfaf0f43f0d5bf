--- AzureCliCredential: a token from `az account get-access-token`, for
-- scripts run by a person who did `az login`.
-- new{ tenant_id, subscription, az (path; default: found on PATH), timeout (10 s),
--      run = function(cmd) -> output (injectable, specs) }
-- Inputs are validated before they reach the command line (tenant [A-Za-z0-9.-], scope
-- [A-Za-z0-9_.:/-], subscription [A-Za-z0-9_. -]); the command runs from /bin with stdin
-- closed; "accessToken" values are scrubbed from any output echoed in errors.
local cjson = require("cjson.safe")
local base = require("azcmk.credential.base")
local errors = require("azcmk.errors")
local clock = require("azcmk.clock")

local C = base.class("AzureCliCredential")

local M = {}

M.TIMEOUT = 10

function M.new(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  return base.new(C, { tenant_id = opts.tenant_id, subscription = opts.subscription, az = opts.az,
                       timeout = opts.timeout or M.TIMEOUT, run = opts.run,
                         ctx = opts.ctx or { getenv = getenv } })
end

local function file_exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

function C:_which(prog)
  local getenv = (self.ctx and self.ctx.getenv) or os.getenv
  for dir in (getenv("PATH") or ""):gmatch("[^:]+") do
    if file_exists(dir .. "/" .. prog) then return dir .. "/" .. prog end
  end
  return nil
end

--- Path of az, or nil (looked up on PATH without running anything).
function C:_az()
  if self.az then return self.az end
  return self:_which("az")
end

function C:available()
  if self.run then return true end
  if not self:_az() then return false, "Azure CLI (az) not found on PATH" end
  return true
end

function C:cache_key()
  return self.name .. "|" .. tostring(self.tenant_id) .. "|" .. tostring(self.subscription)
end

local function scrub(out)
  out = out:gsub('("accessToken"%s*:%s*")[^"]*"', '%1REDACTED"')
  return errors.scrub(out)
end

local function run_default(cmd)
  local f = io.popen(cmd, "r")
  if not f then return "" end
  local out = f:read("*a") or ""
  f:close()
  return out
end

-- expiresOn: naive local time "YYYY-MM-DD HH:MM:SS[.ffffff]"
local function parse_local(s)
  local y, mo, d, h, mi, sec = tostring(s):match("^(%d+)%-(%d+)%-(%d+)[ T](%d+):(%d+):(%d+)")
  if not y then return nil end
  return os.time({ year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
                   min = tonumber(mi), sec = tonumber(sec) })
end
M.parse_local = parse_local

--- The command line for a resource (exposed for specs).
function C:command(resource, tenant)
  local az = self:_az() or "az"
  local parts = { "cd /bin &&", "AZURE_CORE_NO_COLOR=true" }
  local t = self:_which("timeout")     -- coreutils; without it az runs unbounded
  if t then parts[#parts + 1] = "'" .. t .. "' " .. tostring(math.floor(self.timeout)) end
  for _, w in ipairs({ "'" .. az .. "'", "account", "get-access-token", "--output", "json",
                       "--resource", "'" .. resource .. "'" }) do parts[#parts + 1] = w end
  if tenant then parts[#parts + 1] = "--tenant"; parts[#parts + 1] = "'" .. tenant .. "'" end
  if self.subscription then parts[#parts + 1] = "--subscription"; parts[#parts + 1] = "'" ..
    self.subscription .. "'" end
  parts[#parts + 1] = "</dev/null 2>&1"
  return table.concat(parts, " ")
end

function C:get_token(scope, opts)
  local ok, why = self:available()
  if not ok then return nil, base.unavailable(self.name, why) end
  local sok, serr = base.check_scope(scope)
  if not sok then return nil, serr end
  local tenant = (opts and opts.tenant_id) or self.tenant_id
  if tenant ~= nil and not base.valid_tenant(tenant) then
    return nil, errors.input("tenant id must be only [A-Za-z0-9.-]", { code = "InvalidTenant",
      param = "tenant_id" })
  end
  if self.subscription ~= nil and not tostring(self.subscription):match("^[%w_%. %-]+$") then
    return nil, errors.input("subscription must be only [A-Za-z0-9_. -]", { code = "InvalidSubscription",
      param = "subscription", hint = "pass the subscription's id (a GUID) or its name" })
  end
  local az = self:_az() or "az"
  if az:find("'", 1, true) then
    return nil, errors.input("az path must not contain quotes", { code = "InvalidAzPath",
      hint = "install the Azure CLI in a directory without quotes in its path" })
  end
  local out = (self.run or run_default)(self:command(base.scope_to_resource(scope), tenant))
  local j = cjson.decode(out:match("(%b{})") or "")
  if type(j) == "table" and type(j.accessToken) == "string" then
    local exp = tonumber(j.expires_on) or parse_local(j.expiresOn) or (clock.now() + 300)
    return base.token({ token = j.accessToken, expires_on = exp })
  end
  local text = scrub(out):gsub("%s+$", "")
  if text == "" then text = "az printed nothing (timed out after " .. tostring(self.timeout) .. " s?)" end
  if text:find("az login", 1, true) or text:find("not logged in", 1, true) then
    return nil, base.unavailable(self.name, "not logged in: run 'az login'")
  end
  if text:find("not found", 1, true) or text:find("No such file", 1, true) then
    return nil, base.unavailable(self.name, "Azure CLI (az) could not be run")
  end
  return nil, errors.new("auth", { code = "AzureCliFailed", credential = self.name,
    message = self.name .. ": az account get-access-token failed: " .. text:sub(1, 400),
    hint = "check 'az account show'; for claims challenges run 'az login --claims-challenge'" })
end

M.class = C
return M
