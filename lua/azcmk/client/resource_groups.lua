--- Resource groups: get, create_or_update, list.
local base = require("azcmk.client.base")
local V = require("azcmk.client.api_versions")

local C = base.class("resource_groups")

local function path(self, o)
  return base.sub_path(self, o) .. "/resourcegroups/" .. base.seg(o.name)
end

--- get{name} -> the resource group, or nil (absent), or nil, err.
function C:get(o)
  base.check(o, { name = "string" }, "resource_groups:get")
  return base.get_or_nil(self.p, path(self, o), { api_version = V.resource_groups })
end

--- create_or_update{name, location, tags?} -> the resource group, or nil, err.
function C:create_or_update(o)
  base.check(o, { name = "string", location = "string", tags = "table?" }, "resource_groups:create_or_update")
  local res, err = self.p:arm("PUT", path(self, o), { api_version = V.resource_groups,
    body = { location = o.location, tags = o.tags } })
  if not res then return nil, err end
  return res.json
end

--- list{} -> array of resource groups, or nil, err.
function C:list(o)
  o = base.check(o or {}, {}, "resource_groups:list")
  return base.all(self.p:arm_pages(base.sub_path(self, o) .. "/resourcegroups",
    { api_version = V.resource_groups }))
end

return C
