--- deploy: an ARM template with parameters into a resource group (`az deployment group
-- create`), e.g. the article's CMK template (examples/cmk-template.json). Parameters are
-- checked against the template before anything is sent: unknown names (with a "did you mean"),
-- missing required ones, and key ids of the wrong shape or cloud.
local cjson = require("cjson.safe")
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local common = require("azcmk.playbook.common")
local options = require("azcmk.options")
local plan = require("azcmk.playbook.plan")
local check = common.check

local M = {}

--- Reads and decodes a template file. Returns the table or nil, err (kind input).
function M.read_template(path)
  local f, ferr = io.open(path, "rb")
  if not f then
    return nil, errors.input("cannot read template file " .. path .. ": " .. tostring(ferr),
      { code = "TemplateNotFound", param = "template_file",
        hint = "pass the path of an ARM template (JSON) in `template_file`" })
  end
  local s = f:read("a")
  f:close()
  local t, jerr = cjson.decode(s)
  if type(t) ~= "table" then
    return nil, errors.input("template file " .. path .. " is not valid JSON: " .. tostring(jerr),
      { code = "InvalidTemplate", param = "template_file", hint = "fix the JSON of the template" })
  end
  return t
end

local function lower_map(t)
  local m = {}
  for k, v in pairs(t or {}) do m[tostring(k):lower()] = { name = k, def = v } end
  return m
end

-- The value of a parameter whether given plainly or as {value = ...}.
local function value_of(v)
  if type(v) == "table" and v.value ~= nil then return v.value end
  return v
end

--- Checks parameters against the template. Returns true or nil, err.
function M.check_parameters(template, params, cloud)
  local declared = lower_map(template.parameters)
  for name, v in pairs(params) do
    local d = declared[tostring(name):lower()]
    if not d then
      local list = {}
      for _, x in pairs(declared) do list[#list + 1] = x.name end
      table.sort(list)
      local suggestion = options.suggest(name, list)
      return nil, errors.input("the template has no parameter '" .. tostring(name) .. "'",
        { code = "UnknownParameter", param = "parameters",
        hint = (suggestion and ("did you mean " .. suggestion .. "? ") or "")
          .. "the template's parameters are: "
          .. table.concat(list, ", ") })
    end
    local val = value_of(v)
    if ids.looks_like_key_id(val) then
      local ok, kerr = ids.parse_key_id(val, cloud)
      if not ok then return nil, kerr end
    end
  end
  local given = lower_map(params)
  for lname, x in pairs(declared) do
    if not given[lname] and (type(x.def) ~= "table" or x.def.defaultValue == nil) then
      return nil, errors.input("the template needs parameter '" .. x.name .. "'", { code = "MissingParameter",
        param = "parameters", hint = "pass `parameters` with " .. x.name .. " = VALUE" })
    end
  end
  return true
end

--- Refuses what a CMK template cannot do: a registry with encryption on and a non-Premium SKU.
function M.check_resources(template)
  for _, r in ipairs(template.resources or {}) do
    if type(r) == "table" and tostring(r.type):lower() == "microsoft.containerregistry/registries" then
      local props = r.properties or {}
      local enc = props.encryption
      local sku = r.sku and r.sku.name
      if type(enc) == "table" and tostring(enc.status):lower() == "enabled" and type(sku) == "string"
        and not sku:find("^%[") and sku:lower() ~= "premium" then
        return nil, errors.input("the template creates a registry with a customer-managed key and SKU "
          .. sku,
          { code = "NonPremiumSku", param = "template",
            hint = "customer-managed keys need the Premium SKU; set sku.name to Premium" })
      end
    end
  end
  return true
end

--- The failed operations of a deployment (GET .../deployments/NAME/operations), each as
-- { resource = "type/name", code, message }; an empty list when they cannot be read.
function M.failed_operations(ctx, resource_group, name)
  local ops = ctx.deployments:operations({ resource_group = resource_group, name = name })
  local out = {}
  for _, op in ipairs(ops or {}) do
    local pr = type(op) == "table" and op.properties or {}
    if pr.provisioningState == "Failed" then
      local e = type(pr.statusMessage) == "table" and pr.statusMessage.error or {}
      local t = pr.targetResource or {}
      out[#out + 1] = { resource = tostring(t.resourceType) .. "/" .. tostring(t.resourceName),
        code = e.code or pr.statusCode, message = e.message }
    end
  end
  return out
end

-- A failed deployment's error with its operations' own codes and messages (ARM's own says
-- only "at least one resource deployment operation failed") and what to do next.
local function with_operations(ctx, err, o, name)
  if type(err) ~= "table" or err.code ~= "DeploymentFailed" then return err end
  local failed = M.failed_operations(ctx, o.resource_group, name)
  if #failed == 0 then return err end
  local parts = {}
  for _, f in ipairs(failed) do
    parts[#parts + 1] = f.resource .. ": " .. tostring(f.code) .. " " .. tostring(f.message)
  end
  err.operations = failed
  err.message = "deployment " .. name .. " failed: " .. table.concat(parts, "; ")
  err.hint = "fix what the operations name (often a parameter: `parameters`) and run the same deploy "
    .. "again; it redeploys in place"
  return err
end

--- deploy{resource_group, template (table) | template_file, parameters = {name = value},
-- name? (default: the template file's name, else "azcmk-deploy"), mode = "Incremental",
-- location? (creates a missing resource group), pipeline?, subscription?, progress?} ->
-- result { changed, name, id, provisioning_state, outputs, deployment } or nil, err.
function M.deploy(o)
  check(o, { resource_group = "string", template = "table?", template_file = "string?", parameters = "table?",
    name = "string?", mode = "string?", location = "string?", dry_run = "boolean?" }, "azcmk.playbook.deploy")
  local ok, err = ids.check_resource_group(o.resource_group)
  if not ok then return nil, err end
  local template = o.template
  if not template then
    if not o.template_file then
      return nil, errors.input("no template given", { code = "MissingArgument", param = "template_file",
        hint = "pass `template_file` (a path), or `template` (the template as a table)" })
    end
    template, err = M.read_template(o.template_file)
    if not template then return nil, err end
  end
  local name = o.name or (o.template_file and o.template_file:match("([^/]+)%.json$")) or "azcmk-deploy"
  ok, err = ids.check_deployment_name(name)
  if not ok then return nil, err end
  if o.mode and o.mode ~= "Incremental" and o.mode ~= "Complete" then
    return nil, errors.input("mode must be Incremental or Complete", { code = "InvalidMode", param = "mode",
      hint = "use Incremental (the default): Complete deletes resources the template does not name" })
  end
  local ctx
  ctx, err = common.context(o)
  if not ctx then return nil, err end
  local params = o.parameters or {}
  ok, err = M.check_parameters(template, params, ctx.p.cloud)
  if not ok then return nil, err end
  ok, err = M.check_resources(template)
  if not ok then return nil, err end
  -- read, plan
  local rg
  rg, err = ctx.resource_groups:get({ name = o.resource_group })
  if err then return nil, err end
  local rgpath = ids.resource_group_id(ctx.subscription, o.resource_group)
  local deployment_id = ids.resource_id(ctx.subscription, o.resource_group, "deployment", name)
  local actions = {}
  if rg then
    actions[1] = plan.action({ step = "resource_group", action = "reuse", name = o.resource_group, id = rg.id,
      description = "resource group " .. o.resource_group .. " exists", reason = "it exists" })
  elseif not o.location then
    return nil, errors.input("resource group '" .. o.resource_group .. "' does not exist", {
      code = "ResourceGroupNotFound", param = "location",
      hint = "create it first (setup does), or pass `location` to create it" })
  else
    actions[1] = plan.action({ step = "resource_group", action = "create", kind = "create_rg",
      name = o.resource_group, id = rgpath, description = "create resource group " .. o.resource_group
        .. " in " .. o.location, request = "PUT " .. rgpath,
      reason = "it does not exist and `location` was given" })
  end
  actions[2] = plan.action({ step = "deployment", action = "deploy", kind = "deploy", name = name,
    description = "deploy template " .. (o.template_file or "(given as a table)") .. " as deployment " .. name
      .. " into resource group " .. o.resource_group .. " (" .. (o.mode or "Incremental") .. " mode)",
    request = "PUT " .. deployment_id, id = deployment_id,
    reason = "a deployment is always sent: the template decides what it changes" })
  if o.dry_run then return plan.dry_result(ctx, actions, { name = name }) end
  -- apply
  local st = {}
  ok, err = plan.apply(ctx, actions, {
    create_rg = function()
      local r, rerr = ctx.resource_groups:create_or_update({ name = o.resource_group, location = o.location })
      if not r then return nil, rerr end
      return {}
    end,
    deploy = function()
      local lo = ctx:lro("deployment " .. name)
      local d, derr = ctx.deployments:create({ resource_group = o.resource_group, name = name,
        template = template, parameters = params, mode = o.mode, progress = lo.progress,
          interval = lo.interval,
        timeout = lo.timeout })
      if not d then return nil, with_operations(ctx, derr, o, name) end
      st.d = d
      return { id = d.id }
    end,
  }, st)
  if not ok then return nil, err end
  local props = st.d.properties or {}
  return { changed = true, steps = ctx.steps, warnings = ctx.warnings, plan = plan.view(actions), name = name,
    id = st.d.id, provisioning_state = props.provisioningState, outputs = props.outputs, deployment = st.d }
end

setmetatable(M, { __call = function(_, o) return M.deploy(o) end })
return M
