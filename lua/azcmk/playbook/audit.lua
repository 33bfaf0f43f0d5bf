--- audit: every container registry of one or more subscriptions with its encryption and key
-- health - SKU, CMK on/off, state (active, or revoked on purpose: when, by whom), key id,
-- versioned or versionless, key version in use vs the newest, age of the version in use,
-- rotation due, identity health, data plane.
--
-- It spends requests as the limits demand (Resource Manager allows a principal 250 reads per
-- subscription, refilled at 25 per second):
-- - the registries come from the subscription's list (nextLink paging, one page in memory):
--   the list carries every registry's properties, so no registry is read again;
-- - a CMK registry's user-assigned identity is looked up in its subscription's identity list
--   (one list per subscription and run) and each distinct key version is read once per run
--   (azcmk.state.cache), however many registries share it;
-- - subscriptions run in parallel (their buckets are separate), the CMK registries' reads in
--   parallel with them (p:parallel, the batch transport);
-- - reads are paced by the remaining-reads headers (azcmk.policy.pace), so a run that fits the
--   budget meets no 429; a 429 is waited out as Retry-After says and the read sent again.
-- Rows are delivered as they are judged (on_row), so a caller that streams them keeps no
-- memory per registry. resource_group / name narrow the listed registries (case-insensitive,
-- as Azure compares them) before any of them is inspected. Read-only: GETs only.
local errors = require("azcmk.errors")
local ids = require("azcmk.client.ids")
local options = require("azcmk.options")
local client = require("azcmk.client")
local Keys = require("azcmk.client.keys")
local Registries = require("azcmk.client.registries")
local state = require("azcmk.state")
local cachem = require("azcmk.state.cache")
local rules = require("azcmk.state.rules")
local pace = require("azcmk.policy.pace")

local M = {}

M.DEFAULT_CONCURRENCY = 16

local RANK = { fail = 3, warn = 2, ok = 1 }

-- what the state reader reads for a CMK registry (the registry itself comes from the list)
local PARTS = { identity = true, key = true }
local PARTS_PROBE = { identity = true, key = true, probe = true }

local function worst(row, level, problem)
  if RANK[level] > RANK[row.health] then row.health = level end
  row.problems[#row.problems + 1] = problem
end

local function short(err)
  if type(err) ~= "table" then return tostring(err) end
  return tostring(err.status or "") .. " " .. tostring(err.code or err.kind or "")
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
      row.key_age_seconds = math.max(0, now - a.created)
    end
    row.rotation_due = rules.rotation_due(f, now)
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

--- One registry's row, judged from its facts (azcmk.state on the registry as listed; for CMK
-- ones also the key versions in use and newest, the user-assigned identity from its
-- subscription's list and - probe - the data plane). v: a pipeline (view); cache: the run's.
local function inspect(v, sub, item, cache, probe)
  local row = { subscription = sub, name = item.name, id = item.id, health = "ok", problems = {},
    resource_group = (ids.parse_resource_id(item.id) or {}).resource_group, location = item.location }
  local cmk = Registries.cmk_enabled(item)
  local f = state.read({ pipeline = v, subscription = sub, reg = item, cache = cache,
    parts = cmk and (probe and PARTS_PROBE or PARTS) or PARTS })
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
  if row.login_server and probe then
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

local OPTIONS = { subscriptions = "table?", concurrency = "number?", progress = "function?",
  sequential = "boolean?", resource_group = "string?", name = "string?", pipeline = "table?",
  getenv = "function?", on_row = "function?", keep = "boolean?", probe = "boolean?", pace = "table?" }

--- audit{subscriptions = {id, ...} (default: every subscription the caller sees), concurrency = 16
-- (tasks at once: subscriptions being listed and CMK registries being read), resource_group?,
-- name? (only the registries of that group / of that name, case-insensitive; the others are not
-- inspected), probe = true (CMK registries: an anonymous GET of the data plane, which tells
-- whether the registry can use its key), on_row = function(row) (each row as soon as it is
-- judged), keep (keep the rows in the result; default: true without on_row, false with it),
-- pace = {rate, reserve} (azcmk.policy.pace), pipeline?, progress = function(event)} ->
-- { subscriptions = [{id, registries (those matching), listed (all of the subscription),
-- error?}], registries = [rows] (worst first; empty unless kept), summary = {registries,
-- listed, cmk, ok, warn, fail}, filter = {resource_group?, name?} | nil, stats = {cache_reads,
-- cache_hits, paced, paced_seconds, throttled} } or nil, err. A filter that matches nothing is
-- not an error: summary.registries = 0 with filter set (the command line turns that into exit 1).
-- progress gets {message} once, then {registries = judged, listed, subscriptions_done,
-- subscriptions} as work goes on.
function M.audit(o)
  o = o or {}
  options.check(o, OPTIONS, "azcmk.playbook.audit")
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
  local pacer = pace.new(o.pace)
  local function paced(v) return v:with({ per_retry = { pacer:bind(v.sleep) } }) end
  if #subs == 0 then
    local err
    subs, err = client.new(paced(p)).subscriptions:ids()
    if not subs then return nil, err end
  end
  local conc = o.concurrency or M.DEFAULT_CONCURRENCY
  local probe = o.probe ~= false
  local keep = o.keep
  if keep == nil then keep = o.on_row == nil end
  local cache = cachem.new()
  local rows = {}
  local summary = { registries = 0, listed = 0, cmk = 0, ok = 0, warn = 0, fail = 0 }
  local subs_done = 0
  local function progress(ev) if o.progress then pcall(o.progress, ev) end end
  local function tick()
    progress({ registries = summary.registries, listed = summary.listed, subscriptions_done = subs_done,
      subscriptions = #subs })
  end
  local function emit(row)
    summary.registries = summary.registries + 1
    if row.cmk then summary.cmk = summary.cmk + 1 end
    summary[row.health] = summary[row.health] + 1
    if keep then rows[#rows + 1] = row end
    if o.on_row then o.on_row(row) end
    tick()
  end
  progress({ message = string.format("auditing %d subscription(s)%s, %d tasks at a time", #subs,
    filter and (" for " .. M.filter_text(filter)) or "", conc) })

  -- a task per subscription lists its registries page by page; a CMK registry's reads become
  -- a task of their own, at most 4 x conc queued at once: beyond that the listing task reads
  -- the registry itself (waiting for the queue instead would deadlock once every running task
  -- is a listing one waiting for tasks that cannot start)
  local tasks, sub_out = {}, {}
  local waiting, max_waiting = 0, 4 * conc
  local function schedule(v, fn)
    if o.sequential or waiting >= max_waiting then return fn(v) end
    waiting = waiting + 1
    tasks[#tasks + 1] = function(tv) fn(tv); waiting = waiting - 1 end
  end
  for i, s in ipairs(subs) do
    local out = { id = s, registries = 0, listed = 0 }
    sub_out[i] = out
    tasks[#tasks + 1] = function(v)
      local pv = paced(v)
      for item, err in client.new(pv, { subscription = s }).registries:each() do
        if not item then
          out.error = { status = err and err.status, code = err and err.code, message = err and err.message }
          break
        end
        out.listed = out.listed + 1
        summary.listed = summary.listed + 1
        if matches(item, want_rg, want_name) then
          out.registries = out.registries + 1
          if Registries.cmk_enabled(item) then
            schedule(v, function(tv) emit(inspect(paced(tv), s, item, cache, probe)) end)
          else
            emit(inspect(pv, s, item, cache, probe))   -- no request: the list said it all
          end
        end
      end
      subs_done = subs_done + 1
      tick()
    end
  end
  if o.sequential then
    local i = 1
    while tasks[i] do tasks[i](p); i = i + 1 end
  else
    p:parallel(tasks, { concurrency = conc, keep = false })
  end
  if keep then
    table.sort(rows, function(a, b)
      if RANK[a.health] ~= RANK[b.health] then return RANK[a.health] > RANK[b.health] end
      if a.subscription ~= b.subscription then return a.subscription < b.subscription end
      return tostring(a.name):lower() < tostring(b.name):lower()
    end)
  end
  return { subscriptions = sub_out, registries = rows, summary = summary, filter = filter,
    stats = { cache_reads = cache.reads, cache_hits = cache.hits, paced = pacer.waits,
      paced_seconds = pacer.waited, throttled = pacer.throttled } }
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
