--- Key Vault management plane: vaults, access policies
-- (add / remove), network ACLs, purge protection, deleted vaults, recover, purge.
local base = require("azcmk.client.base")
local reconcile = require("azcmk.client.reconcile")
local V = require("azcmk.client.api_versions")

local C = base.class("vaults")
local TYPE = "Microsoft.KeyVault/vaults"

-- The permissions a registry identity needs on the key (access-policy model).
C.CMK_KEY_PERMISSIONS = { "get", "wrapKey", "unwrapKey" }
-- What the creator of a vault gets by default (like `az keyvault create`), enough to run
-- every azcmk playbook on keys.
C.ADMIN_KEY_PERMISSIONS = { "get", "list", "create", "update", "import", "delete", "recover", "backup",
  "restore", "rotate", "getrotationpolicy", "setrotationpolicy", "wrapKey", "unwrapKey", "encrypt", "decrypt",
  "sign", "verify" }

local function path(self, o)
  if o.id then return base.id_path(o.id) end
  return base.resource_path(self, o, TYPE, o.name)
end

--- get{resource_group, name} | get{id} -> vault, nil (absent), or nil, err.
function C:get(o)
  base.check(o, { id = "string?", resource_group = "string?", name = "string?" }, "vaults:get")
  return base.get_or_nil(self.p, path(self, o), { api_version = V.vaults })
end

--- create{resource_group, name, location, tenant_id, sku = "standard", enable_rbac = false,
-- enable_purge_protection = true, soft_delete_retention_days = 90, access_policies = {...},
-- network_acls = {...}, tags} -> the vault (waits while provisioningState is RegisteringDns).
function C:create(o)
  base.check(o, { resource_group = "string", name = "string", location = "string", tenant_id = "string",
    sku = "string?", enable_rbac = "boolean?", enable_purge_protection = "boolean?",
    soft_delete_retention_days = "number?", access_policies = "table?", network_acls = "table?",
    tags = "table?" }, "vaults:create", base.LRO)
  local props = {
    tenantId = o.tenant_id,
    sku = { family = "A", name = o.sku or "standard" },
    enableSoftDelete = true,
    softDeleteRetentionInDays = o.soft_delete_retention_days or 90,
    enableRbacAuthorization = o.enable_rbac == true,
    accessPolicies = (o.access_policies and #o.access_policies > 0) and o.access_policies or base.EMPTY_ARRAY,
    networkAcls = o.network_acls,
  }
  if o.enable_purge_protection ~= false then props.enablePurgeProtection = true end
  -- the vault is ready when DNS is registered: poll its provisioningState every second
  local res, err = self.p:arm_lro("PUT", path(self, o), base.lro_opts(o, V.vaults,
    { location = o.location, tags = o.tags, properties = props }, 1))
  if not res then return nil, err end
  return res.json
end

--- update{resource_group, name, properties = {...}, tags?} -> the vault (PATCH: only the given
-- properties change).
function C:update(o)
  base.check(o, { resource_group = "string?", name = "string?", id = "string?", properties = "table",
    tags = "table?" }, "vaults:update")
  local res, err = self.p:arm("PATCH", path(self, o), base.with_body(V.vaults,
    { properties = o.properties, tags = o.tags }))
  if not res then return nil, err end
  return res.json
end

--- enable_purge_protection{resource_group, name} -> the vault. IRREVERSIBLE: purge protection
-- can never be switched off again (soft delete is switched on with it).
function C:enable_purge_protection(o)
  base.check(o, { id = "string?", resource_group = "string?", name = "string?" },
    "vaults:enable_purge_protection")
  return self:update({ resource_group = o.resource_group, name = o.name, id = o.id,
    subscription = o.subscription, properties = { enableSoftDelete = true, enablePurgeProtection = true } })
end

--- set_network_acls{resource_group, name, default_action = "Allow"|"Deny", bypass =
-- "AzureServices"|"None", ip_rules = {"1.2.3.4/32"}} -> the vault.
function C:set_network_acls(o)
  base.check(o, { default_action = "string?", bypass = "string?", ip_rules = "table?", id = "string?",
    resource_group = "string?", name = "string?" }, "vaults:set_network_acls")
  local acls = { defaultAction = o.default_action or "Allow", bypass = o.bypass or "AzureServices" }
  if o.ip_rules then
    local rules = {}
    for _, r in ipairs(o.ip_rules) do rules[#rules + 1] = { value = r } end
    acls.ipRules = #rules > 0 and rules or base.EMPTY_ARRAY
  end
  return self:update({ resource_group = o.resource_group, name = o.name, id = o.id,
    subscription = o.subscription, properties = { networkAcls = acls } })
end

local function policy_body(o)
  local perms = {}
  for _, k in ipairs(o.keys or C.CMK_KEY_PERMISSIONS) do perms[#perms + 1] = k end
  return { properties = { accessPolicies = { { tenantId = o.tenant_id, objectId = o.object_id,
    permissions = { keys = perms } } } } }
end

local function edit_policy(self, o, kind)
  base.check(o, { tenant_id = "string", object_id = "string", keys = "table?", id = "string?",
    resource_group = "string?", name = "string?" }, "vaults:" .. kind .. "_access_policy")
  -- an edit that fails ambiguously after its retries is read back: the vault's entry for
  -- object_id grants the permissions (add) or none of them (remove)
  local res, err = reconcile.write(self.p, {
    what = "access policy " .. kind .. " for " .. o.object_id,
    send = function()
      return self.p:arm("PUT", path(self, o) .. "/accessPolicies/" .. kind,
        { api_version = V.vaults, body = policy_body(o) })
    end,
    read = function()
      local vault, verr = self:get(o.id and { id = o.id }
        or { resource_group = o.resource_group, name = o.name, subscription = o.subscription })
      if not vault then return nil, verr end
      local done
      if kind == "add" then done = C.policy_grants(vault, o.object_id, o.keys)
      else done = C.policy_lacks(vault, o.object_id, o.keys) end
      return done and { properties = { accessPolicies = vault.properties.accessPolicies } } or nil
    end,
    check = "look at the access policies of the vault (az keyvault show --query properties.accessPolicies) "
      .. "for object id " .. o.object_id,
  })
  if not res then return nil, err end
  return res.json or res
end

--- add_access_policy{resource_group, name, tenant_id, object_id, keys = {"get","wrapKey","unwrapKey"}}
-- (PUT .../accessPolicies/add: merges with the existing entry of object_id).
function C:add_access_policy(o) return edit_policy(self, o, "add") end

--- remove_access_policy{resource_group, name, tenant_id, object_id, keys} (PUT .../accessPolicies/remove).
function C:remove_access_policy(o) return edit_policy(self, o, "remove") end

--- The access-policy entry of object_id in a vault (or nil).
function C.policy_of(vault, object_id)
  local props = vault and vault.properties or {}
  for _, ap in ipairs(props.accessPolicies or {}) do
    if tostring(ap.objectId):lower() == tostring(object_id):lower() then return ap end
  end
  return nil
end

--- True when the entry of object_id grants every permission in `keys` (case-insensitive).
function C.policy_grants(vault, object_id, keys)
  local ap = C.policy_of(vault, object_id)
  if not ap then return false end
  local have = {}
  for _, k in ipairs((ap.permissions or {}).keys or {}) do have[tostring(k):lower()] = true end
  if have.all then return true end
  for _, k in ipairs(keys or C.CMK_KEY_PERMISSIONS) do
    if not have[k:lower()] then return false end
  end
  return true
end

--- True when the entry of object_id grants none of the permissions in `keys`.
function C.policy_lacks(vault, object_id, keys)
  local ap = C.policy_of(vault, object_id)
  if not ap then return true end
  local have = {}
  for _, k in ipairs((ap.permissions or {}).keys or {}) do have[tostring(k):lower()] = true end
  for _, k in ipairs(keys or C.CMK_KEY_PERMISSIONS) do
    if have[k:lower()] then return false end
  end
  return true
end

--- True when the vault uses Azure RBAC for data actions.
function C.uses_rbac(vault)
  return vault ~= nil and vault.properties ~= nil and vault.properties.enableRbacAuthorization == true
end

--- get_deleted{name, location} -> the deleted vault, nil (none), or nil, err.
function C:get_deleted(o)
  base.check(o, { name = "string", location = "string" }, "vaults:get_deleted")
  return base.get_or_nil(self.p, base.sub_path(self, o)
    .. "/providers/Microsoft.KeyVault/locations/" .. base.seg(o.location) .. "/deletedVaults/"
    .. base.seg(o.name), { api_version = V.vaults })
end

--- list_deleted{} -> the subscription's soft-deleted vaults.
function C:list_deleted(o)
  o = base.check(o or {}, {}, "vaults:list_deleted")
  return base.all(self.p:arm_pages(base.sub_path(self, o) .. "/providers/Microsoft.KeyVault/deletedVaults",
    { api_version = V.vaults }))
end

--- find_deleted{name} -> the deleted vault of that name (any location), or nil.
function C:find_deleted(o)
  base.check(o, { name = "string" }, "vaults:find_deleted")
  local list, err = self:list_deleted({ subscription = o.subscription })
  if not list then return nil, err end
  for _, d in ipairs(list) do
    if tostring(d.name):lower() == o.name:lower() then return d end
  end
  return nil
end

--- recover{resource_group, name, location, tenant_id, sku?} -> the recovered vault
-- (PUT with createMode "recover").
function C:recover(o)
  base.check(o, { resource_group = "string", name = "string", location = "string", tenant_id = "string",
    sku = "string?" }, "vaults:recover", base.LRO)
  local res, err = self.p:arm_lro("PUT", path(self, o), base.lro_opts(o, V.vaults, { location = o.location,
    properties = { tenantId = o.tenant_id, sku = { family = "A", name = o.sku or "standard" },
      createMode = "recover" } }, 1))
  if not res then return nil, err end
  return res.json
end

--- delete{resource_group, name} -> true. The vault goes to soft delete (recoverable).
function C:delete(o)
  base.check(o, { resource_group = "string?", name = "string?", id = "string?" }, "vaults:delete")
  local res, err = self.p:arm("DELETE", path(self, o), { api_version = V.vaults })
  if not res then return nil, err end
  return true
end

--- purge{name, location} -> true. Permanently destroys a soft-deleted vault (refused by Azure
-- while purge protection is on). Only ever called when a user asks for exactly this.
function C:purge(o)
  base.check(o, { name = "string", location = "string" }, "vaults:purge", base.LRO)
  local res, err = self.p:arm_lro("POST", base.sub_path(self, o)
    .. "/providers/Microsoft.KeyVault/locations/" .. base.seg(o.location) .. "/deletedVaults/"
    .. base.seg(o.name) .. "/purge", base.lro_opts(o, V.vaults))
  if not res then return nil, err end
  return true
end

C.TYPE = TYPE
return C
