--- User-assigned managed identities: get, create, list, find by
-- principal or client id.
local base = require("azcmk.client.base")
local reconcile = require("azcmk.client.reconcile")
local ids = require("azcmk.client.ids")
local V = require("azcmk.client.api_versions")

local C = base.class("identities")
local TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"

local function path(self, o)
  if o.id then return base.id_path(o.id) end
  return base.resource_path(self, o, TYPE, o.name)
end

--- get{resource_group, name} or get{id} -> identity ({id, name, properties = {principalId,
-- clientId, tenantId}}), nil (absent), or nil, err.
function C:get(o)
  base.check(o, { id = "string?", resource_group = "string?", name = "string?" }, "identities:get")
  if not o.id and not (o.resource_group and o.name) then
    error("identities:get: id or resource_group + name required", 2)
  end
  return base.get_or_nil(self.p, path(self, o), { api_version = V.identities })
end

--- create{resource_group, name, location, tags?} -> the identity (201 new / 200 existing).
function C:create(o)
  base.check(o, { resource_group = "string", name = "string", location = "string", tags = "table?" },
    "identities:create")
  -- a PUT that fails ambiguously after its retries is read back: the identity in the asked
  -- location is the one this call made (or an earlier one of the same name: a PUT is a PUT)
  local res, err = reconcile.write(self.p, {
    what = "identity " .. o.name,
    send = function()
      return self.p:arm("PUT", path(self, o), { api_version = V.identities,
        body = { location = o.location, tags = o.tags or {} } })
    end,
    read = function()
      local got, gerr = self:get({ resource_group = o.resource_group, name = o.name,
        subscription = o.subscription })
      if not got then return nil, gerr end
      local function loc(s) return (tostring(s):lower():gsub("%s", "")) end
      if loc(got.location) ~= loc(o.location) then return nil end
      return { json = got }
    end,
    check = "see whether identity " .. o.name .. " exists in " .. o.resource_group
      .. " (az identity show)",
  })
  if not res then return nil, err end
  return res.json
end

--- list{resource_group?} -> array of identities of the group or of the subscription.
function C:list(o)
  o = base.check(o or {}, { resource_group = "string?" }, "identities:list")
  return base.all(self.p:arm_pages(base.list_path(self, o, TYPE), { api_version = V.identities }))
end

--- find{principal_id | client_id} -> the subscription's identity with that id, or nil.
function C:find(o)
  base.check(o, { principal_id = "string?", client_id = "string?" }, "identities:find")
  local list, err = self:list({ subscription = o.subscription })
  if not list then return nil, err end
  for _, i in ipairs(list) do
    local pr = i.properties or {}
    if (o.principal_id and tostring(pr.principalId):lower() == o.principal_id:lower())
      or (o.client_id and tostring(pr.clientId):lower() == o.client_id:lower()) then
      return i
    end
  end
  return nil
end

C.TYPE = TYPE
C.parse_id = ids.parse_resource_id
return C
