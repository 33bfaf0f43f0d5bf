--- emu.arm.subscriptions: GET /subscriptions, GET /subscriptions/{sub}, GET /tenants.
local arm = require("emu.arm")
local state = require("emu.state")
local rbac = require("emu.rbac")
local json = require("emu.json")

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

return M
