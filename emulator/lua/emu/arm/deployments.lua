--- emu.arm.deployments: Microsoft.Resources/deployments at resource-group scope (ARM templates).
--   PUT    /subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Resources/deployments/{name}
--   GET    same; GET .../deployments (list); DELETE same
--   GET    .../deployments/{name}/operations            the per-resource operations
--   GET    .../deployments/{name}/operationStatuses/{id} {"status":"Running"|"Succeeded"|"Failed"[,"error"]}
-- The PUT validates the request and the template (400 InvalidTemplate, synchronously, as ARM
-- does), then deploys the resources in dependency order through THE SAME handlers as direct ARM
-- calls (an in-process PUT through the router with the caller's token: same RBAC, same checks,
-- same CMK rules), and answers 201 + Azure-AsyncOperation with provisioningState "Accepted".
-- The outcome shows (Running until the LRO pacing of /_emulator/config is met, then Succeeded
-- or Failed) on GET and on the status URL. A failure is ARM's DeploymentFailed with each inner
-- RP error as a JSON string in details[].message.
local arm = require("emu.arm")
local router = require("emu.router")
local errors = require("emu.errors")
local json = require("emu.json")
local clock = require("emu.clock")
local util = require("emu.util")
local lro = require("emu.lro")
local template = require("emu.template")

local M = {}

M.TYPE = "Microsoft.Resources/deployments"
arm.register_type({ type = M.TYPE, core = true,
  api_versions = { "2026-06-01", "2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01",
    "2022-09-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-06-01", "2019-10-01", "2019-08-01",
    "2019-07-01", "2019-05-10", "2019-05-01", "2019-03-01", "2018-05-01", "2018-02-01", "2017-05-10",
    "2016-09-01", "2016-07-01", "2016-02-01", "2015-11-01" } })

local ci = template.ci_get

local REASON = { [400] = "BadRequest", [401] = "Unauthorized", [403] = "Forbidden", [404] = "NotFound",
  [405] = "MethodNotAllowed", [409] = "Conflict", [412] = "PreconditionFailed", [429] = "TooManyRequests",
  [500] = "InternalServerError", [503] = "ServiceUnavailable" }
local STATUS_TEXT = { [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "NoContent" }

-- Within one dependency wave ARM deploys in parallel; short synchronous writes (identities,
-- vaults, access policies, role assignments) finish long before a registry's create gets to
-- its key check, so they go first. This is why the documented CMK template works although
-- its registry only dependsOn the identity.
local PRIORITY = {
  ["microsoft.managedidentity/userassignedidentities"] = 1,
  ["microsoft.keyvault/vaults"] = 2,
  ["microsoft.keyvault/vaults/accesspolicies"] = 3,
  ["microsoft.authorization/roleassignments"] = 3,
  ["microsoft.containerregistry/registries"] = 9,
}

local function dep_id(sub, rg, name)
  return "/subscriptions/" .. sub .. "/resourceGroups/" .. rg .. "/providers/Microsoft.Resources/deployments/" .. name
end

local function invalid(msg, code)
  errors.throw(errors.arm(400, code or "InvalidTemplate", msg))
end

local function digits(n)
  local t = {}
  for i = 1, n do t[i] = tostring(math.random(0, 9)) end
  return table.concat(t)
end

local function hex_upper(n)
  return (util.hex32():upper():sub(1, n))
end

local function check_name(name)
  if #name > 64 then
    -- synthetic (the text below)
    invalid(string.format("The provided deployment name '%s' has a length of '%d' which exceeds the maximum " ..
      "length of '64'. Please see https://aka.ms/arm-deploy for usage details.", name, #name),
      "DeploymentNameLengthLimitExceeded")
  end
  if not name:match("^[%w%-_%.%(%)]+$") then
    -- synthetic text (ARM's exact wording for bad characters is not in the reference)
    -- synthetic (the text below)
    invalid(string.format("The deployment name '%s' is invalid. It can contain only letters, digits, '-', '_', " ..
      "'.', '(' and ')'. Please see https://aka.ms/arm-deploy for usage details.", name), "InvalidDeploymentName")
  end
end

-- ---------------------------------------------------------------- in-process ARM calls

--- Runs one ARM request through the router as the deployment's caller. Returns status, body, headers.
local function call(req, method, path, api, body)
  local raw = body ~= nil and json.encode(body) or nil
  local r = setmetatable({
    method = method, host = req.host, kind = "arm", cloud = req.cloud, path = path, params = {},
    query = { ["api-version"] = api }, headers = req.headers, request_id = util.uuid(),
    client_request_id = req.client_request_id, correlation_id = req.correlation_id, now = clock.now(),
    _body = raw, _body_read = true,
  }, getmetatable(req))
  local route, params = router.match("arm", method, path)
  if not route then
    local ns, typ = path:match("/providers/([^/]+)/([^/]+)")
    return errors.arm(404, "InvalidResourceType", string.format( -- synthetic
      "The resource type '%s' could not be found in the namespace '%s' for api version '%s'.", tostring(typ),
      tostring(ns), tostring(api)))
  end
  r.params, r.route = params, route
  local res = { xpcall(route.handler, function(e)
    if errors.caught(e) then return e end
    return debug.traceback(tostring(e), 2)
  end, r) }
  if res[1] then return res[2], res[3], res[4] end
  local st, b, h = errors.caught(res[2])
  if st then return st, b, h end
  ngx.log(ngx.ERR, "emulator: internal error in deployment of ", path, ": ", tostring(res[2]))
  ngx.shared.emu_meta:incr("internal_errors", 1, 0)
  ngx.ctx.internal_error = tostring(res[2]):sub(1, 500)
  -- synthetic (the text below)
  return errors.arm(500, "InternalServerError", "Encountered internal server error. Diagnostic information: " ..
    "timestamp '" .. clock.iso() .. "', request id '" .. r.request_id .. "'.")
end

--- Waits for a long-running resource write the way ARM does before it reports the resource.
local function finish_lro(id, typ, headers)
  if typ:lower() == "microsoft.containerregistry/registries" then
    require("emu.arm.registries").settle(id)
    return
  end
  local url = headers and (headers["Azure-AsyncOperation"] or headers["Location"])
  local opid = type(url) == "string" and url:match("/operation%a+/([^/?]+)")
  if opid then
    for _ = 1, 20 do
      local op = lro.poll(opid)
      if not op or op.status ~= "InProgress" then break end
    end
  end
end

-- ---------------------------------------------------------------- planning

local function is_object(v) return type(v) == "table" and not json.is_array(v) and v ~= json.null end

-- fn(...) evaluated inside the item's copy loop iteration, if it has one (copyIndex()).
local function in_copy(t, it, fn, ...)
  if not it.copy then return fn(...) end
  return t:with_copy(it.copy.name, it.copy.index, fn, ...)
end

-- The copies of one template resource: {raw, copy = {name, index} | nil} each. A resource
-- "copy": {"name", "count"} loop makes count of them (copyIndex() = 0 .. count-1).
local function expand_copies(t, raw, i)
  local c = ci(raw, "copy")
  if c == nil then return { { raw = raw } } end
  local name, count = is_object(c) and t:eval(ci(c, "name")), is_object(c) and t:eval(ci(c, "count"))
  if type(name) ~= "string" or name == "" or type(count) ~= "number" or count < 0 or count ~= math.floor(count) or
    count > 800 then
    -- synthetic (the text below)
    invalid("Deployment template validation failed: 'The template resource at index '" .. (i - 1) .. "' has a " ..
      "copy loop that is not valid: it needs a 'name' and a whole 'count' from 0 to 800. Please see " ..
      "https://aka.ms/arm-resource-iteration for usage details.'.")
  end
  local out = {}
  for k = 0, count - 1 do out[#out + 1] = { raw = raw, copy = { name = name, index = k } } end
  return out
end

--- Resolves the template's resources: {type, api, name, id, raw, deps = {index...}, index,
-- copy = {name, index}?}.
local function plan(t, tmpl)
  local list = ci(tmpl, "resources")
  if list == nil then list = json.array({}) end
  if type(list) ~= "table" or (not json.is_array(list) and next(list) ~= nil) then
    -- synthetic (the text below)
    invalid("Deployment template validation failed: 'The template resources property must be an array. Please " ..
      "see https://aka.ms/arm-syntax-resources for usage details.'.")
  end
  local items, loops = {}, {}
  t.by_name = {}
  for i, raw in ipairs(list) do
    if not is_object(raw) then
      -- synthetic (the text below)
      invalid("Deployment template validation failed: 'The template resource at index '" .. (i - 1) .. "' is " ..
        "not valid. Please see https://aka.ms/arm-syntax-resources for usage details.'.")
    end
    for _, copy in ipairs(expand_copies(t, raw, i)) do
      local it = { copy = copy.copy }
      local head = in_copy(t, it, function()
        return { t:eval(ci(raw, "type")), t:eval(ci(raw, "apiVersion")), t:eval(ci(raw, "name")) }
      end)
      local typ, api, name = head[1], head[2], head[3]
      if type(typ) ~= "string" or type(api) ~= "string" or type(name) ~= "string" or name == "" or
        not typ:find("/", 1, true) then
        -- synthetic (the text below)
        invalid("Deployment template validation failed: 'The template resource '" .. tostring(name) .. "' at line '" ..
          i .. "' and column '1' is not valid: the resource 'type', 'apiVersion' and 'name' properties are " ..
          "required. Please see https://aka.ms/arm-syntax-resources for usage details.'.")
      end
      local nseg = select(2, name:gsub("/", "")) + 1
      local tseg = select(2, typ:gsub("/", ""))
      if nseg ~= tseg then
        -- synthetic (the text below)
        invalid("Deployment template validation failed: 'The template resource '" .. name .. "' for type '" .. typ ..
          "' at line '" .. i .. "' and column '1' has incorrect segment lengths. A nested resource type must have " ..
          "identical number of segments as its resource name. A root resource type must have segment length one " ..
          "greater than its resource name. Please see https://aka.ms/arm-syntax-resources for usage details.'.")
      end
      local args = { typ }
      for s in name:gmatch("[^/]+") do args[#args + 1] = s end
      local id = t:resource_id(args)
      it.index, it.type, it.api, it.name, it.id, it.raw, it.deps = #items + 1, typ, api, name, id, raw, {}
      items[it.index] = it
      if it.copy then
        local l = loops[it.copy.name:lower()] or {}
        l[#l + 1] = it
        loops[it.copy.name:lower()] = l
      end
      t.by_name[name:lower()] = id
    end
  end
  -- The items a dependsOn / reference names (ids compare case-insensitively, "resourcegroups"
  -- and all); a copy loop's name stands for all its copies.
  local function find(ref)
    local l = ref:lower()
    if loops[l] then return loops[l] end
    for _, it in ipairs(items) do
      if it.id:lower() == l or it.name:lower() == l or (it.type .. "/" .. it.name):lower() == l then return { it } end
    end
    return nil
  end
  for _, it in ipairs(items) do
    local seen = {}
    local dlist = ci(it.raw, "dependsOn")
    if dlist ~= nil and type(dlist) ~= "table" then
      -- synthetic (the text below)
      invalid("Deployment template validation failed: 'The template resource '" .. it.name .. "' dependsOn " ..
        "property must be an array.'.")
    end
    local function depend(hits)
      for _, hit in ipairs(hits or {}) do
        if hit ~= it and not seen[hit.index] then seen[hit.index] = true it.deps[#it.deps + 1] = hit.index end
      end
    end
    for _, d in ipairs(dlist or {}) do
      local ref = in_copy(t, it, t.eval, t, d)
      local hit = type(ref) == "string" and find(ref)
      if not hit then
        -- synthetic (the text below)
        invalid("Deployment template validation failed: 'The resource '" .. tostring(ref) .. "' is not defined in " ..
          "the template. Please see https://aka.ms/arm-syntax for usage details.'.")
      end
      depend(hit)
    end
    -- reference() to a resource of this template is an implicit dependency
    for _, rid in ipairs(in_copy(t, it, t.references, t, it.raw)) do depend(find(rid)) end
  end
  -- topological order; within a wave: PRIORITY, then template order
  local order, done = {}, {}
  while #order < #items do
    local ready = {}
    for _, it in ipairs(items) do
      if not done[it.index] then
        local ok = true
        for _, d in ipairs(it.deps) do if not done[d] then ok = false end end
        if ok then ready[#ready + 1] = it end
      end
    end
    if #ready == 0 then
      local stuck
      for _, it in ipairs(items) do if not done[it.index] then stuck = it break end end
      -- synthetic (the text below)
      invalid("Deployment template validation failed: 'Circular dependency detected on resource: '" .. stuck.id ..
        "'. Please see https://aka.ms/arm-syntax-resources for usage details.'.")
    end
    table.sort(ready, function(a, b)
      local pa, pb = PRIORITY[a.type:lower()] or 5, PRIORITY[b.type:lower()] or 5
      if pa ~= pb then return pa < pb end
      return a.index < b.index
    end)
    for _, it in ipairs(ready) do
      done[it.index] = true
      order[#order + 1] = it
    end
  end
  return items, order
end

-- ---------------------------------------------------------------- execution

local SKIP = { type = true, apiversion = true, name = true, dependson = true, condition = true, copy = true,
  comments = true, scope = true, resources = true }

local function resource_body(t, it)
  local out = {}
  for k, v in pairs(it.raw) do
    if not SKIP[k:lower()] then out[k] = t:eval(v) end
  end
  return out
end

local function op_record(dep, it, status, body, started)
  local now = clock.now()
  local ok = status >= 200 and status < 300
  local opid = hex_upper(16)
  local props = {
    provisioningOperation = "Create", provisioningState = ok and "Succeeded" or "Failed",
    timestamp = clock.iso(now), duration = string.format("PT%.1fS", math.max(0.1, now - started)),
    trackingId = util.uuid(), serviceRequestId = util.uuid(),
    statusCode = STATUS_TEXT[status] or REASON[status] or tostring(status),
    targetResource = { id = it.id, resourceType = it.type, resourceName = it.name, apiVersion = it.api },
  }
  if not ok then
    props.statusMessage = { status = "Failed", error = type(body) == "table" and body.error or
      { code = REASON[status] or "Error", message = tostring(body) } }
  end
  return { id = dep.id .. "/operations/" .. opid, operationId = opid, properties = props }
end

local function deploy(req, dep, t, tmpl, order)
  local failed, results, ops, details, outputs = {}, {}, json.array({}), json.array({}), nil
  local out_resources = json.array({})
  for _, it in ipairs(order) do
    local skip = false
    for _, d in ipairs(it.deps) do if failed[d] or results[d] == "skipped" then skip = true end end
    local cond_ok, cond = pcall(in_copy, t, it, t.eval, t, ci(it.raw, "condition"))
    if cond_ok and cond == false then results[it.index] = "skipped" skip = true end
    if skip then
      results[it.index] = results[it.index] or "skipped"
    else
      local started = clock.now()
      local ok, body = pcall(in_copy, t, it, resource_body, t, it)
      local status, rbody, rheaders
      if not ok then
        local te = template.error_of(body)
        if not te then error(body, 0) end
        status, rbody = 400, { error = te }
      else
        status, rbody, rheaders = call(req, "PUT", it.id, it.api, body)
        if status >= 200 and status < 300 then finish_lro(it.id, it.type, rheaders) end
      end
      ops[#ops + 1] = op_record(dep, it, status, rbody, started)
      if status >= 200 and status < 300 then
        results[it.index] = "ok"
        out_resources[#out_resources + 1] = { id = it.id }
      else
        failed[it.index] = true
        results[it.index] = "failed"
        details[#details + 1] = { code = REASON[status] or "BadRequest",
          message = type(rbody) == "table" and json.encode(rbody) or tostring(rbody) }
      end
    end
  end
  local err
  if #details > 0 then
    err = { code = "DeploymentFailed", message = "At least one resource deployment operation failed. Please list " ..
      "deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details.",
      details = details }
  else
    local outs = ci(tmpl, "outputs")
    if is_object(outs) then
      outputs = {}
      for k, o in pairs(outs) do
        local ok, v = pcall(t.eval, t, ci(o, "value"))
        if not ok then
          local te = template.error_of(v)
          if not te then error(v, 0) end
          err = { code = "DeploymentOutputEvaluationFailed", message = "Unable to evaluate template outputs: '" ..
            k .. "'. Please see error details and deployment operations. Please see " ..
            "https://aka.ms/arm-common-errors for usage details.", details = json.array({ { code = te.code,
            message = te.message, target = k } }) }
          outputs = nil
          break
        end
        outputs[k] = { type = ci(o, "type") or "String", value = v }
      end
    end
  end
  return ops, out_resources, err, outputs
end

-- ---------------------------------------------------------------- state of a deployment

local function is_done(dep)
  if dep._canceled then return true end
  local cfg = lro.config()
  return (dep._polls or 0) >= (cfg.polls or 1) and clock.now() >= (dep._start or 0) + (cfg.seconds or 0)
end

local function render(dep)
  local out = arm.render(dep)
  local p = out.properties
  if not dep._final or not is_done(dep) then
    p.provisioningState = dep._final and "Running" or p.provisioningState
    p.outputResources, p.error, p.outputs = nil, nil, nil
    p.duration = string.format("PT%.1fS", math.max(0, clock.now() - (dep._start or clock.now())))
  end
  return out
end

local function count_poll(id)
  return arm.update(id, function(d)
    if not d then return nil end
    d._polls = (d._polls or 0) + 1
    return d
  end)
end

-- ---------------------------------------------------------------- routes

local BASE = "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Resources/deployments"

local function scope_of(req)
  return dep_id(req.params.sub, req.params.rg, req.params.name)
end

--- Validates a deployment request (body, template, parameters, resources, dependencies).
-- Raises ARM's 400s; returns a table {p, rgres, ctx, t, tmpl, items, order, mode}.
local function validate(req)
  local p = req.params
  check_name(p.name)
  local rgres = arm.require_rg(p.sub, p.rg)
  local b = arm.body(req)
  local props = ci(b, "properties")
  if not is_object(props) then
    -- synthetic (the text below)
    invalid("The request content was invalid and could not be deserialized: 'Required property 'properties' not " ..
      "found in JSON. Path '', line 1, position 1.'.", "InvalidRequestContent")
  end
  local mode = ci(props, "mode")
  if mode == nil then
    -- synthetic (the text below)
    invalid("The request content was invalid and could not be deserialized: 'Required property 'mode' not found " ..
      "in JSON. Path 'properties', line 1, position 1.'.", "InvalidRequestContent")
  end
  if type(mode) ~= "string" or (mode:lower() ~= "incremental" and mode:lower() ~= "complete") then
    invalid("The request content was invalid and could not be deserialized: 'Error converting value \"" .. -- synthetic
      tostring(mode) .. "\" to type 'Microsoft.WindowsAzure.ResourceStack.Frontdoor.Data.Definitions." ..
      "DeploymentMode'. Path 'properties.mode', line 1, position 1.'.", "InvalidRequestContent")
  end
  mode = mode:lower() == "complete" and "Complete" or "Incremental"
  local tmpl = ci(props, "template")
  if tmpl == nil then
    if ci(props, "templateLink") ~= nil then
      -- synthetic: the emulator has no internet access to fetch linked templates
      invalid("The emulator cannot download linked templates; send the template inline in " .. -- synthetic
        "'properties.template'.", "InvalidTemplateLink")
    end
    invalid("The request content was invalid and could not be deserialized: 'Either 'template' or " .. -- synthetic
      "'templateLink' must be provided in the deployment properties.'.", "InvalidRequestContent") -- synthetic
  end
  -- synthetic (the text below)
  if not is_object(tmpl) then invalid("Deployment template parse failed: 'The template must be a JSON object.'.") end
  local params = ci(props, "parameters")
  if params == json.null then params = nil end
  local seed = require("emu.seed").data
  local sub = arm.require_subscription(p.sub)
  local ctx = { sub = p.sub, rg = rgres.name or p.rg, rg_location = rgres.location,
    tenant_id = sub.tenantId or seed.tenant_id, subscription_name = sub.displayName, deployment = p.name,
    lookup = function(id) return arm.get(id) end }
  local ok, t = pcall(template.new, tmpl, params, ctx)
  if not ok then
    local te = template.error_of(t)
    if not te then error(t, 0) end
    invalid(te.message, te.code)
  end
  local items, order
  ok, items, order = pcall(plan, t, tmpl)
  if not ok then
    local te = template.error_of(items)
    if te then invalid(te.message, te.code) end
    error(items, 0)
  end
  return { p = p, rgres = rgres, ctx = ctx, t = t, tmpl = tmpl, items = items, order = order, mode = mode }
end

--- Properties shared by the deployment body and the validate answer.
local function base_properties(req, v, now)
  local providers, seen = json.array({}), {}
  for _, it in ipairs(v.items) do
    local ns, rtype = it.type:match("^([^/]+)/(.+)$")
    local key = ns:lower() .. "|" .. rtype:lower()
    if not seen[key] then
      seen[key] = true
      providers[#providers + 1] = { namespace = ns, resourceTypes = json.array({ { resourceType = rtype,
        locations = json.array({ v.rgres.location }) } }) }
    end
  end
  local dependencies = json.array({})
  for _, it in ipairs(v.items) do
    if #it.deps > 0 then
      local ds = json.array({})
      for _, d in ipairs(it.deps) do
        local x = v.items[d]
        ds[#ds + 1] = { id = x.id, resourceType = x.type, resourceName = x.name }
      end
      dependencies[#dependencies + 1] = { dependsOn = ds, id = it.id, resourceType = it.type, resourceName = it.name }
    end
  end
  return {
    templateHash = digits(19), parameters = v.t:shown_parameters(ci(v.tmpl, "parameters") or {}), mode = v.mode,
    provisioningState = "Accepted", timestamp = clock.iso(now), duration = "PT0S",
    correlationId = req.correlation_id, providers = providers, dependencies = dependencies,
  }
end

--- The Retry-After header of a running deployment (the LRO pacing config).
local function retry_after()
  return { ["Retry-After"] = tostring(math.floor(lro.config().retry_after or 1)) }
end

arm.route({ method = "PUT", path = BASE .. "/{name}", type = M.TYPE, scope = scope_of,
  action = "Microsoft.Resources/deployments/write",
  handler = function(req)
    local v = validate(req)
    local p, ctx, t, tmpl, order = v.p, v.ctx, v.t, v.tmpl, v.order
    local id = dep_id(p.sub, ctx.rg, p.name)
    local existed = arm.get(id) ~= nil
    local now = clock.now()
    local dep = {
      id = id, name = p.name, type = M.TYPE, properties = base_properties(req, v, now),
      _start = now, _polls = 0, _opid = "08584" .. digits(21),
    }
    local accepted = arm.render(dep)
    arm.put(dep)
    local ops, out_resources, err, outputs = deploy(req, dep, t, tmpl, order)
    dep._ops = ops
    dep._final = true
    dep.properties.provisioningState = err and "Failed" or "Succeeded"
    dep.properties.outputResources = out_resources
    dep.properties.error = err
    dep.properties.outputs = outputs
    dep.properties.timestamp = clock.iso()
    dep.properties.duration = string.format("PT%.1fS", math.max(0.1, clock.now() - now))
    arm.put(dep)
    local url = "https://" .. req.host .. id .. "/operationStatuses/" .. dep._opid .. "?api-version=" ..
      tostring(req:arg("api-version"))
    local h = retry_after()
    h["Azure-AsyncOperation"] = url
    return existed and 200 or 201, accepted, h
  end })

--- The deployment of route params p (after the resource group), or raises 404 DeploymentNotFound.
local function require_deployment(p)
  arm.require_rg(p.sub, p.rg)
  local dep = arm.get(dep_id(p.sub, p.rg, p.name))
  if not dep then
    -- synthetic (the text below)
    errors.throw(errors.arm(404, "DeploymentNotFound", "Deployment '" .. p.name .. "' could not be found."))
  end
  return dep
end

-- POST .../deployments/{name}/validate: the same checks as PUT, nothing deployed.
arm.route({ method = "POST", path = BASE .. "/{name}/validate", type = M.TYPE, scope = scope_of,
  action = "Microsoft.Resources/deployments/validate/action",
  handler = function(req)
    local v = validate(req)
    local props = base_properties(req, v, clock.now())
    props.provisioningState = "Succeeded"
    local validated = json.array({})
    for _, it in ipairs(v.items) do validated[#validated + 1] = { id = it.id } end
    props.validatedResources = validated
    return 200, { id = dep_id(v.p.sub, v.ctx.rg, v.p.name), name = v.p.name, type = M.TYPE, properties = props }
  end })

arm.route({ method = "GET", path = BASE .. "/{name}", type = M.TYPE, scope = scope_of,
  action = "Microsoft.Resources/deployments/read",
  handler = function(req)
    -- A GET of the deployment is a poll too (az deployment group wait, --no-wait then show):
    -- it completes by the same LRO pacing as the operationStatuses URL.
    local dep = require_deployment(req.params)
    return 200, render(count_poll(dep.id) or dep)
  end })

arm.route({ method = "DELETE", path = BASE .. "/{name}", type = M.TYPE, scope = scope_of,
  action = "Microsoft.Resources/deployments/delete",
  handler = function(req)
    local p = req.params
    arm.require_rg(p.sub, p.rg)
    local dep = arm.delete(dep_id(p.sub, p.rg, p.name))
    return dep and 202 or 204, nil
  end })

arm.route({ method = "GET", path = BASE, type = M.TYPE,
  scope = function(req) return arm.rg_id(req.params.sub, req.params.rg) end,
  action = "Microsoft.Resources/deployments/read",
  handler = function(req)
    local p = req.params
    arm.require_rg(p.sub, p.rg)
    local out = json.array({})
    for _, d in ipairs(arm.list({ type = M.TYPE, under = arm.rg_id(p.sub, p.rg) })) do out[#out + 1] = render(d) end
    return 200, { value = out }
  end })

-- POST .../deployments/{name}/cancel: 204 while Accepted/Running (the resources already written
-- stay, as in ARM: cancel stops what has not run yet; here everything ran at the PUT), then the
-- deployment and its operation status say Canceled; a finished deployment cannot be canceled.
arm.route({ method = "POST", path = BASE .. "/{name}/cancel", type = M.TYPE, scope = scope_of,
  action = "Microsoft.Resources/deployments/cancel/action",
  handler = function(req)
    local p = req.params
    local dep = require_deployment(p)
    local state = render(dep).properties.provisioningState
    if state ~= "Accepted" and state ~= "Running" then
      -- synthetic (the text below)
      return errors.arm(409, "DeploymentCannotBeCanceled", "The deployment '" .. p.name .. "' cannot be canceled " ..
        "because it is in the terminal state '" .. tostring(state) .. "'.")
    end
    arm.update(dep_id(p.sub, p.rg, p.name), function(d)
      if not d then return nil end
      d._canceled = true
      d.properties.provisioningState = "Canceled"
      d.properties.outputResources, d.properties.error, d.properties.outputs = nil, nil, nil
      return d
    end)
    return 204, nil
  end })

-- Azure's specification names the resource-group deployment operations without the provider
-- segment (DeploymentOperations_List / _Get: /subscriptions/{sub}/resourcegroups/{rg}/deployments/
-- {name}/operations[/{operationId}]), which is what the SDKs call; both spellings are served.
for _, base in ipairs({ BASE, "/subscriptions/{sub}/resourcegroups/{rg}/deployments" }) do
  arm.route({ method = "GET", path = base .. "/{name}/operations", type = M.TYPE, scope = scope_of,
    action = "Microsoft.Resources/deployments/operations/read",
    handler = function(req)
      return 200, { value = json.array(require_deployment(req.params)._ops or {}) }
    end })

  arm.route({ method = "GET", path = base .. "/{name}/operations/{operationId}", type = M.TYPE, scope = scope_of,
    action = "Microsoft.Resources/deployments/operations/read",
    handler = function(req)
      local p = req.params
      for _, op in ipairs(require_deployment(p)._ops or {}) do
        if op.operationId:lower() == p.operationId:lower() then return 200, op end
      end
      return errors.arm(404, "DeploymentOperationNotFound", "Deployment operation '" .. p.operationId .. -- synthetic
        "' could not be found.")
    end })
end

arm.route({ method = "GET", path = BASE .. "/{name}/operationStatuses/{opid}", type = M.TYPE, scope = scope_of,
  action = "Microsoft.Resources/deployments/read",
  handler = function(req)
    local p = req.params
    local id = dep_id(p.sub, p.rg, p.name)
    local dep = arm.get(id)
    if not dep or dep._opid ~= p.opid then
      return errors.arm(404, "DeploymentNotFound", "Deployment '" .. p.name .. "' could not be found.") -- synthetic
    end
    dep = count_poll(id) or dep
    if not dep._final or not is_done(dep) then
      return 200, { status = "Running" }, retry_after()
    end
    local body = { status = dep.properties.provisioningState }
    if dep.properties.error then body.error = dep.properties.error end
    return 200, body
  end })

return M
