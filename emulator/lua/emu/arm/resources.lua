--- emu.arm.resources: the generic resource listing over every tracked resource type in state.
--   GET /subscriptions/{sub}/resources?$filter=resourceType eq '...' and name eq '...'
--   GET /subscriptions/{sub}/resourceGroups/{rg}/resources?$filter=...
-- Filters: resourceType eq, name eq, location eq, joined by "and" (values compared
-- case-insensitively). Only resources the caller may read are listed.
local arm = require("emu.arm")
local errors = require("emu.errors")
local json = require("emu.json")
local rbac = require("emu.rbac")
local util = require("emu.util")

local M = {}

M.TYPE = "Microsoft.Resources/resources"
arm.register_type({ type = M.TYPE, core = true,
  api_versions = { "2025-04-01", "2025-03-01", "2024-11-01", "2024-07-01", "2024-03-01", "2023-07-01",
    "2022-09-01", "2021-04-01", "2021-01-01", "2020-10-01", "2020-06-01", "2019-10-01", "2019-08-01",
    "2019-07-01", "2019-05-10", "2019-05-01", "2019-03-01", "2018-05-01", "2018-02-01", "2017-05-10",
    "2016-09-01", "2016-07-01", "2016-02-01", "2015-11-01" } })

local FIELDS = { resourcetype = "type", name = "name", location = "location" }

-- resourceType / name / location eq '...', joined by "and" (emu.util.odata); nil when malformed.
local function parse_filter(f)
  local clauses = util.odata(f)
  if not clauses then return nil end
  local out = {}
  for _, c in ipairs(clauses) do
    if not c.field or not FIELDS[c.field] then return nil end
    out[#out + 1] = { FIELDS[c.field], c.value:lower() }
  end
  return out
end

local function summary(r)
  local out = { id = r.id, name = r.name, type = r.type, location = r.location, tags = r.tags, kind = r.kind,
    sku = r.sku, identity = r.identity, managedBy = r.managedBy }
  return out
end

local function list(req, under)
  local raw = arm.qparam(req, "$filter")
  local f = parse_filter(raw)
  if not f then
    -- synthetic (the text below)
    return errors.arm(400, "InvalidFilterInQueryString", "The filter '" .. tostring(raw) .. "' is invalid. " ..
      "Supported: resourceType eq '{type}', name eq '{name}', location eq '{location}', joined by 'and'.")
  end
  local out = json.array({})
  for _, r in ipairs(arm.list({ under = under, tracked = true })) do
    local ok = true
    for _, c in ipairs(f) do
      if tostring(r[c[1]] or ""):lower() ~= c[2] then ok = false break end
    end
    if ok and rbac.allowed(req.principal.oid, r.type .. "/read", r.id) then out[#out + 1] = summary(r) end
  end
  return 200, { value = out }
end

arm.route({ method = "GET", path = "/subscriptions/{sub}/resources", type = M.TYPE,
  handler = function(req) return list(req, "/subscriptions/" .. req.params.sub) end })

arm.route({ method = "GET", path = "/subscriptions/{sub}/resourceGroups/{rg}/resources", type = M.TYPE,
  scope = function(req) return arm.rg_id(req.params.sub, req.params.rg) end,
  action = "Microsoft.Resources/subscriptions/resourceGroups/resources/read",
  handler = function(req)
    arm.require_rg(req.params.sub, req.params.rg)
    return list(req, arm.rg_id(req.params.sub, req.params.rg))
  end })

return M
