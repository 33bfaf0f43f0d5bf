--- emu.arm.subscriptions: GET /subscriptions, GET /subscriptions/{sub}, GET /tenants, and the
-- resource providers: GET /subscriptions/{sub}/providers[/{namespace}], POST .../{namespace}/register.
local arm = require("emu.arm")
local state = require("emu.state")
local rbac = require("emu.rbac")
local json = require("emu.json")
local errors = require("emu.errors")

local M = {}

arm.register_type({ type = "Microsoft.Resources/subscriptions", core = true,
  api_versions = { "2025-04-01", "2025-03-01", "2024-11-01", "2024-08-01", "2024-07-01", "2024-03-01",
    "2023-07-01", "2022-12-01", "2022-09-01", "2022-01-01", "2021-04-01", "2021-01-01", "2020-06-01",
    "2020-01-01", "2019-11-01", "2019-06-01", "2018-06-01", "2016-06-01", "2016-02-01", "2015-11-01" } })

local function visible(req, s)
  -- A subscription is listed when the caller holds any role at or under it.
  for _, ra in ipairs(rbac.assignments_of(req.principal.oid)) do
    local sc = ra.properties.scope:lower()
    if sc == "/" or sc:sub(1, #s.id + 0) == s.id:lower() then return true end
  end
  return false
end

arm.route({ method = "GET", path = "/subscriptions", type = "Microsoft.Resources/subscriptions",
  handler = function(req)
    local out = json.array({})
    for _, s in ipairs(state.list("sub:")) do
      if visible(req, s) then out[#out + 1] = s end
    end
    return 200, { value = out, count = { type = "Total", value = #out } }
  end })

arm.route({ method = "GET", path = "/subscriptions/{sub}", type = "Microsoft.Resources/subscriptions",
  handler = function(req)
    local s = arm.require_subscription(req.params.sub)
    if not visible(req, s) then
      return arm.authorize(req, "Microsoft.Resources/subscriptions/read", s.id)
    end
    return 200, s
  end })

arm.route({ method = "GET", path = "/tenants", type = "Microsoft.Resources/subscriptions",
  handler = function()
    local d = require("emu.seed").data
    return 200, { value = json.array({ { id = "/tenants/" .. d.tenant_id, tenantId = d.tenant_id,
      tenantCategory = "Home", displayName = "azcmk emulator", defaultDomain = "azcmkemulator.onmicrosoft.com",
      domains = json.array({ "azcmkemulator.onmicrosoft.com" }), tenantType = "AAD" } }) }
  end })

-- Resource providers: every namespace of a registered ARM type, with its types and
-- api-versions (from emu.arm's type registry), always "Registered".
arm.register_type({ type = "Microsoft.Resources/providers", core = true,
  api_versions = { "2025-04-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01", "2022-09-01",
    "2021-04-01", "2021-01-01", "2020-06-01", "2019-10-01", "2019-05-10", "2018-05-01", "2016-09-01",
    "2015-11-01" } })

local function provider(sub, ns)
  local types = json.array({})
  local name
  for _, t in pairs(arm.types) do
    local tns, rest = t.type:match("^([^/]+)/(.+)$")
    if tns and tns:lower() == ns:lower() and not t.core then
      name = tns
      types[#types + 1] = { resourceType = rest, locations = json.array(t.tracked and { "West US", "East US",
        "West Europe" } or {}), apiVersions = json.array(t.api_versions) }
    end
  end
  if not name then return nil end
  table.sort(types, function(a, b) return a.resourceType < b.resourceType end)
  return { id = "/subscriptions/" .. sub .. "/providers/" .. name, namespace = name,
    registrationState = "Registered", registrationPolicy = "RegistrationRequired", resourceTypes = types }
end

local function namespaces()
  local seen, out = {}, {}
  for _, t in pairs(arm.types) do
    local ns = t.type:match("^([^/]+)/")
    if ns and not t.core and not seen[ns:lower()] then
      seen[ns:lower()] = true
      out[#out + 1] = ns
    end
  end
  table.sort(out)
  return out
end

arm.route({ method = "GET", path = "/subscriptions/{sub}/providers", type = "Microsoft.Resources/providers",
  action = "Microsoft.Resources/subscriptions/providers/read",
  scope = function(req) return "/subscriptions/" .. req.params.sub end,
  handler = function(req)
    local out = json.array({})
    for _, ns in ipairs(namespaces()) do out[#out + 1] = provider(req.params.sub, ns) end
    return 200, { value = out }
  end })

local function get_provider(req)
  local p = provider(req.params.sub, req.params.ns)
  if not p then
    return errors.arm(404, "InvalidResourceNamespace", "The resource namespace '" .. req.params.ns .. -- synthetic
      "' is invalid.")
  end
  return 200, p
end

arm.route({ method = "GET", path = "/subscriptions/{sub}/providers/{ns}", type = "Microsoft.Resources/providers",
  action = "Microsoft.Resources/subscriptions/providers/read",
  scope = function(req) return "/subscriptions/" .. req.params.sub end, handler = get_provider })

arm.route({ method = "POST", path = "/subscriptions/{sub}/providers/{ns}/register",
  type = "Microsoft.Resources/providers", action = function(req) return req.params.ns .. "/register/action" end,
  scope = function(req) return "/subscriptions/" .. req.params.sub end, handler = get_provider })

return M
