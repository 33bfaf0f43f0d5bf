--- Cloud profiles: AzureCloud, AzureChinaCloud, AzureUSGovernment and custom ones
--. Chosen by option or AZURE_CLOUD / AZURE_AUTHORITY_HOST.
local M = {}

-- Token scopes follow from the endpoints, for built-in and custom profiles alike.
local function arm_scope_of(arm_endpoint) return arm_endpoint .. "/.default" end
local function vault_scope_of(vault_suffix) return "https://" .. vault_suffix:sub(2) .. "/.default" end

local function builtin(p)
  p.arm_scope = arm_scope_of(p.arm_endpoint)
  p.vault_scope = vault_scope_of(p.vault_suffix)
  return p
end

M.profiles = {
  AzureCloud = builtin{
    name = "AzureCloud",
    arm_endpoint = "https://management.azure.com",
    arm_audiences = { "https://management.azure.com", "https://management.core.windows.net" },
    authority_host = "https://login.microsoftonline.com",
    vault_suffix = ".vault.azure.net",
    hsm_suffix = ".managedhsm.azure.net",
    acr_suffix = ".azurecr.io",
  },
  AzureChinaCloud = builtin{
    name = "AzureChinaCloud",
    arm_endpoint = "https://management.chinacloudapi.cn",
    arm_audiences = { "https://management.chinacloudapi.cn", "https://management.core.chinacloudapi.cn" },
    authority_host = "https://login.chinacloudapi.cn",
    vault_suffix = ".vault.azure.cn",
    hsm_suffix = ".managedhsm.azure.cn",
    acr_suffix = ".azurecr.cn",
  },
  AzureUSGovernment = builtin{
    name = "AzureUSGovernment",
    arm_endpoint = "https://management.usgovcloudapi.net",
    arm_audiences = { "https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net" },
    authority_host = "https://login.microsoftonline.us",
    vault_suffix = ".vault.usgovcloudapi.net",
    hsm_suffix = ".managedhsm.usgovcloudapi.net",
    acr_suffix = ".azurecr.us",
  },
}

local ALIASES = {
  azurecloud = "AzureCloud", public = "AzureCloud", azurepubliccloud = "AzureCloud",
  azurechinacloud = "AzureChinaCloud", china = "AzureChinaCloud",
  azureusgovernment = "AzureUSGovernment", azureusgovernmentcloud = "AzureUSGovernment",
  usgov = "AzureUSGovernment", usgovernment = "AzureUSGovernment",
}

local function copy(t)
  local r = {}
  for k, v in pairs(t) do
    if type(v) == "table" then r[k] = copy(v) else r[k] = v end
  end
  return r
end

--- Normalise an https endpoint: a bare host gets https://; http:// is refused; trailing
-- slashes are dropped. Returns "https://host[:port]" (+ path if any) or nil, message.
function M.normalize_endpoint(s, what)
  what = what or "endpoint"
  if type(s) ~= "string" or s == "" then return nil, what .. " is empty" end
  s = s:gsub("^%s+", ""):gsub("%s+$", "")
  local scheme = s:match("^(%a[%w+.-]*)://")
  if not scheme then
    s = "https://" .. s
  elseif scheme:lower() ~= "https" then
    return nil, what .. " must use https: " .. s
  end
  s = s:gsub("/+$", "")
  local host = s:match("^https://([^/?#]+)")
  if not host or host:find("[%s@]") then return nil, what .. " is not a valid URL: " .. s end
  return "https://" .. host:lower() .. s:sub(#"https://" + #host + 1)
end

--- The host (lower-case, without port) of an URL.
function M.host_of(url)
  local h = type(url) == "string" and url:match("^%a[%w+.-]*://([^/?#]+)")
  if not h then return nil end
  h = h:gsub("^.*@", "")
  if h:sub(1, 1) == "[" then return h:match("^(%[.-%])"):lower() end
  return (h:gsub(":%d*$", "")):lower()
end

--- Custom profile: fields as in M.profiles; missing fields are taken from `base`
-- (default AzureCloud). Endpoints are normalised (https only).
function M.custom(t, base)
  if type(t) ~= "table" then error("azcmk.cloud.custom: table expected", 2) end
  local b = base and M.get(base) or copy(M.profiles.AzureCloud)
  local p = copy(b)
  for k, v in pairs(t) do p[k] = v end
  p.name = t.name or "custom"
  for _, k in ipairs({ "arm_endpoint", "authority_host" }) do
    local n, err = M.normalize_endpoint(p[k], k)
    if not n then return nil, err end
    p[k] = n
  end
  if t.arm_endpoint and not t.arm_scope then p.arm_scope = arm_scope_of(p.arm_endpoint) end
  if t.arm_endpoint and not t.arm_audiences then p.arm_audiences = { p.arm_endpoint } end
  for _, k in ipairs({ "vault_suffix", "hsm_suffix", "acr_suffix" }) do
    if p[k] and p[k]:sub(1, 1) ~= "." then p[k] = "." .. p[k] end
    if p[k] then p[k] = p[k]:lower() end
  end
  if t.vault_suffix and not t.vault_scope then
    p.vault_scope = vault_scope_of(p.vault_suffix)
  end
  return p
end

--- A profile by name (case-insensitive, a few aliases) or a table (custom).
function M.get(name)
  if type(name) == "table" then return M.custom(name) end
  if name == nil then return copy(M.profiles.AzureCloud) end
  local key = ALIASES[tostring(name):lower()] or name
  local p = M.profiles[key]
  if not p then return nil,
    "unknown cloud " .. tostring(name) .. " (AzureCloud, AzureChinaCloud, AzureUSGovernment)" end
  return copy(p)
end

--- Profile from options and environment. opts.cloud (name or table) wins over AZURE_CLOUD;
-- opts.authority_host / AZURE_AUTHORITY_HOST override the Entra authority (https only).
function M.from_env(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local p, err
  if opts.cloud ~= nil then
    p, err = M.get(opts.cloud)
  else
    local name = getenv("AZURE_CLOUD")
    if name and name ~= "" then p, err = M.get(name) else p = M.get("AzureCloud") end
  end
  if not p then return nil, err end
  local auth = opts.authority_host or getenv("AZURE_AUTHORITY_HOST")
  if auth and auth ~= "" then
    local n, e = M.normalize_endpoint(auth, "AZURE_AUTHORITY_HOST")
    if not n then return nil, e end
    p.authority_host = n
  end
  return p
end

local function ends_with(s, suffix)
  return suffix and #s > #suffix and s:sub(-#suffix) == suffix
end

--- What a host is in this profile: "arm", "vault", "hsm", "acr", "authority" or nil.
function M.host_kind(profile, host)
  if type(host) ~= "string" then return nil end
  host = host:lower()
  if host == M.host_of(profile.arm_endpoint) then return "arm" end
  if ends_with(host, profile.vault_suffix) then return "vault" end
  if ends_with(host, profile.hsm_suffix) then return "hsm" end
  if ends_with(host, profile.acr_suffix) then return "acr" end
  if host == M.host_of(profile.authority_host) then return "authority" end
  return nil
end

return M
