--- audit: every container registry of one or more subscriptions with its encryption and key
-- health - SKU, CMK on/off, state (active, or revoked on purpose: when, by whom), key id,
-- versioned or versionless, key version in use vs the newest, age of the version in use,
-- identity health, data plane - fetched in parallel with bounded concurrency (p:parallel:
-- the transport's batch on the core's curl multi handle, every request on the pipeline's
-- ordinary path: tokens, retries honouring Retry-After, errors).
-- resource_group / name narrow the listed registries (case-insensitive, as Azure compares
-- them) before any of them is inspected. Read-only: GETs only.
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local options = require("azcmk.options")
local client = require("azcmk.client")
local Keys = require("azcmk.client.keys")
local state = require("azcmk.state")
local rules = require("azcmk.state.rules")

local M = {}

M.DEFAULT_CONCURRENCY = 16

local RANK = { fail = 3, warn = 2, ok = 1 }

local function pack(...) return { n = select("#", ...), ... } end

local function worst(row, level, problem)
  if RANK[level] > RANK[row.health] then row.health = level end
  row.problems[#row.problems + 1] = problem
end

local function short(err)
  if type(err) ~= "table" then return tostring(err) end
  return tostring(err.status or "") .. " " .. tostring(err.code or err.kind or "")
end

--- The registry list of a subscription (pages followed). v: a pipeline (view).
local function list_registries(v, sub)
  return client.new(v, { subscription = sub }).registries:list()
end

--- Does a listed registry pass the resource group / name filter? Both compare case-insensitively
-- (Azure treats resource group and registry names so).
local function matches(item, rg, name)
  if name and tostring(item.name):lower() ~= name then return false end
  if rg then
    local parsed = ids.parse_resource_id(tostring(item.id)) or {}
    if tostring(parsed.resource_group):lower() ~= rg then return false end
  end
  return true
end

--- The filter as the command line spells it: "-g RG -n NAME" (nil without one).
function M.filter_text(f)
  if not f then return nil end
  local parts = {}
  if f.resource_group then parts[#parts + 1] = "-g " .. f.resource_group end
  if f.name then parts[#parts + 1] = "-n " .. f.name end
  return table.concat(parts, " ")
end

-- The row's identity columns and problems.
local function judge_identity(row, f)
  local health = rules.identity(f)
  row.identity = f.ident.kind
  row.identity_id = f.ident.attached and f.ident.uai_id or nil
  row.identity_health = health
  if health == "missing" then
    worst(row, "fail", "the system-assigned identity used for CMK is not enabled")
  elseif health == "detached" then
    worst(row, "fail", "the encryption identity " .. tostring(f.ident.value)
      .. " is not attached to the registry")
  elseif health == "recreated" then
    worst(row, "fail", "the user-assigned identity was re-created (clientId changed)")
  elseif health == "deleted" then
    worst(row, "fail", "the user-assigned identity was deleted")
  elseif health == "unknown" then
    worst(row, "warn", "cannot read the identity: " .. short(f.uai_err))
  end
end

-- The row's key columns and problems: the version in use and the current (newest) one.
local function judge_key(row, f, now)
  row.vault = f.key.vault
  row.key_name = f.key.name
  if f.newest then
    row.newest_key_version = f.newest.version
    local drift = rules.drift(f, now)
    row.up_to_date = drift.state == "current"
    local a = f.key_bundle and f.key_bundle.attributes or {}
    if a.created then
      row.key_version_created = os.date("!%Y-%m-%dT%H:%M:%SZ", a.created)
      row.key_age_days = math.floor((now - a.created) / 86400)
    end
    if f.key_bundle and a.enabled == false then worst(row, "fail", "the key version in use is disabled") end
    if a.exp and a.exp <= now then worst(row, "warn", "the key version in use expired (wrap fails)") end
    if drift.state == "stuck" then
      worst(row, "fail", "versionless key, but the registry is more than an hour behind the newest version")
    elseif not row.up_to_date then
      worst(row, "warn", "a newer key version exists")
    end
  elseif f.key_missing then
    worst(row, "fail", "the key or its vault is missing (" .. tostring(f.key_missing_code) .. ")")
  elseif f.key_bundle_err then
    worst(row, "warn", "cannot read the key as the caller: " .. short(f.key_bundle_err))
  end
end

--- One registry's row, judged from its facts (azcmk.state, parts "audit": the registry; for
-- CMK ones also the key versions in use and newest, the user-assigned identity and the data
-- plane). v: a pipeline (view).
local function inspect(v, sub, item)
  local row = { subscription = sub, name = item.name, id = item.id, health = "ok", problems = {},
    resource_group = (ids.parse_resource_id(item.id) or {}).resource_group, location = item.location }
  local f = state.read({ pipeline = v, subscription = sub, id = item.id, parts = state.parts.audit })
  if not f.reg then
    local err = f.reg_err or f.calls[#f.calls] or {}   -- a 404 is no error: its call says it
    worst(row, (err.status == 404) and "warn" or "fail", "cannot read the registry: " .. short(err))
    return row
  end
  local now = f.service_now or os.time()
  local props = f.reg.properties or {}
  row.sku = f.reg.sku and f.reg.sku.name
  row.login_server = props.loginServer
  row.cmk = f.cmk
  row.encryption = row.cmk and "enabled" or "disabled"
  if not row.cmk then return row end
  local kvp = f.kvp
  row.key_id = kvp.keyIdentifier
  row.versioned_key_id = kvp.versionedKeyIdentifier
  row.auto_rotation = kvp.keyRotationEnabled == true
  row.versioned = f.key ~= nil and f.key.version ~= nil
  row.key_version_in_use = Keys.version_of(kvp.versionedKeyIdentifier) or (f.key and f.key.version)
  local rec = rules.revocation(f)
  row.state = rec and "revoked" or "active"
  if rec then row.revoked_at, row.revoked_by = rec.at, rec.by end
  judge_identity(row, f)
  if f.key then judge_key(row, f, now) end
  -- the data plane: 401 serving, 403 the registry cannot use its key (or was revoked on purpose)
  if row.login_server then
    row.data_plane = f.data_plane and f.data_plane.status or (f.data_plane_err and f.data_plane_err.status)
    if rules.data_plane(f.data_plane) == "denied" then
      if rec then
        worst(row, "warn", "revoked deliberately on " .. rec.at .. " by " .. rec.by
          .. " (run restore to undo)")
      else
        worst(row, "fail", "the data plane refuses to serve (403)")
      end
    end
  end
  return row
end

--- audit{subscriptions = {id, ...} (default: every subscription the caller sees), concurrency = 16,
-- resource_group?, name? (only the registries of that group / of that name, case-insensitive;
-- the others are not inspected), pipeline?, progress?} -> { subscriptions = [{id, registries
-- (those matching), listed (all of the subscription), error?}], registries = [rows], summary =
-- {registries (= #rows), listed, cmk, ok, warn, fail}, filter = {resource_group?, name?} | nil }
-- or nil, err. A filter that matches nothing is not an error: summary.registries = 0 with
-- filter set (the command line turns that into exit 1).
function M.audit(o)
  o = o or {}
  options.check(o, { subscriptions = "table?", concurrency = "number?", progress = "function?",
    sequential = "boolean?", resource_group = "string?", name = "string?", pipeline = "table?",
    getenv = "function?" }, "azcmk.playbook.audit")
  for k, what in pairs({ resource_group = "resource group", name = "registry name" }) do
    if o[k] == "" then
      return nil, errors.input("the " .. what .. " to audit (`" .. k .. "`) is empty",
        { code = "InvalidFilter", param = k,
          hint = "pass `resource_group` and/or `name` with a name, or neither" })
    end
  end
  local filter = (o.resource_group or o.name) and { resource_group = o.resource_group, name = o.name } or nil
  local want_rg, want_name = o.resource_group and o.resource_group:lower(), o.name and o.name:lower()
  local p = o.pipeline
  if not p then
    local err
    p, err = require("azcmk.compose").pipeline({ getenv = o.getenv })
    if not p then return nil, err end
  end
  local subs = {}
  for _, s in ipairs(o.subscriptions or {}) do
    if not ids.is_uuid(s) then
      return nil, errors.input("the subscription '" .. tostring(s) .. "' is not a subscription id (a GUID)",
        { code = "InvalidSubscription", param = "subscriptions",
          hint = "give subscription ids (GUIDs) in `subscriptions`, e.g. from `az account show --query id`" })
    end
    subs[#subs + 1] = s:lower()
  end
  if #subs == 0 then
    local err
    subs, err = client.new(p).subscriptions:ids()
    if not subs then return nil, err end
  end
  local conc = o.concurrency or M.DEFAULT_CONCURRENCY
  local function say(m) if o.progress then pcall(o.progress, { message = m }) end end
  -- 1. the registry lists, one task per subscription
  local tasks = {}
  for i, s in ipairs(subs) do tasks[i] = function(v) return list_registries(v, s) end end
  local function run(list)
    if not o.sequential then return p:parallel(list, { concurrency = conc }) end
    local res = {}   -- the same calls in a plain loop on the pipeline itself
    for i, f in ipairs(list) do res[i] = pack(f(p)) end
    return res
  end
  local lists = run(tasks)
  local sub_out, work, listed = {}, {}, 0
  for i, s in ipairs(subs) do
    local list, err = lists[i][1], lists[i][2]
    if list then
      local n = 0
      for _, item in ipairs(list) do
        if matches(item, want_rg, want_name) then
          n = n + 1
          work[#work + 1] = { sub = s, item = item }
        end
      end
      listed = listed + #list
      sub_out[#sub_out + 1] = { id = s, registries = n, listed = #list }
    else
      sub_out[#sub_out + 1] = { id = s, registries = 0, listed = 0, error = { status = err and err.status,
        code = err and err.code, message = err and err.message } }
    end
  end
  if filter then
    say(string.format("%d of %d registries in %d subscription(s) match %s; inspecting them %d at a time",
      #work, listed, #subs, M.filter_text(filter), conc))
  else
    say(string.format("%d registries in %d subscription(s); inspecting them %d at a time", #work, #subs,
      conc))
  end
  -- 2. every registry, in parallel
  tasks = {}
  for i, w in ipairs(work) do tasks[i] = function(v) return inspect(v, w.sub, w.item) end end
  local out = run(tasks)
  local rows = {}
  local summary = { registries = #work, listed = listed, cmk = 0, ok = 0, warn = 0, fail = 0 }
  for i = 1, #work do
    local row = out[i][1]
    rows[#rows + 1] = row
    if row.cmk then summary.cmk = summary.cmk + 1 end
    summary[row.health] = summary[row.health] + 1
  end
  table.sort(rows, function(a, b)
    if RANK[a.health] ~= RANK[b.health] then return RANK[a.health] > RANK[b.health] end
    if a.subscription ~= b.subscription then return a.subscription < b.subscription end
    return tostring(a.name):lower() < tostring(b.name):lower()
  end)
  return { subscriptions = sub_out, registries = rows, summary = summary, filter = filter }
end

--- The same GETs in a plain sequential loop (for comparison and the benchmark).
function M.audit_sequential(o)
  local o2 = {}
  for k, v in pairs(o) do o2[k] = v end
  o2.sequential = true
  return M.audit(o2)
end

setmetatable(M, { __call = function(_, o) return M.audit(o) end })
return M
