--- The generic resource list: find a vault or registry by name anywhere in the subscription
-- (`GET /subscriptions/{sub}/resources?$filter=resourceType eq '...' and name eq '...'`), the
-- way the Azure CLI finds a resource group from a name.
local base = require("azcmk.client.base")
local ids = require("azcmk.client.ids")
local V = require("azcmk.client.api_versions")

local C = base.class("resources")

local function api_version(resource_type)
  return resource_type:lower() == "microsoft.keyvault/vaults" and V.resources_vaults or V.resources
end

--- find{type, name} -> { id, name, type, location, resource_group } or nil (absent), or nil, err.
function C:find(o)
  base.check(o, { type = "string", name = "string" }, "resources:find")
  if o.name:find("'", 1, true) then return nil end
  local api = api_version(o.type)
  local filter = "resourceType eq '" .. o.type .. "' and name eq '" .. o.name .. "'"
  for item, err in self.p:arm_pages(base.sub_path(self, o) .. "/resources",
    { api_version = api, query = { ["$filter"] = filter } }) do
    if not item then return nil, err end
    if type(item) == "table" and tostring(item.name):lower() == o.name:lower() then
      local r = ids.parse_resource_id(item.id)
      item.resource_group = r and r.resource_group
      return item
    end
  end
  return nil
end

--- list{type} -> every resource of that type in the subscription.
function C:list(o)
  base.check(o, { type = "string" }, "resources:list")
  local api = api_version(o.type)
  return base.all(self.p:arm_pages(base.sub_path(self, o) .. "/resources",
    { api_version = api, query = { ["$filter"] = "resourceType eq '" .. o.type .. "'" } }))
end

return C
