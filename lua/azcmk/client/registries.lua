--- Container registries: create (with CMK), get, update
-- (PATCH only what changes - never a GET->PUT round trip),
-- identity assign, encryption (rotate-key), list.
local base = require("azcmk.client.base")
local errors = require("azcmk.errors")
local V = require("azcmk.client.api_versions")

local C = base.class("registries")
local TYPE = "Microsoft.ContainerRegistry/registries"

local function path(self, o)
  if o.id then return base.id_path(o.id) end
  return base.resource_path(self, o, TYPE, o.name)
end

--- get{resource_group, name} | get{id} -> registry, nil (absent), or nil, err.
function C:get(o)
  base.check(o, { id = "string?", resource_group = "string?", name = "string?" }, "registries:get")
  return base.get_or_nil(self.p, path(self, o), { api_version = V.registries })
end

--- create{resource_group, name, location, sku = "Premium", identity_id (UAI resource id),
-- identity_client_id, key_id, admin_user_enabled = false, tags, progress} -> the registry after
-- the long-running operation. With key_id, encryption is enabled with that key (versioned or
-- versionless) through the user-assigned identity (its client id).
function C:create(o)
  base.check(o, { resource_group = "string", name = "string", location = "string", sku = "string?",
    identity_id = "string?", identity_client_id = "string?", key_id = "string?", tags = "table?",
    admin_user_enabled = "boolean?" }, "registries:create", base.LRO)
  local body = { location = o.location, tags = o.tags, sku = { name = o.sku or "Premium" },
    properties = { adminUserEnabled = o.admin_user_enabled == true, anonymousPullEnabled = false } }
  if o.identity_id then
    body.identity = { type = "UserAssigned", userAssignedIdentities = { [o.identity_id] = {} } }
  end
  if o.key_id then
    body.properties.encryption = { status = "enabled", keyVaultProperties = { keyIdentifier = o.key_id,
      identity = o.identity_client_id } }
  end
  local res, err = self.p:arm_lro("PUT", path(self, o), base.lro_opts(o, V.registries, body))
  if not res then return nil, err end
  return res.json
end

--- update{resource_group, name, body = {...}} -> the registry after the operation (PATCH).
function C:update(o)
  base.check(o, { body = "table", id = "string?", resource_group = "string?", name = "string?" },
    "registries:update", base.LRO)
  local res, err = self.p:arm_lro("PATCH", path(self, o), base.lro_opts(o, V.registries, o.body))
  if not res then return nil, err end
  return res.json
end

--- The identity type string after adding "SystemAssigned" and/or "UserAssigned".
function C.identity_type(current, system, user)
  local t = tostring(current or "None"):lower()
  local has_s = system or t:find("systemassigned", 1, true) ~= nil
  local has_u = user or t:find("userassigned", 1, true) ~= nil
  if has_s and has_u then return "SystemAssigned, UserAssigned" end
  if has_s then return "SystemAssigned" end
  if has_u then return "UserAssigned" end
  return "None"
end

--- assign_identity{resource_group, name, system = true | identity_id = UAI resource id,
-- registry = (the current registry, saves a GET)} -> the registry (PATCH identity only).
function C:assign_identity(o)
  base.check(o, { system = "boolean?", identity_id = "string?", registry = "table?", id = "string?",
    resource_group = "string?", name = "string?" }, "registries:assign_identity", base.LRO)
  local reg = o.registry
  if not reg then
    local err
    reg, err = self:get({ id = o.id, resource_group = o.resource_group, name = o.name,
      subscription = o.subscription })
    if not reg then return nil, err end
  end
  local cur = reg.identity or {}
  local ident = { type = C.identity_type(cur.type, o.system, o.identity_id ~= nil or nil) }
  -- the identities already attached are named again (as the Azure CLI does), so that no
  -- service has to merge a partial map
  local map, any = {}, false
  for id in pairs(cur.userAssignedIdentities or {}) do map[id] = {}; any = true end
  if o.identity_id then
    local seen = false
    for id in pairs(map) do if id:lower() == o.identity_id:lower() then seen = true end end
    if not seen then map[o.identity_id] = {} end
    any = true
  end
  if any then ident.userAssignedIdentities = map end
  return self:update({ resource_group = o.resource_group, name = o.name, id = o.id or reg.id,
    subscription = o.subscription, progress = o.progress, interval = o.interval, timeout = o.timeout,
    body = { identity = ident } })
end

--- set_encryption{resource_group, name, key_id, identity (client id or "system")} -> the
-- registry after the operation: `az acr encryption rotate-key` as a minimal PATCH.
function C:set_encryption(o)
  base.check(o, { key_id = "string", identity = "string", id = "string?", resource_group = "string?",
    name = "string?" }, "registries:set_encryption", base.LRO)
  return self:update({ resource_group = o.resource_group, name = o.name, id = o.id,
    subscription = o.subscription, progress = o.progress, interval = o.interval, timeout = o.timeout,
    body = { properties = { encryption = { status = "enabled", keyVaultProperties = {
      keyIdentifier = o.key_id, identity = o.identity } } } } })
end

--- The registry's tag `name` (ARM compares tag names case-insensitively): value, stored name, or nil.
function C.tag(reg, name)
  local want = tostring(name):lower()
  for k, v in pairs(reg and reg.tags or {}) do
    if type(k) == "string" and k:lower() == want then return v, k end
  end
  return nil
end

--- set_tags{id | resource_group + name, set = {name = value}?, remove = {name, ...}?} -> the
-- registry after the PATCH. ARM's PATCH replaces the whole tag map, so the registry is read
-- first and the user's other tags are sent back with it (read just before the write, to keep
-- the window for a concurrent tag change short); names compare case-insensitively.
function C:set_tags(o)
  base.check(o, { set = "table?", remove = "table?", id = "string?", resource_group = "string?",
    name = "string?" }, "registries:set_tags", base.LRO)
  local reg, err = self:get({ id = o.id, resource_group = o.resource_group, name = o.name })
  if err then return nil, err end
  if not reg then
    return nil, errors.new("azure", { status = 404, code = "ResourceNotFound",
      param = "registry", message = "registry " .. tostring(o.id or o.name) .. " was not found",
      hint = "check `registry` and `resource_group`" })
  end
  local drop = {}
  for _, k in ipairs(o.remove or {}) do drop[k:lower()] = true end
  for k in pairs(o.set or {}) do drop[k:lower()] = true end
  local tags = {}
  for k, v in pairs(reg.tags or {}) do
    if not drop[tostring(k):lower()] then tags[k] = v end
  end
  for k, v in pairs(o.set or {}) do tags[k] = v end
  return self:update({ id = reg.id, subscription = o.subscription, progress = o.progress,
    interval = o.interval, timeout = o.timeout, body = { tags = tags } })
end

--- list{resource_group?} -> registries of a group or of the subscription.
function C:list(o)
  o = base.check(o or {}, { resource_group = "string?" }, "registries:list")
  return base.all(self.p:arm_pages(base.list_path(self, o, TYPE), { api_version = V.registries }))
end

--- each{resource_group?} -> an iterator over the registries of a group or of the
-- subscription, page by page (nextLink followed; one page in memory at a time): yields the
-- registry as the list answers it (every property a GET would give), or false, err once.
function C:each(o)
  o = base.check(o or {}, { resource_group = "string?" }, "registries:each")
  return self.p:arm_pages(base.list_path(self, o, TYPE), { api_version = V.registries })
end

--- The registry's encryption (properties.encryption, as `az acr encryption show` prints it).
function C.encryption(reg)
  return reg and reg.properties and reg.properties.encryption or nil
end

--- True when the registry has CMK on.
function C.cmk_enabled(reg)
  local e = C.encryption(reg)
  return type(e) == "table" and tostring(e.status):lower() == "enabled"
    and type(e.keyVaultProperties) == "table"
end

--- The registry's user-assigned identity whose client id (or principal id) is `v`:
-- returns resource id, {principalId, clientId} or nil.
function C.user_identity(reg, client_id, principal_id)
  local map = reg and reg.identity and reg.identity.userAssignedIdentities or {}
  for id, v in pairs(map) do
    if type(v) == "table" then
      if (client_id and tostring(v.clientId):lower() == client_id:lower())
        or (principal_id and tostring(v.principalId):lower() == principal_id:lower()) then
        return id, v
      end
    end
  end
  return nil
end

--- probe{login_server} -> { status, code, message, ok }: an anonymous GET of the registry's
-- data plane (https://{login_server}/v2/). A reachable registry answers 401 (authentication
-- required); a CMK registry that cannot use its key answers 403. Never sends a token.
function C:probe(o)
  base.check(o, { login_server = "string" }, "registries:probe")
  local res, err, raw = self.p:send({ method = "GET", url = "https://" .. o.login_server .. "/v2/",
    auth = false })
  if res then return { status = res.status, ok = true } end
  if err and err.status then
    -- ACR's data plane answers {"errors":[{"code","message","detail"}]}
    local e = raw and type(raw.json) == "table" and type(raw.json.errors) == "table" and raw.json.errors[1]
    return { status = err.status, code = type(e) == "table" and e.code or err.code,
      message = type(e) == "table" and e.message or err.message, ok = err.status == 401 }
  end
  return nil, err
end

C.TYPE = TYPE
return C
