--- `azcmk audit [--subscription NAME_OR_ID ...] [-g RG] [-n REGISTRY] [--concurrency N] [-o json|table]`:
-- every registry of the subscriptions (default: all the caller sees) with its encryption and key
-- health; -g / -n keep only the registries of that resource group / of that name (compared
-- case-insensitively; the others are not inspected).
-- Exit status: 0 every registry healthy, 1 a registry failed a check, a subscription could not
-- be listed, or -g / -n matched no registry (a line on stderr says what to check), 2 bad flags.
local common = require("azcmk.cli.common")
local json = require("azcmk.json")

local M = {}

local FLAGS = {
  { "concurrency", nil, "N", "requests in flight at once (default 16)" },
}

local USAGE = "azcmk audit [--subscription NAME_OR_ID ...] [-g RESOURCE_GROUP] [-n REGISTRY] "
  .. "[--concurrency N] [-o FORMAT] [--query JMESPATH]"

local audit = require("azcmk.playbook.audit")

--- "no registry matched -g X -n Y ..." when a filter was given and nothing matched, else nil.
local function no_match(result)
  if not result.filter or result.summary.registries > 0 then return nil end
  return string.format("no registry matched %s in %d subscription(s) (%d registries listed)",
    audit.filter_text(result.filter), #result.subscriptions, result.summary.listed)
end

--- --subscription may repeat and may hold comma-separated ids or names: collect them all.
local function subscriptions(argv)
  local subs, rest = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local v = a:match("^%-%-subscription=(.*)$")
    if a == "--subscription" then v = argv[i + 1]; i = i + 1 end
    if v then
      for s in v:gmatch("[^,]+") do
        s = s:match("^%s*(.-)%s*$")
        if s ~= "" then subs[#subs + 1] = s end
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return subs, rest
end

local function cell(v)
  if v == nil then return "-" end
  if v == true then return "yes" elseif v == false then return "no" end
  return tostring(v)
end

local function key_cell(r)
  if not r.cmk then return "-" end
  return tostring(r.vault or "?") .. "/" .. tostring(r.key_name or "?")
end

local function version_cell(v) return v and tostring(v):sub(1, 8) or "-" end

--- The table: one line per registry, worst first.
function M.table_text(result)
  local head = { "SUBSCRIPTION", "RESOURCE GROUP", "REGISTRY", "SKU", "CMK", "KEY", "VERSIONED", "IN USE",
    "NEWEST", "AGE", "IDENTITY", "DATA", "HEALTH" }
  local rows = { head }
  for _, r in ipairs(result.registries) do
    rows[#rows + 1] = { tostring(r.subscription):sub(1, 8), cell(r.resource_group), cell(r.name), cell(r.sku),
      r.cmk and "on" or "off", key_cell(r), r.cmk and cell(r.versioned) or "-",
          version_cell(r.key_version_in_use),
      r.cmk and ((r.up_to_date and "=" or "") .. version_cell(r.newest_key_version)) or "-",
      r.key_age_days and (r.key_age_days .. "d") or "-",
      r.cmk and (tostring(r.identity) .. ":" .. tostring(r.identity_health)) or "-", cell(r.data_plane),
      r.health }
  end
  local w = {}
  for _, row in ipairs(rows) do
    for i, c in ipairs(row) do if not w[i] or #c > w[i] then w[i] = #c end end
  end
  local lines = {}
  for _, row in ipairs(rows) do
    local parts = {}
    for i, c in ipairs(row) do parts[i] = i < #row and (c .. string.rep(" ", w[i] - #c)) or c end
    lines[#lines + 1] = table.concat(parts, "  ")
  end
  for _, r in ipairs(result.registries) do
    for _, pb in ipairs(r.problems) do lines[#lines + 1] = "  " .. r.name .. ": " .. pb end
    if r.health == "fail" and r.cmk then
      lines[#lines + 1] = "  " .. r.name .. ": next: azcmk doctor -n " .. r.name .. " -g "
          .. tostring(r.resource_group)
        .. " --subscription " .. tostring(r.subscription)
    end
  end
  for _, s in ipairs(result.subscriptions) do
    if s.error then
      lines[#lines + 1] = "subscription " .. s.id .. ": cannot list registries: "
          .. tostring(s.error.status) .. " "
        .. tostring(s.error.code) .. " " .. common.one_line(s.error.message)
    end
  end
  local none = no_match(result)
  if none then lines[#lines + 1] = none end
  local sm = result.summary
  lines[#lines + 1] = string.format("%d registries in %d subscription(s): %d with CMK; %d ok, %d warn, " ..
      "%d fail",
    sm.registries, #result.subscriptions, sm.cmk, sm.ok, sm.warn, sm.fail)
  return table.concat(lines, "\n") .. "\n"
end

local ROW = { "Subscription", "ResourceGroup", "Registry", "Sku", "Cmk", "Key", "KeyVersionInUse",
  "NewestKeyVersion", "KeyAgeDays", "Identity", "DataPlane", "Health" }

--- -o table: one row per registry, worst first, columns in ROW's order.
function M.rows(result)
  local rows = {}
  for i, r in ipairs(result.registries) do
    rows[i] = json.object({ Subscription = r.subscription, ResourceGroup = r.resource_group,
      Registry = r.name, Sku = r.sku, Cmk = r.cmk, Key = r.cmk and key_cell(r) or nil,
      KeyVersionInUse = r.key_version_in_use,
      NewestKeyVersion = r.newest_key_version, KeyAgeDays = r.key_age_days,
      Identity = r.cmk and (tostring(r.identity) .. ":" .. tostring(r.identity_health)) or nil,
      DataPlane = r.data_plane, Health = r.health }, ROW)
  end
  return json.array(rows)
end

local function json_value(result)
  local rows = {}
  for i, r in ipairs(result.registries) do
    local c = {}
    for k, v in pairs(r) do c[k] = v end
    c.problems = setmetatable(r.problems, common.array_mt)
    rows[i] = c
  end
  return { subscriptions = setmetatable(result.subscriptions, common.array_mt),
    registries = setmetatable(rows, common.array_mt), summary = result.summary, filter = result.filter }
end

function M.run(argv, io_)
  io_ = io_ or { stdout = io.stdout, stderr = io.stderr }
  local subs, rest = subscriptions(argv)
  local opts, code = common.parse(rest, io_, "audit", USAGE, FLAGS)
  if not opts then return code end
  local conc
  if opts.concurrency then
    conc = tonumber(opts.concurrency)
    if not conc or conc < 1 or conc > 256 or conc ~= math.floor(conc) then
      io_.stderr:write("azcmk audit: --concurrency must be a whole number from 1 to 256\n")
      return common.EXIT_REFUSED
    end
  end
  local p, err = common.pipeline(opts, io_.stderr)
  if not p then return common.fail(io_, "audit", err) end
  for i, s in ipairs(subs) do
    subs[i], err = require("azcmk.cli.subscription").resolve(p, s)
    if not subs[i] then return common.fail(io_, "audit", err) end
  end
  local result
  result, err = audit.audit({ pipeline = p, subscriptions = #subs > 0 and subs or nil,
    resource_group = opts.resource_group, name = opts.name,
    concurrency = conc, progress = function(ev) io_.stderr:write("  ", common.one_line(ev.message),
        "\n") end })
  if not result then return common.fail(io_, "audit", err) end
  -- readable: the fleet table; -o / --query: the data (-o table: a row per registry)
  local ok, werr = common.emit(io_, opts, json_value(result), nil, function() return M.rows(result) end,
    M.table_text(result))
  if not ok then return common.fail(io_, "audit", werr) end
  local bad = result.summary.fail > 0
  for _, s in ipairs(result.subscriptions) do if s.error then bad = true end end
  local none = no_match(result)
  if none then
    -- the user named a group / registry that is not there: a failure, not a healthy fleet
    io_.stderr:write(common.error_line("audit", { message = none, code = "NoMatchingRegistry",
      hint = "check the resource group and registry names (az acr list -o table) and --subscription"
        .. " (default: every subscription the caller sees)" }), "\n")
    bad = true
  end
  return bad and common.EXIT_FAILED or common.EXIT_OK
end

return M
