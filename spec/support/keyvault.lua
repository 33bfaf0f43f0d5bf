--- Spec helpers for the emulator's Key Vault (management and data plane).
--   local KV = require("support.keyvault")
--   KV.rg(name)                            PUT a resource group (westus)
--   KV.vault(rg, name, props, opts)        PUT a vault (by default the owner holds all key permissions)
--   KV.req(method, vault, path, body, opts) data-plane request with the owner's vault token;
--                                          opts.token = false | string, opts.who, opts.api_version, opts.host
--   KV.uniq(prefix)                        a fresh vault-safe name
local E = require("support.emulator")

local M = {}

M.API = "2026-02-01"
M.DATA_API = "7.4"

local counter = 0
function M.uniq(prefix)
  counter = counter + 1
  math.randomseed(os.time() + counter + math.floor(os.clock() * 1e6))
  return (prefix or "kv") .. string.format("%x%x", math.random(0, 0xffff), counter)
end

function M.sub() return E.seed().subscription_id end
function M.tenant() return E.seed().tenant_id end

function M.rg_path(rg)
  return "/subscriptions/" .. M.sub() .. "/resourcegroups/" .. rg
end

function M.rg(name)
  local res = E.arm("PUT", M.rg_path(name), { location = "westus" }, { api_version = "2024-11-01" })
  assert(res.status == 200 or res.status == 201, res.body)
  return name
end

function M.vault_path(rg, name)
  return "/subscriptions/" .. M.sub() .. "/resourceGroups/" .. rg ..
    "/providers/Microsoft.KeyVault/vaults/" ..
    name
end

local ALL_KEYS = { "all" }

--- Vault properties with the owner holding `perms` (default all key permissions).
function M.props(extra, perms)
  local s = E.seed()
  local p = { tenantId = s.tenant_id, sku = { family = "A", name = "standard" },
    accessPolicies = { { tenantId = s.tenant_id, objectId = s.owner.object_id,
      permissions = { keys = perms or ALL_KEYS } } } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

function M.vault(rg, name, props, opts)
  opts = opts or {}
  local res = E.arm("PUT", M.vault_path(rg, name), { location = opts.location or "westus", tags = opts.tags,
    properties = props or M.props() }, { api_version = opts.api_version or M.API })
  assert(res.status == 200, res.body)
  return res
end

local tokens = {}
function M.token(who)
  who = who or "owner"
  local key = who .. ":" .. tostring(E.seed().owner.client_secret) .. ":" ..
    tostring(E.control("GET", "clock").json.offset)
  if not tokens[key] then tokens[key] = E.token("https://vault.azure.net", who) end
  return tokens[key]
end

function M.req(method, vault, path, body, opts)
  opts = opts or {}
  local url = "https://" .. (opts.host or (vault .. ".vault.azure.net")) .. path
  if opts.api_version ~= false then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. "api-version=" .. (opts.api_version or M.DATA_API)
  end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local tok = opts.token
  if tok == nil then tok = M.token(opts.who) end
  if tok then headers["Authorization"] = "Bearer " .. tok end
  return assert(E.request({ method = method, url = url, headers = headers, body = body }))
end

--- Asserts a Key Vault error: status, code, optional innererror code and message (exact or pattern).
function M.assert_kv_error(res, status, code, inner, message)
  assert(res.status == status, "expected " .. status .. ", got " .. res.status .. ": " .. tostring(res.body))
  local e = res.json and res.json.error
  assert(type(e) == "table", "no KeyVaultError envelope: " .. tostring(res.body))
  assert(e.code == code, "expected code " .. code .. ", got " .. tostring(e.code) .. ": " .. res.body)
  if inner then
    assert(e.innererror and e.innererror.code == inner, "expected innererror " .. inner .. ": " .. res.body)
  end
  if message then
    assert(e.message == message or e.message:match(message), "unexpected message: " .. tostring(e.message))
  end
  return e
end

function M.role(scope, role_guid, principal)
  local id = require("azcmk.core").uuid4()
  local rd = "/subscriptions/" .. M.sub() .. "/providers/Microsoft.Authorization/roleDefinitions/" ..
    role_guid
  local res = E.arm("PUT", scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. id,
    { properties = { roleDefinitionId = rd, principalId = principal, principalType = "ServicePrincipal" } },
    { api_version = "2022-04-01" })
  assert(res.status == 201, res.body)
  return res.json.id
end

function M.keyaccess(kid, principal, trusted)
  local res = E.control("GET", "keyaccess?kid=" .. E.urlencode(kid) .. "&principal=" ..
    E.urlencode(principal or "") .. "&trusted=" .. tostring(trusted == true))
  assert(res.status == 200, res.body)
  return res.json.result, res.json.newest, res.json.versions
end

return M
