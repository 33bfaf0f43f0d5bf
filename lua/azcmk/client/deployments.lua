--- ARM template deployments: create (long-running), get, operations.
local base = require("azcmk.client.base")
local V = require("azcmk.client.api_versions")

local C = base.class("deployments")

local function path(self, o)
  return base.rg_path(self, o) .. "/providers/Microsoft.Resources/deployments/" .. base.seg(o.name)
end

--- create{resource_group, name, template (table), parameters = {name = value, ...} (values are
-- wrapped as {value = ...}), mode = "Incremental", progress} -> the deployment after it ended.
function C:create(o)
  base.check(o, { resource_group = "string", name = "string", template = "table", parameters = "table?",
    mode = "string?" }, "deployments:create", base.LRO)
  local params = {}
  for k, v in pairs(o.parameters or {}) do
    if type(v) == "table" and (v.value ~= nil or v.reference ~= nil) then params[k] = v
    else params[k] = { value = v } end
  end
  local body = { properties = { mode = o.mode or "Incremental", template = o.template,
    parameters = params } }
  if next(params) == nil then body.properties.parameters = nil end
  local res, err = self.p:arm_lro("PUT", path(self, o), base.lro_opts(o, V.deployments, body))
  if not res then return nil, err end
  return res.json
end

--- get{resource_group, name} -> the deployment, nil, or nil, err.
function C:get(o)
  base.check(o, { resource_group = "string", name = "string" }, "deployments:get")
  return base.get_or_nil(self.p, path(self, o), { api_version = V.deployments })
end

--- operations{resource_group, name} -> the deployment's operations.
function C:operations(o)
  base.check(o, { resource_group = "string", name = "string" }, "deployments:operations")
  return base.all(self.p:arm_pages(path(self, o) .. "/operations", { api_version = V.deployments }))
end

return C
