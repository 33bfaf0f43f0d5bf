--- audit: every container registry of one or more subscriptions with its encryption and key
-- health - SKU, CMK on/off, key id, versioned or versionless, key version in use vs the newest,
-- age of the version in use, identity health, data plane - fetched in parallel with bounded
-- concurrency (p:parallel: the transport's batch on the core's curl multi handle, every
-- request on the pipeline's ordinary path: tokens, retries honouring Retry-After, errors).
-- resource_group / name narrow the listed registries (case-insensitive, as Azure compares
-- them) before any of them is inspected. Read-only: GETs only.
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local url = require("azcmk.url")
local V = require("azcmk.client.api_versions")
local Registries = require("azcmk.client.registries")
local Keys = require("azcmk.client.keys")
local facts = require("azcmk.doctor.facts")
local options = require("azcmk.options")

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

--- The registry list of a subscription (pages followed). Returns list, service time | nil, err.
local function list_registries(v, sub)
  local req = { method = "GET", url = v:_arm_url("/subscriptions/" .. url.encode(sub) .. "/providers/"
    .. Registries.TYPE), api_version = V.registries }
  local out, now = {}, nil
  for res, err in require("azcmk.paging").pages(v, req) do
    if not res then return nil, err end
    now = facts.service_time(res.headers) or now
    for _, item in ipairs(type(res.json) == "table" and res.json.value or {}) do out[#out + 1] = item end
  end
  return out, now
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

--- One registry's row: GET the registry; for CMK ones also the key (version in use and the
-- current one), the user-assigned identity and the data plane. v: a pipeline view.
local function inspect(v, sub, item, now)
  local row = { subscription = sub, name = item.name, id = item.id, health = "ok", problems = {},
    resource_group = (ids.parse_resource_id(item.id) or {}).resource_group, location = item.location }
  local res, err = v:arm("GET", item.id, { api_version = V.registries })
  if not res then
    worst(row, errors.is(err, 404) and "warn" or "fail", "cannot read the registry: " .. short(err))
    return row
  end
  local reg = res.json
  now = facts.service_time(res.headers) or now or os.time()
  local props = reg.properties or {}
  row.sku = reg.sku and reg.sku.name
  row.login_server = props.loginServer
  row.cmk = Registries.cmk_enabled(reg)
  row.encryption = row.cmk and "enabled" or "disabled"
  if not row.cmk then return row end
  local kvp = props.encryption.keyVaultProperties
  row.key_id = kvp.keyIdentifier
  row.versioned_key_id = kvp.versionedKeyIdentifier
  row.auto_rotation = kvp.keyRotationEnabled == true
  local key = ids.parse_key_id(kvp.keyIdentifier or kvp.versionedKeyIdentifier or "", v.cloud)
  row.versioned = key ~= nil and key.version ~= nil
  row.key_version_in_use = Keys.version_of(kvp.versionedKeyIdentifier) or (key and key.version)
  -- identity health
  local ident = tostring(kvp.identity or "")
  if ident:lower() == "system" then
    row.identity = "system"
    local ri = reg.identity or {}
    if ri.principalId and tostring(ri.type):lower():find("systemassigned", 1, true) then
      row.identity_health = "ok"
    else
      row.identity_health = "missing"
      worst(row, "fail", "the system-assigned identity used for CMK is not enabled")
    end
  else
    row.identity = "user"
    local uid, uv = Registries.user_identity(reg, ident)
    if not uid then
      row.identity_health = "detached"
      worst(row, "fail", "the encryption identity " .. ident .. " is not attached to the registry")
    else
      row.identity_id = uid
      local ures, uerr = v:arm("GET", uid, { api_version = V.identities })
      if ures then
        local cid = (ures.json.properties or {}).clientId
        if tostring(cid):lower() ~= tostring(uv.clientId):lower() then
          row.identity_health = "recreated"
          worst(row, "fail", "the user-assigned identity was re-created (clientId changed)")
        else
          row.identity_health = "ok"
        end
      elseif errors.is(uerr, 404) then
        row.identity_health = "deleted"
        worst(row, "fail", "the user-assigned identity was deleted")
      else
        row.identity_health = "unknown"
        worst(row, "warn", "cannot read the identity: " .. short(uerr))
      end
    end
  end
  -- the key: the version in use and the current (newest) one
  if key then
    row.vault = key.vault
    row.key_name = key.name
    local path = "/keys/" .. url.encode(key.name)
    local cur, cerr = v:vault("GET", key.vault_url, path, { api_version = V.keys })
    if cur then
      local kb = cur.json or {}
      row.newest_key_version = Keys.version_of((kb.key or {}).kid)
      local in_use = kb
      if row.key_version_in_use and row.key_version_in_use ~= row.newest_key_version then
        local ures = v:vault("GET", key.vault_url, path .. "/" .. url.encode(row.key_version_in_use),
          { api_version = V.keys })
        in_use = ures and ures.json or nil
      end
      row.up_to_date = row.newest_key_version == row.key_version_in_use
      local a = in_use and in_use.attributes or {}
      if a.created then
        row.key_version_created = os.date("!%Y-%m-%dT%H:%M:%SZ", a.created)
        row.key_age_days = math.floor((now - a.created) / 86400)
      end
      if in_use and a.enabled == false then worst(row, "fail", "the key version in use is disabled") end
      if a.exp and a.exp <= now then worst(row, "warn", "the key version in use expired (wrap fails)") end
      if not row.up_to_date then
        local age = now - ((kb.attributes or {}).created or now)
        if row.auto_rotation and age > 3600 then
          worst(row, "fail",
              "versionless key, but the registry is more than an hour behind the newest version")
        else
          worst(row, "warn", "a newer key version exists")
        end
      end
    elseif errors.is(cerr, 404) then
      worst(row, "fail", "the key or its vault is missing (" .. tostring(cerr.code) .. ")")
    else
      worst(row, "warn", "cannot read the key as the caller: " .. short(cerr))
    end
  end
  -- the data plane: 401 serving, 403 the registry cannot use its key
  if row.login_server then
    local pres, perr = v:send({ method = "GET", url = "https://" .. row.login_server .. "/v2/",
        auth = false })
    row.data_plane = pres and pres.status or (perr and perr.status)
    if row.data_plane == 403 then worst(row, "fail", "the data plane refuses to serve (403)") end
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
  for k, what in pairs({ resource_group = "resource group (-g)", name = "registry name (-n)" }) do
    if o[k] == "" then
      return nil, errors.input("the " .. what .. " to audit is empty",
        { code = "InvalidFilter",
          hint = "pass -g RESOURCE_GROUP and/or -n REGISTRY with a name, or neither" })
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
        { code = "InvalidSubscription", hint = "pass --subscription with a subscription id" })
    end
    subs[#subs + 1] = s:lower()
  end
  if #subs == 0 then
    for item, err in p:arm_pages("/subscriptions", { api_version = V.subscriptions }) do
      if not item then return nil, err end
      subs[#subs + 1] = item.subscriptionId
    end
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
    local list, now_or_err = lists[i][1], lists[i][2]
    if list then
      local n = 0
      for _, item in ipairs(list) do
        if matches(item, want_rg, want_name) then
          n = n + 1
          work[#work + 1] = { sub = s, item = item, now = now_or_err }
        end
      end
      listed = listed + #list
      sub_out[#sub_out + 1] = { id = s, registries = n, listed = #list }
    else
      sub_out[#sub_out + 1] = { id = s, registries = 0, listed = 0, error = { status = now_or_err
        and now_or_err.status, code = now_or_err and now_or_err.code, message = now_or_err
        and now_or_err.message } }
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
  for i, w in ipairs(work) do tasks[i] = function(v) return inspect(v, w.sub, w.item, w.now) end end
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
