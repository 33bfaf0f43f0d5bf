--- CMK status and health of registries, served by nginx from a cached result
-- (docs/openresty.md, examples/nginx/nginx.conf).
--
--   lua_shared_dict azcmk_status 1m;
--   init_worker_by_lua_block {
--     require("azcmk.ngx.status").start{ registries = { "rg1/registry1", "registry2" }, period = 30 }
--   }
--   location = /cmk/status { content_by_lua_block { require("azcmk.ngx.status").serve() } }
--   location = /cmk/health { content_by_lua_block { require("azcmk.ngx.status").health() } }
--   location = /metrics    { content_by_lua_block { require("azcmk.ngx.status").metrics() } }
--   location = /cmk/fleet  { content_by_lua_block { require("azcmk.ngx.status").page() } }
--
-- Fleet mode: start{ fleet = true, subscriptions = {...} (default: every subscription the
-- caller sees) } checks every registry of the subscriptions with azcmk.playbook.audit (the
-- registry lists, each key read once) instead of a list of registries one by one. Either
-- way /metrics serves Prometheus metrics (azcmk.playbook.metrics: CMK state, key version
-- age, rotation due, findings, last check time) and /cmk/fleet a page with a row per
-- registry (azcmk.playbook.fleet_page), both from the cached result.
--
-- A timer in every worker (ngx.timer.every, period seconds) refreshes the shared result; a
-- dict add() lock lets one worker at a time check, and only when the result is older than the
-- period. Requests read the cached result and never wait on Azure when one exists (before
-- the first result, a request triggers the check itself, or waits for the running one).
--
-- A registry is healthy when it can be read through ARM, has a customer-managed key, and its
-- data plane (https://{login server}/v2/) serves (azcmk.state.rules.data_plane: 401, login
-- required, is normal; 403 means the registry cannot use its key). What it reports beside
-- (key version in use, newest, up to date, warnings) is azcmk.playbook.show's judgement of the
-- same facts. With probe = "content" the check also reads a manifest and a blob as the
-- gateway's identity (azcmk.state.content_probe, needs AcrPull on the registry): the registry is
-- healthy only when it can really use its key (or holds nothing to read). When the module
-- azcmk.playbook.doctor exists (optional), its failed checks explain a failure (doctor = true:
-- it runs on every check and its failures count too; false: never).
-- /health answers 200 when every registry is healthy, 503 otherwise (also when the result is
-- stale: older than stale_after, default 3 periods + timeout), with the reasons in the JSON.
local cjson = require("cjson.safe")
local rules = require("azcmk.state.rules")

local ngx = rawget(_G, "ngx")

local M = {}

M.DICT = "azcmk_status"
M.PERIOD = 30
M.KEY = "result"

local cfg = {
  registries = {}, period = M.PERIOD, dict = M.DICT, pipeline = nil, stale_after = nil,
  timeout_s = 20,
}

local function split_registries(s)
  local out = {}
  for item in tostring(s or ""):gmatch("[^,%s]+") do out[#out + 1] = item end
  return out
end

local function norm_registry(r)
  if type(r) == "table" then return { name = r.name, resource_group = r.resource_group } end
  local rg, name = tostring(r):match("^([^/]+)/([^/]+)$")
  if rg then return { name = name, resource_group = rg } end
  return { name = tostring(r) }
end

--- configure{registries = {"rg/name" | "name" | {name=, resource_group=}} (default:
-- AZCMK_STATUS_REGISTRIES, comma-separated), period (s, default 30), dict ("azcmk_status"),
-- subscription, pipeline (options for azcmk.ngx.new, or a pipeline), probe ("anonymous": GET
-- /v2/ only, the default; "content": also read a manifest and a blob), timeout_s (per check,
-- default 20), stale_after (s), doctor (nil: run azcmk.playbook.doctor, when present, to
-- explain a failure; true: on every check; false: never), fleet (true: every registry of the
-- subscriptions through the audit instead of `registries`), subscriptions (fleet mode's; given
-- = fleet), title (the fleet page's)}. No I/O.
function M.configure(opts)
  opts = opts or {}
  require("azcmk.options").check(opts, { registries = "table?", period = "number?", dict = "string?",
    subscription = "string?", pipeline = "table?", timeout_s = "number?", stale_after = "number?",
    doctor = "boolean?", probe = "string?", fleet = "boolean?", subscriptions = "table?", title = "string?" },
    "azcmk.ngx.status.configure")
  if opts.probe ~= nil and opts.probe ~= "anonymous" and opts.probe ~= "content" then
    error("azcmk.ngx.status.configure: probe must be \"anonymous\" or \"content\"", 2)
  end
  local regs = opts.registries or split_registries(os.getenv("AZCMK_STATUS_REGISTRIES"))
  cfg.registries = {}
  for _, r in ipairs(regs) do cfg.registries[#cfg.registries + 1] = norm_registry(r) end
  cfg.period = opts.period or M.PERIOD
  cfg.dict = opts.dict or M.DICT
  cfg.subscription = opts.subscription
  cfg.pipeline = opts.pipeline
  cfg.timeout_s = opts.timeout_s or 20
  cfg.stale_after = opts.stale_after or (3 * cfg.period + cfg.timeout_s)
  cfg.doctor = opts.doctor
  cfg.probe = opts.probe or "anonymous"
  cfg.fleet = opts.fleet == true or opts.subscriptions ~= nil
  cfg.subscriptions = opts.subscriptions
  cfg.title = opts.title
  cfg.p = nil
  return cfg
end

local function dict()
  local d = ngx.shared[cfg.dict]
  if not d then error("azcmk.ngx.status: no lua_shared_dict '" .. cfg.dict .. "'", 3) end
  return d
end

local function pipeline()
  if cfg.p then return cfg.p end
  if type(cfg.pipeline) == "table" and cfg.pipeline.send then
    cfg.p = cfg.pipeline
    return cfg.p
  end
  local o = {}
  for k, v in pairs(cfg.pipeline or {}) do o[k] = v end
  -- a health check must answer within its period: few retries, short budget
  if o.retry == nil then o.retry = { max_retries = 1, budget = cfg.timeout_s, cap = 2 } end
  local p, err = require("azcmk.ngx").new(o)
  if not p then return nil, err end
  cfg.p = p
  return p
end

local function err_fields(err)
  if type(err) ~= "table" then return { message = tostring(err) } end
  return { kind = err.kind, status = err.status, code = err.code, message = err.message,
    request_id = err.request_id, hint = err.hint }
end

local function one_line(s) return (tostring(s or ""):match("^[^\r\n]*")) end

local doctor_mod
local function doctor()
  if cfg.doctor == false then return nil end
  if doctor_mod == nil then
    local ok, d = pcall(require, "azcmk.playbook.doctor")
    doctor_mod = ok and type(d) == "table" and d or false
  end
  return doctor_mod or nil
end

-- azcmk.playbook.doctor (optional): report { healthy, status, counts, checks = {{id, title,
-- status, summary}} } -> a short table and the first failure's text
local function run_doctor(reg, out, p)
  local d = doctor()
  local fn = d and (d.doctor or d.run)
  if type(fn) ~= "function" then return nil end
  local ok, rep = pcall(fn, { registry = reg.name, resource_group = out.resource_group or reg.resource_group,
    pipeline = p, subscription = cfg.subscription or p.subscription })
  if not ok or type(rep) ~= "table" then return nil end
  local fails = {}
  for _, c in ipairs(type(rep.checks) == "table" and rep.checks or {}) do
    if type(c) == "table" and c.status == "fail" then
      fails[#fails + 1] = { id = c.id, title = c.title, summary = c.summary and one_line(c.summary) }
    end
  end
  out.doctor = { healthy = rep.healthy, status = rep.status, counts = rep.counts,
    failures = #fails > 0 and fails or nil }
  -- the cause rather than the symptom: a failure other than the data plane's answer, if any
  local pick = fails[1]
  for _, f in ipairs(fails) do
    if not tostring(f.id):find("data_plane", 1, true) then pick = f; break end
  end
  if pick then return "doctor: " .. tostring(pick.summary or pick.title or pick.id) end
  return nil
end

--- Checks one registry now (cosockets: call from a timer or request phase). Returns a table
-- { name, resource_group, healthy, reason, cmk, key_id, ..., data_plane, error, doctor? }.
function M.check(reg, p)
  local show = require("azcmk.playbook.show")
  local out = { name = reg.name, resource_group = reg.resource_group, healthy = false }
  local r, err = show.show({ registry = reg.name, resource_group = reg.resource_group, pipeline = p,
    subscription = cfg.subscription or p.subscription, probe = true, content = cfg.probe == "content" })
  local reason
  if not r then
    out.reason = "registry not readable: " .. one_line(tostring(err))
    out.error = err_fields(err)
    return out
  end
  out.resource_group = r.registry.resource_group
  out.login_server = r.registry.login_server
  out.cmk = r.cmk
  out.encryption_status = r.encryption and r.encryption.status
  out.key_id = r.key_id
  out.key_version_in_use = r.key_version_in_use
  out.newest_key_version = r.newest_key_version
  out.up_to_date = r.up_to_date
  out.auto_rotation = r.auto_rotation
  out.identity = r.identity
  out.state = r.state                -- "active", or "revoked" (azcmk revoke's tag)
  out.revoked = r.revoked            -- {at, by} when revoked
  out.warnings = (r.warnings and #r.warnings > 0) and r.warnings or nil
  local dp = r.data_plane
  if dp then
    out.data_plane = { status = dp.status, code = dp.code, message = dp.message and one_line(dp.message),
      ok = dp.ok, error = dp.error and one_line(dp.error) }
  end
  local ct = r.content
  if ct then
    out.content = { verdict = ct.verdict, summary = one_line(ct.summary), key_version = ct.key_version,
      repository = ct.repository, reference = ct.reference, error = ct.error and err_fields(ct.error) }
  end
  local serving = rules.data_plane(dp)
  if not r.cmk then
    reason = "customer-managed key not enabled (encryption " .. tostring(out.encryption_status) .. ")"
  elseif not dp then
    reason = "registry has no login server to probe"
  elseif serving == "unreachable" then
    reason = "data plane unreachable: " .. one_line(dp.error)
  elseif serving == "denied" and r.revoked then
    -- deliberate: still unhealthy (its data cannot be read), but not a mystery to debug
    reason = "revoked deliberately on " .. tostring(r.revoked.at) .. " by " .. tostring(r.revoked.by)
      .. ": the data plane refuses (" .. tostring(dp.status) .. "); run azcmk restore to undo"
  elseif serving ~= "serving" then
    reason = "data plane refuses (" .. tostring(dp.status) .. " " .. tostring(dp.code or "") ..
      "): " .. one_line(dp.message) .. (serving == "denied" and " - the registry cannot use its key" or "")
  elseif ct and ct.verdict ~= "usable" and ct.verdict ~= "empty" then
    reason = "content probe: " .. one_line(ct.summary)
  end
  -- the doctor: always when doctor = true; by default only to explain a failure (a revocation
  -- explains itself)
  if cfg.doctor == true or (reason and cfg.doctor ~= false and r.cmk and not r.revoked) then
    local why = run_doctor(reg, out, p)
    if why then reason = reason and (reason .. "; " .. why) or why end
  end
  if reason then
    out.reason = reason
    return out
  end
  out.healthy = true
  out.reason = "ok: CMK enabled, key version " .. tostring(out.key_version_in_use) .. ", data plane answers "
    .. tostring(dp.status) .. (ct and ("; content probe: " .. one_line(ct.summary)) or "")
  return out
end

-- Fleet mode: every registry of the subscriptions through the audit; its rows, and whether
-- all are healthy (no "fail").
local function check_fleet(p)
  local audit = require("azcmk.playbook.audit")
  local r, err = audit.audit({ pipeline = p, subscriptions = cfg.subscriptions })
  if not r then return nil, err end
  local rows, healthy = {}, true
  for i, row in ipairs(r.registries) do
    rows[i] = { name = row.name, resource_group = row.resource_group, subscription = row.subscription,
      cmk = row.cmk == true, health = row.health, healthy = row.health ~= "fail",
      key_id = row.key_id, key_version_in_use = row.key_version_in_use, key_age_seconds = row.key_age_seconds,
      rotation_due = row.rotation_due, problems = setmetatable(row.problems, cjson.array_mt),
      reason = row.problems[1] or "ok" }
    if row.health == "fail" then healthy = false end
  end
  for _, s in ipairs(r.subscriptions) do
    if s.error then healthy = false end
  end
  return rows, healthy
end

--- Checks every configured registry and stores the result in the shared dict, unless another
-- worker is checking or (force ~= true) the stored result is younger than the period.
-- Returns the result document, or nil, reason ("busy" | "fresh" | error).
function M.refresh(force)
  local d = dict()
  local owner = tostring(ngx.worker.pid())
  local lock_s = cfg.timeout_s * ((cfg.fleet and 30 or #cfg.registries) + 1) + 5
  if not d:add("running", owner, lock_s) then return nil, "busy" end
  local ok, doc, why = pcall(function()
    if not force then
      local at = d:get("checked_at")
      if at and ngx.now() - at < cfg.period - 0.05 then return nil, "fresh" end
    end
    local p, perr = pipeline()
    local results, healthy = {}, true
    if cfg.fleet then
      local rows, ok_or_err
      if p then rows, ok_or_err = check_fleet(p) end
      if not rows then
        healthy = false
        results = {}
        perr = ok_or_err or perr
      else
        results, healthy = rows, ok_or_err
      end
    end
    for i, reg in ipairs(cfg.fleet and {} or cfg.registries) do
      local r
      if not p then
        r = { name = reg.name, resource_group = reg.resource_group, healthy = false,
          reason = "no pipeline: " .. one_line(tostring(perr)), error = err_fields(perr) }
      else
        local cok, cr = pcall(M.check, reg, p)
        r = cok and cr or { name = reg.name, healthy = false, reason = "check failed: " .. one_line(cr) }
      end
      results[i] = r
      if not r.healthy then healthy = false end
    end
    local reason
    if cfg.fleet then
      local why = perr and (": " .. one_line(tostring(perr))) or ""
      reason = #results == 0 and ("no registry audited" .. why) or nil
    elseif #cfg.registries == 0 then
      reason = "no registries configured (AZCMK_STATUS_REGISTRIES)"
    end
    if reason then healthy = false end
    ngx.update_time()
    local doc = { healthy = healthy, checked_at = ngx.now(), period = cfg.period, fleet = cfg.fleet or nil,
      reason = reason,
      registries = setmetatable(results, cjson.array_mt) }
    d:set(M.KEY, cjson.encode(doc))
    d:set("checked_at", doc.checked_at)
    d:incr("refreshes", 1, 0)
    return doc
  end)
  if d:get("running") == owner then d:delete("running") end
  if not ok then
    ngx.log(ngx.ERR, "azcmk status refresh: ", tostring(doc))
    return nil, doc
  end
  return doc, why
end

--- Starts the refresh timers (call from init_worker_by_lua*; configure(opts) first when
-- opts are given). The first check runs at once (zero-delay timer), then every period.
function M.start(opts)
  if opts then M.configure(opts) end
  local function tick(premature)
    if premature then return end
    M.refresh(false)
  end
  local ok, err = ngx.timer.at(0, tick)
  if not ok then return nil, err end
  return ngx.timer.every(cfg.period, tick)
end

-- the cached document (decoded) with its age, or nil
function M.cached()
  local raw = dict():get(M.KEY)
  if not raw then return nil end
  local doc = cjson.decode(raw)
  if type(doc) ~= "table" then return nil end
  ngx.update_time()
  doc.age = math.floor((ngx.now() - (doc.checked_at or 0)) * 1000) / 1000
  doc.stale = doc.age > cfg.stale_after
  if doc.stale then
    doc.healthy = false
    doc.reason = "status is stale: last check " .. math.floor(doc.age) .. " s ago"
  end
  return doc
end

-- the cached document, or (no result yet) run or wait for the first check (bounded)
local function current()
  local doc = M.cached()
  if doc then return doc end
  local deadline = ngx.now() + cfg.timeout_s * (#cfg.registries + 1)
  while ngx.now() < deadline do
    local _, why = M.refresh(true)
    doc = M.cached()
    if doc then return doc end
    if why ~= "busy" then break end
    ngx.sleep(0.05)
    ngx.update_time()
  end
  return M.cached()
end

local function send(status, doc)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  ngx.say(cjson.encode(doc))
  return ngx.exit(status)
end

--- Content handler: the cached status document (200; 503 before any result).
function M.serve()
  local doc = current()
  if not doc then return send(503, { healthy = false, reason = "no status yet" }) end
  return send(200, doc)
end

--- Content handler: 200 when every registry is healthy, else 503; body {healthy, reason,
-- age, registries = {{name, healthy, reason}}}.
function M.health()
  local doc = current()
  if not doc then return send(503, { healthy = false, reason = "no status yet" }) end
  local regs, reasons = {}, {}
  for i, r in ipairs(doc.registries or {}) do
    regs[i] = { name = r.name, healthy = r.healthy, reason = r.reason }
    if not r.healthy then reasons[#reasons + 1] = tostring(r.name) .. ": " .. tostring(r.reason) end
  end
  local body = { healthy = doc.healthy == true, age = doc.age, checked_at = doc.checked_at,
    reason = doc.reason or (#reasons > 0 and table.concat(reasons, "; ") or "ok"),
    registries = setmetatable(regs, cjson.array_mt) }
  return send(doc.healthy == true and 200 or 503, body)
end

-- the rows of the metrics and the page: fleet rows as they are; a checked registry's row
-- judged ok or fail, its reason (and the doctor's failures) as findings
local function report_rows(doc)
  if doc.fleet then return doc.registries or {} end
  local rows = {}
  for i, r in ipairs(doc.registries or {}) do
    local problems = {}
    if not r.healthy then
      problems[1] = r.reason
      for _, f in ipairs(r.doctor and r.doctor.failures or {}) do
        problems[#problems + 1] = f.summary or f.title or f.id
      end
    end
    rows[i] = { name = r.name, resource_group = r.resource_group,
      subscription = cfg.subscription or (cfg.p and cfg.p.subscription), cmk = r.cmk == true,
      health = r.healthy and "ok" or "fail", problems = problems }
  end
  return rows
end

local function send_text(status, ctype, body)
  ngx.status = status
  ngx.header["Content-Type"] = ctype
  ngx.header["Cache-Control"] = "no-store"
  ngx.print(body)
  return ngx.exit(status)
end

--- Content handler: Prometheus metrics of the cached result (text/plain; version=0.0.4);
-- 503 before any result.
function M.metrics()
  local metrics = require("azcmk.playbook.metrics")
  local doc = current()
  if not doc then return send_text(503, "text/plain", "no status yet\n") end
  return send_text(200, metrics.CONTENT_TYPE, metrics.text(report_rows(doc), doc.checked_at))
end

--- Content handler: the fleet page (HTML, a row per registry) of the cached result.
function M.page()
  local page = require("azcmk.playbook.fleet_page")
  local doc = current()
  if not doc then return send_text(503, "text/plain", "no status yet\n") end
  return send_text(200, page.CONTENT_TYPE, page.html(report_rows(doc), { title = cfg.title,
    checked_at = doc.checked_at, note = doc.stale and doc.reason or nil }))
end

M._cfg = cfg
return M
