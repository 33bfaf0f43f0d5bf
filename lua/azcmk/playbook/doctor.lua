--- doctor: find what breaks a CMK registry, link by link from the caller to the key, and with
-- fix = true apply the safe repairs (lua/azcmk/doctor/fix.lua), then check again. Every check
-- reports ok / warn / fail (or skip when it does not apply), the REST facts it saw and the
-- fix; failures come first. The doctor reads as the caller, never as the registry's identity.
local common = require("azcmk.playbook.common")
local state = require("azcmk.state")
local rules = require("azcmk.state.rules")
local fix = require("azcmk.doctor.fix")
local check = common.check

local M = {}

M.RANK = { fail = 1, warn = 2, ok = 3, skip = 4 }
M.MAX_ROUNDS = 3

--- The checks, in the order of the chain (docs/doctor.md "The checks").
function M.checks()
  local out = {}
  local function add(list) for _, c in ipairs(list) do out[#out + 1] = c end end
  add(require("azcmk.doctor.registry_checks").list)
  local vault = require("azcmk.doctor.vault_checks")
  add(vault.list)
  local key = require("azcmk.doctor.key_checks")
  add(key.list)
  out[#out + 1] = vault.recoverability
  add(key.tail)
  return out
end

--- Run every check on facts f: the results, failures first (stable otherwise).
function M.evaluate(f)
  local results = {}
  for i, c in ipairs(M.checks()) do
    local ok, r = pcall(c.run, f)
    if not ok then
      r = { status = "warn", summary = "the check itself failed: " .. tostring(r), evidence = {} }
    end
    r.id, r.title, r.order = c.id, c.title, i
    r.evidence = r.evidence or {}
    results[#results + 1] = r
  end
  table.sort(results, function(a, b)
    local ra, rb = M.RANK[a.status] or 9, M.RANK[b.status] or 9
    if ra ~= rb then return ra < rb end
    -- among failures, the data plane's refusal (the symptom) comes after its causes
    local sa, sb = a.id == "registry.data_plane" and a.status ~= "ok", b.id == "registry.data_plane"
      and b.status ~= "ok"
    if sa ~= sb then return sb end
    return a.order < b.order
  end)
  return results
end

local function summarize(f, results)
  local revoked = rules.revocation(f)
  local counts = { ok = 0, warn = 0, fail = 0, skip = 0 }
  for _, r in ipairs(results) do counts[r.status] = (counts[r.status] or 0) + 1 end
  return {
    registry = { name = f.reg and f.reg.name or f.input.registry, id = f.reg and f.reg.id,
      resource_group = f.rg or f.input.resource_group, login_server = f.login_server },
    caller = f.caller and { object_id = f.caller.oid, tenant_id = f.caller.tid, app_id = f.caller.appid }
        or nil,
    healthy = counts.fail == 0 and not revoked,
    status = counts.fail > 0 and "broken" or (revoked and "revoked") or "healthy",
    revoked = revoked and { at = revoked.at, by = revoked.by } or nil,
    counts = counts, checks = results,
  }
end

--- A repair of the plan as the report shows it: { repair, id (the resource it writes to),
-- check (the failed check that asked for it), reason (that check's summary), description }.
function M.describe(item)
  return { repair = item.repair, id = item.id, check = item.check, reason = item.reason,
    description = item.description }
end

--- Diagnose once: every fact of the registry's CMK chain (azcmk.state, as the caller), then
-- the checks. Returns report, f.
function M.diagnose(ctx, o)
  local f = state.read({ pipeline = ctx.p, subscription = ctx.subscription, registry = o.registry or o.name,
    resource_group = o.resource_group, parts = state.parts.all })
  local results = M.evaluate(f)
  return summarize(f, results), f
end

--- doctor{registry (or name), resource_group?, fix?, yes?, confirm? = function(plan) -> bool,
-- dry_run?, force?, pipeline?, subscription?, progress?} -> report { registry, caller, healthy,
-- status ("healthy", "broken", or "revoked": nothing fails but what a recorded revocation
-- explains), revoked? = {at, by}, counts, checks = [{id, title, status, summary, evidence, fix,
-- revoked?}], fix? = { plan, applied, dry_run?, steps, rounds, before = (the first report's
-- checks) } } or nil, err (only for bad options or no subscription, and for fix on a
-- revoked registry without force: RegistryRevoked, with err.report; everything else is a
-- check result). With fix and
-- dry_run, the repairs are planned and none is applied (no confirmation needed).
function M.doctor(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", fix = "boolean?",
    yes = "boolean?", confirm = "function?", dry_run = "boolean?", force = "boolean?" },
    "azcmk.playbook.doctor")
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local report, f = M.diagnose(ctx, o)
  local plan = fix.plan(f, report.checks, o.force)
  report.repairs = #plan   -- how many safe repairs --fix would plan
  if not o.fix then return report end
  -- a revoked registry stays revoked: the repairs would re-open its key path
  local revoked = f.reg and common.revoked_refusal(f, f.reg.name, "the doctor's repairs", o.force)
  if revoked then
    revoked.report = report
    return nil, revoked
  end
  local descr = {}
  for _, item in ipairs(plan) do descr[#descr + 1] = M.describe(item) end
  report.fix = { plan = descr, applied = false, steps = ctx.steps, rounds = 0 }
  if o.dry_run then
    report.fix.dry_run = true
    report.fix.reason = #plan == 0 and (report.healthy and "nothing to repair"
      or "no safe repair for the failures (see each fix)") or "dry run: nothing was changed"
    return report
  end
  if #plan == 0 then
    report.fix.reason = report.healthy and "nothing to repair"
        or "no safe repair for the failures (see each fix)"
    return report
  end
  if not o.yes and not (o.confirm and o.confirm(descr)) then
    report.fix.reason = "not confirmed: run with `yes = true` to apply the plan"
    report.fix.needs_confirmation = true
    return report
  end
  local first = report
  local done = {}
  for round = 1, M.MAX_ROUNDS do
    for _, item in ipairs(plan) do
      ctx:say("repair: " .. item.description)
      local ok, aerr = fix.apply(ctx, f, item)
      done[item.repair] = (done[item.repair] or 0) + 1
      if not ok then
        report = M.diagnose(ctx, o)
        report.fix = { plan = descr, applied = true, steps = ctx.steps, rounds = round, before = first.checks,
          error = { code = type(aerr) == "table" and aerr.code or nil, message = type(aerr) == "table"
            and aerr.message or tostring(aerr), repair = item.repair } }
        return report
      end
    end
    report, f = M.diagnose(ctx, o)
    plan = fix.plan(f, report.checks, o.force)
    local again = {}
    for _, item in ipairs(plan) do
      if (done[item.repair] or 0) < 1 then
        again[#again + 1] = item
        local d = M.describe(item)
        d.round = round + 1
        descr[#descr + 1] = d
      end
    end
    report.fix = { plan = descr, applied = true, steps = ctx.steps, rounds = round, before = first.checks }
    plan = again
    if #plan == 0 then break end
  end
  return report
end

setmetatable(M, { __call = function(_, o) return M.doctor(o) end })
return M
