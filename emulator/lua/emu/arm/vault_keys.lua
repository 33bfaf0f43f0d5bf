--- emu.arm.vault_keys: Microsoft.KeyVault/vaults/keys, the management-plane view of keys (what
-- ARM templates and Bicep use to create a key without data-plane access).
--   PUT  .../vaults/{kv}/keys/{key}   creates the first version; an existing key is returned as
--                                      it is, nothing written (Azure's documented behaviour)
--   GET  .../vaults/{kv}/keys/{key}, .../vaults/{kv}/keys, .../keys/{key}/versions[/{version}]
-- Keys are the same records the data plane serves (emu.keyvault.store). ARM RBAC actions:
-- Microsoft.KeyVault/vaults/keys/write, /read, /versions/read.
local arm = require("emu.arm")
local json = require("emu.json")
local errors = require("emu.errors")
local store = require("emu.keyvault.store")

local M = {}

local TYPE = "Microsoft.KeyVault/vaults/keys"
arm.register_type({ type = TYPE, api_versions = { "2026-02-01", "2025-05-01", "2024-12-01-preview", "2024-11-01",
  "2024-04-01-preview", "2023-08-01-preview", "2023-07-01", "2023-02-01", "2022-11-01", "2022-07-01",
  "2022-02-01-preview", "2021-11-01-preview", "2021-10-01", "2021-06-01-preview", "2021-04-01-preview",
  "2020-04-01-preview", "2019-09-01" } })
arm.register_type({ type = "Microsoft.KeyVault/vaults/keys/versions",
  api_versions = arm.types[TYPE:lower()].api_versions })

local BASE = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{name}/keys"

local function bad(msg) errors.throw(errors.arm(400, "BadRequest", msg)) end

local function vault_of(req)
  local p = req.params
  arm.require_rg(p.sub, p.rg)
  local id = "/subscriptions/" .. p.sub .. "/resourceGroups/" .. p.rg .. "/providers/Microsoft.KeyVault/vaults/" ..
    p.name
  local v = arm.get(id)
  if not v then errors.throw(arm.not_found("Microsoft.KeyVault/vaults", p.name, p.rg)) end
  return v
end

local function key_not_found(vault, name)
  -- synthetic (ARM's text for a missing key is not known)
  return errors.arm(404, "ResourceNotFound", "The Resource 'Microsoft.KeyVault/vaults/" .. vault.name .. "/keys/" ..
    name .. "' under resource group '" .. (vault.id:match("/resourceGroups/([^/]+)/") or "") .. "' was not found. " ..
    "For more details please go to https://aka.ms/ARMResourceNotFoundFix")
end

local function render_policy(policy)
  if not policy then return nil end
  local las = json.array({})
  for _, la in ipairs(policy.lifetimeActions or {}) do
    las[#las + 1] = { trigger = json.copy(la.trigger), action = { type = la.action.type:lower() } }
  end
  local attrs = json.copy(policy.attributes or {})
  return { lifetimeActions = las, attributes = attrs }
end

local function render(vault, k, ver, versioned)
  local base = store.base_url(vault.name)
  local a = { enabled = ver.enabled, created = ver.created, updated = ver.updated,
    recoveryLevel = store.recovery_level(vault), exportable = ver.exportable == true }
  if ver.nbf then a.nbf = ver.nbf end
  if ver.exp then a.exp = ver.exp end
  local props = { attributes = a, kty = ver.kty, keyOps = json.array(json.copy(ver.key_ops or {})),
    keyUri = base .. "/keys/" .. k.name, keyUriWithVersion = base .. "/keys/" .. k.name .. "/" .. ver.v }
  if ver.size then props.keySize = ver.size end
  if ver.crv then props.curveName = ver.crv end
  if not versioned then props.rotationPolicy = render_policy(k.policy) end
  local id = vault.id .. "/keys/" .. k.name .. (versioned and ("/versions/" .. ver.v) or "")
  return { id = id, name = versioned and ver.v or k.name,
    type = versioned and "Microsoft.KeyVault/vaults/keys/versions" or TYPE, location = vault.location,
    tags = json.copy(ver.tags or {}), properties = props }
end

local function live(vault, name)
  local k = store.auto_rotate(vault.name, name)
  if not k or k.deleted then errors.throw(key_not_found(vault, name)) end
  return k
end

local KTY = { rsa = "RSA", ["rsa-hsm"] = "RSA-HSM", ec = "EC", ["ec-hsm"] = "EC-HSM" }
local OPS = { encrypt = "encrypt", decrypt = "decrypt", sign = "sign", verify = "verify", wrapkey = "wrapKey",
  unwrapkey = "unwrapKey", import = "import", release = "release" }

arm.route({ method = "PUT", path = BASE .. "/{key}", type = TYPE, action = "Microsoft.KeyVault/vaults/keys/write",
  handler = function(req)
    local vault = vault_of(req)
    local name = req.params.key
    if #name > 127 or not name:match("^[%w%-]+$") then
      return errors.arm(400, "BadRequest", "The key name '" .. name .. "' is invalid. Key names may contain only " ..
        "alphanumeric characters and dashes, 1-127 characters.") -- synthetic
    end
    local body = arm.body(req)
    local p = body.properties
    if type(p) ~= "table" or json.is_array(p) then bad("The parameter properties is required.") end -- synthetic
    local existing = store.key(vault.name, name)
    if existing and existing.deleted then
      return errors.arm(409, "Conflict", "Key " .. name .. " is currently in a deleted but recoverable state, and " ..
        "its name cannot be reused; in this state, the key can only be recovered or purged.")
    end
    if existing then
      -- "If it already exists, then the existing key is returned without any write operations being performed."
      existing = live(vault, name)
      return 200, render(vault, existing, store.newest(existing))
    end
    local kty = type(p.kty) == "string" and KTY[p.kty:lower()]
    if not kty then bad("Invalid value '" .. tostring(p.kty) .. "' for properties.kty.") end -- synthetic
    local premium = vault.properties.sku and vault.properties.sku.name == "premium"
    if kty:find("HSM", 1, true) and not premium then
      -- synthetic (the text below)
      bad("Hardware key operation not allowed on standard vault") -- the data plane's text; ARM's is unknown
    end
    local o = { kty = kty }
    if kty:sub(1, 3) == "RSA" then
      local size = p.keySize
      if size == nil or size == json.null then size = 2048 end
      if size ~= 2048 and size ~= 3072 and size ~= 4096 then
        bad("Invalid value '" .. tostring(size) .. "' for properties.keySize.") -- synthetic
      end
      o.size = math.floor(size)
    else
      local crv = p.curveName
      if crv == nil or crv == json.null then crv = "P-256" end
      if type(crv) ~= "string" or not store.EC_LEN[crv:upper()] then
        bad("Invalid value '" .. tostring(crv) .. "' for properties.curveName.") -- synthetic
      end
      o.crv = crv:upper()
    end
    if p.keyOps ~= nil and p.keyOps ~= json.null then
      if type(p.keyOps) ~= "table" then bad("Invalid value for properties.keyOps.") end -- synthetic
      local ops = json.array({})
      for _, x in ipairs(p.keyOps) do
        local c = type(x) == "string" and OPS[x:lower()]
        if not c then bad("Invalid value '" .. tostring(x) .. "' in properties.keyOps.") end -- synthetic
        ops[#ops + 1] = c
      end
      o.key_ops = ops
    end
    local a = p.attributes
    if a ~= nil and a ~= json.null then
      if type(a) ~= "table" or json.is_array(a) then bad("Invalid value for properties.attributes.") end -- synthetic
      if a.enabled ~= nil and type(a.enabled) ~= "boolean" then
        bad("Invalid value for properties.attributes.enabled.") -- synthetic
      end
      o.enabled = a.enabled
      for _, f in ipairs({ "nbf", "exp" }) do
        if a[f] ~= nil and a[f] ~= json.null then
          if type(a[f]) ~= "number" or a[f] < 0 or a[f] ~= math.floor(a[f]) then
            bad("Invalid value for properties.attributes." .. f .. ".") -- synthetic
          end
          o[f] = a[f]
        end
      end
    end
    local policy
    if p.rotationPolicy ~= nil and p.rotationPolicy ~= json.null then
      if type(p.rotationPolicy) ~= "table" then bad("Invalid value for properties.rotationPolicy.") end -- synthetic
      policy = require("emu.services.keyvault_policy").validate(p.rotationPolicy, bad)
      policy.attributes.created, policy.attributes.updated = store.now(), store.now()
    end
    o.tags = arm.check_tags(body.tags)
    o.jwk = store.generate_jwk(o.kty, o.size, o.crv)
    local ver = store.new_version(o)
    local conflict
    local k = store.update_key(vault.name, name, function(rec)
      if rec then conflict = true return rec end
      return { name = name, vault = vault.name:lower(), versions = json.array({ ver }), policy = policy }
    end)
    if conflict then return 200, render(vault, k, store.newest(k)) end
    return 200, render(vault, k, ver)
  end })

arm.route({ method = "GET", path = BASE .. "/{key}", type = TYPE, action = "Microsoft.KeyVault/vaults/keys/read",
  handler = function(req)
    local vault = vault_of(req)
    local k = live(vault, req.params.key)
    return 200, render(vault, k, store.newest(k))
  end })

arm.route({ method = "GET", path = BASE, type = TYPE, action = "Microsoft.KeyVault/vaults/keys/read",
  handler = function(req)
    local vault = vault_of(req)
    local out = json.array({})
    for _, k in ipairs(store.keys(vault.name)) do
      if not k.deleted then
        k = store.auto_rotate(vault.name, k.name) or k
        out[#out + 1] = render(vault, k, store.newest(k))
      end
    end
    return 200, { value = out }
  end })

arm.route({ method = "GET", path = BASE .. "/{key}/versions", type = "Microsoft.KeyVault/vaults/keys/versions",
  action = "Microsoft.KeyVault/vaults/keys/versions/read",
  handler = function(req)
    local vault = vault_of(req)
    local k = live(vault, req.params.key)
    local out = json.array({})
    for _, v in ipairs(k.versions) do out[#out + 1] = render(vault, k, v, true) end
    return 200, { value = out }
  end })

arm.route({ method = "GET", path = BASE .. "/{key}/versions/{version}",
  type = "Microsoft.KeyVault/vaults/keys/versions",
  action = "Microsoft.KeyVault/vaults/keys/versions/read",
  handler = function(req)
    local vault = vault_of(req)
    local k = live(vault, req.params.key)
    local v = store.find_version(k, req.params.version)
    if not v then return key_not_found(vault, req.params.key .. "/versions/" .. req.params.version) end
    return 200, render(vault, k, v, true)
  end })

return M
