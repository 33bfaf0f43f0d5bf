--- emu.arm.resource_groups: Microsoft.Resources/resourceGroups.
--   PUT    /subscriptions/{sub}/resourcegroups/{rg}   201 new / 200 update (synchronous)
--   GET    .../resourcegroups/{rg}                    200 / 404 ResourceGroupNotFound
--   HEAD   .../resourcegroups/{rg}                    204 / 404
--   PATCH  .../resourcegroups/{rg}                    tags
--   DELETE .../resourcegroups/{rg}                    202 + Location (.../operationresults/{id})
--   GET    /subscriptions/{sub}/resourcegroups        list
local arm = require("emu.arm")
local lro = require("emu.lro")
local errors = require("emu.errors")
local json = require("emu.json")

local M = {}

M.TYPE = "Microsoft.Resources/resourceGroups"
arm.register_type({ type = M.TYPE, core = true,
  api_versions = { "2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01",
    "2022-09-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-08-01", "2020-06-01", "2019-10-01",
    "2019-08-01", "2019-07-01", "2019-05-10", "2019-05-01", "2019-03-01", "2018-05-01", "2018-02-01",
    "2017-05-10", "2016-09-01", "2016-07-01", "2016-02-01", "2015-11-01" } })

local PATH = "/subscriptions/{sub}/resourcegroups/{rg}"

local function rg_scope(req) return arm.rg_id(req.params.sub, req.params.rg) end

--- Name rules: 1-90 characters of letters, digits, '-', '_', '.', '(', ')'; not ending in '.'.
function M.check_name(name)
  if #name > 90 then
    return errors.arm(400, "InvalidResourceGroup", "The provided resource group name '" .. name .. -- synthetic
      "' is too long. The name must be 1 to 90 characters long.")
  end
  local bad = name:gsub("[%w%-_%.%(%)]", "")
  if bad ~= "" or name:sub(-1) == "." then
    return errors.arm(400, "InvalidResourceGroup", "The provided resource group name '" .. name .. -- synthetic
      "' has these invalid characters: '" .. (bad ~= "" and bad or ".") .. "'. The name can only be a letter, " ..
      "digit, '-', '.', '(', ')' or '_'. It cannot end with a period.")
  end
end

local function deleting(name)
  return errors.arm(409, "ResourceGroupBeingDeleted", "The resource group '" .. name .. -- synthetic
    "' is in deprovisioning state and cannot perform this operation.")
end

arm.route({ method = "PUT", path = PATH, type = M.TYPE, scope = rg_scope,
  action = "Microsoft.Resources/subscriptions/resourceGroups/write",
  handler = function(req)
    local p = req.params
    local st, b = M.check_name(p.rg)
    if st then return st, b end
    local body = arm.body(req)
    local loc = arm.require_location(body, M.TYPE)
    local tags = arm.check_tags(body.tags)
    local id = arm.rg_id(p.sub, p.rg)
    local created = false
    local res, err = arm.update(id, function(old)
      if old then
        if old.properties.provisioningState == "Deleting" then return old, "deleting" end
        if old.location ~= loc then return old, "location" end
        old.tags = body.tags ~= nil and tags or old.tags
        if body.managedBy ~= nil then old.managedBy = body.managedBy end
        return old
      end
      created = true
      return { id = id, name = p.rg, type = M.TYPE, location = loc, tags = body.tags ~= nil and tags or nil,
        managedBy = type(body.managedBy) == "string" and body.managedBy or nil,
        properties = { provisioningState = "Succeeded" } }
    end)
    if err == "deleting" then return deleting(res.name) end
    if err == "location" then
      return errors.arm(409, "InvalidResourceGroupLocation", "Invalid resource group location '" .. loc .. -- synthetic
        "'. The Resource group already exists in location '" .. res.location .. "'.")
    end
    return created and 201 or 200, arm.render(res)
  end })

arm.route({ method = { "GET", "HEAD" }, path = PATH, type = M.TYPE, scope = rg_scope,
  action = "Microsoft.Resources/subscriptions/resourceGroups/read",
  handler = function(req)
    local res = arm.get(arm.rg_id(req.params.sub, req.params.rg))
    if req.method == "HEAD" then return res and 204 or 404, nil end
    if not res then arm.require_rg(req.params.sub, req.params.rg) end
    return 200, arm.render(res)
  end })

arm.route({ method = "PATCH", path = PATH, type = M.TYPE, scope = rg_scope,
  action = "Microsoft.Resources/subscriptions/resourceGroups/write",
  handler = function(req)
    arm.require_rg(req.params.sub, req.params.rg)
    local res = arm.patch_tags(arm.rg_id(req.params.sub, req.params.rg), arm.body(req))
    if not res then arm.require_rg(req.params.sub, req.params.rg) end
    return 200, arm.render(res)
  end })

lro.register("resourceGroups.delete", function(args)
  arm.delete_tree(args.id)
  return true, nil, 200
end, function(args)
  -- a deletion that failed (emu.lro's forced outcomes) leaves the group as it was
  arm.update(args.id, function(cur)
    if cur then cur.properties.provisioningState = "Succeeded" end
    return cur
  end)
end)

arm.route({ method = "DELETE", path = PATH, type = M.TYPE, scope = rg_scope,
  action = "Microsoft.Resources/subscriptions/resourceGroups/delete",
  handler = function(req)
    local id = arm.rg_id(req.params.sub, req.params.rg)
    local res, err = arm.update(id, function(old)
      if not old then return nil, "missing" end
      if old.properties.provisioningState == "Deleting" then return old, "deleting" end
      old.properties.provisioningState = "Deleting"
      return old
    end)
    if err == "missing" then arm.require_rg(req.params.sub, req.params.rg) end
    local headers = lro.begin({ req = req, prefix = "/subscriptions/" .. req.params.sub, style = "location",
      action = "resourceGroups.delete", args = { id = res.id }, results_segment = "operationresults" })
    return 202, nil, headers
  end })

arm.route({ method = "GET", path = "/subscriptions/{sub}/resourcegroups", type = M.TYPE,
  scope = function(req) return "/subscriptions/" .. req.params.sub end,
  action = "Microsoft.Resources/subscriptions/resourceGroups/read",
  handler = function(req)
    local out = json.array({})
    for _, r in ipairs(arm.list({ type = M.TYPE, under = "/subscriptions/" .. req.params.sub })) do
      out[#out + 1] = arm.render(r)
    end
    return 200, { value = out }
  end })

return M
