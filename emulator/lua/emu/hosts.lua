--- emu.hosts: which service a request is for, from its Host header and port, per cloud.
-- kind: "login" (Entra ID), "arm" (Resource Manager), "vault" (Key Vault data plane),
-- "acr" (Container Registry data plane), "graph" (Microsoft Graph), "msi" (plain-http port: IMDS
-- and App Service).
local M = {}

M.clouds = {
  AzureCloud = {
    name = "AzureCloud",
    login = { "login.microsoftonline.com", "login.windows.net", "sts.windows.net" },
    arm = "management.azure.com",
    arm_audiences = { "https://management.azure.com/", "https://management.azure.com",
      "https://management.core.windows.net/", "https://management.core.windows.net" },
    arm_hosts = { "management.azure.com", "management.core.windows.net" },
    vault_suffix = ".vault.azure.net", vault_resource = "https://vault.azure.net",
    hsm_suffix = ".managedhsm.azure.net",
    acr_suffix = ".azurecr.io",
    graph = "graph.microsoft.com",
  },
  AzureChinaCloud = {
    name = "AzureChinaCloud",
    login = { "login.chinacloudapi.cn", "login.partner.microsoftonline.cn" },
    arm = "management.chinacloudapi.cn",
    arm_audiences = { "https://management.chinacloudapi.cn/", "https://management.chinacloudapi.cn",
      "https://management.core.chinacloudapi.cn/", "https://management.core.chinacloudapi.cn" },
    arm_hosts = { "management.chinacloudapi.cn" },
    vault_suffix = ".vault.azure.cn", vault_resource = "https://vault.azure.cn",
    acr_suffix = ".azurecr.cn",
    graph = "microsoftgraph.chinacloudapi.cn",
  },
  AzureUSGovernment = {
    name = "AzureUSGovernment",
    login = { "login.microsoftonline.us" },
    arm = "management.usgovcloudapi.net",
    arm_audiences = { "https://management.usgovcloudapi.net/", "https://management.usgovcloudapi.net",
      "https://management.core.usgovcloudapi.net/", "https://management.core.usgovcloudapi.net" },
    arm_hosts = { "management.usgovcloudapi.net" },
    vault_suffix = ".vault.usgovcloudapi.net", vault_resource = "https://vault.usgovcloudapi.net",
    hsm_suffix = ".managedhsm.usgovcloudapi.net",
    acr_suffix = ".azurecr.us",
    graph = "graph.microsoft.us",
  },
}

local exact = {}
for _, c in pairs(M.clouds) do
  for _, h in ipairs(c.login) do exact[h] = { "login", c } end
  for _, h in ipairs(c.arm_hosts) do exact[h] = { "arm", c } end
  exact[c.graph] = { "graph", c }
end
-- localhost and the bare IP answer as public-cloud Resource Manager (handy for plain curl).
exact["localhost"] = { "arm", M.clouds.AzureCloud }
exact["127.0.0.1"] = { "arm", M.clouds.AzureCloud }

local function ends_with(s, suffix)
  return #s > #suffix and s:sub(-#suffix) == suffix
end

--- kind, cloud, sub-name (vault or registry name) for a lower-case host without port.
-- http_port: true when the request came in on the plain-http port.
function M.classify(host, http_port)
  if http_port then return "msi", M.clouds.AzureCloud end
  local e = exact[host]
  if e then return e[1], e[2] end
  for _, c in pairs(M.clouds) do
    if ends_with(host, c.vault_suffix) then return "vault", c, host:sub(1, -#c.vault_suffix - 1) end
    if c.hsm_suffix and ends_with(host, c.hsm_suffix) then return "hsm", c, host:sub(1, -#c.hsm_suffix - 1) end
    if ends_with(host, c.acr_suffix) then return "acr", c, host:sub(1, -#c.acr_suffix - 1) end
  end
  return "unknown", M.clouds.AzureCloud
end

local LOOPBACK = { ["localhost"] = true, ["127.0.0.1"] = true, ["[::1]"] = true, ["::1"] = true,
  ["169.254.169.254"] = true }

--- Whether the control API (/_emulator/*) may answer a request for `host` (lower case, no
-- port, as nginx's $host): an emulated name or a loopback address, never another name (a
-- page that rebinds its own name to 127.0.0.1 must not read the seeded secrets).
function M.control_allowed(host)
  if LOOPBACK[host] then return true end
  return M.classify(host, false) ~= "unknown"
end

--- The cloud whose ARM audience list contains aud (or nil).
function M.cloud_of_arm_audience(aud)
  for _, c in pairs(M.clouds) do
    for _, a in ipairs(c.arm_audiences) do if a == aud then return c end end
  end
  return nil
end

return M
