--- `azcmk doctor`: every known CMK failure of a registry, failures first, with evidence and fix;
-- `--fix` applies the safe repairs after showing them (`--yes` for scripts), then checks again.
-- Exit status: 0 healthy, 1 broken, 2 refused (bad flags, or --fix not confirmed: the plan is
-- printed and nothing is changed).
local common = require("azcmk.cli.common")
local json = require("azcmk.json")

local M = {}

local FLAGS = {
  { "fix", nil, false, "apply the safe repairs (shows them first; never deletes or purges)" },
  { "yes", "y", false, "with --fix: apply without asking (scripts)" },
  { "dry-run", nil, false, "with --fix: show the repairs and apply none (no confirmation asked)" },
  { "force", nil, false, "with --fix: repair a revoked registry anyway (re-opens its key path and removes "
    .. "the tag azcmk-revoked; `azcmk restore` is the ordinary way back)" },
}

local USAGE = "azcmk doctor -n REGISTRY [-g RG] [--fix [--yes | --dry-run] [--force]] [-o FORMAT] [--query JMESPATH]"

local LABEL = { fail = "FAIL", warn = "WARN", ok = "ok  ", skip = "skip" }

local function interactive()
  local ok = os.execute("[ -t 0 ] && [ -t 1 ]")
  return ok == true or ok == 0
end

function M.checks_text(report)
  local c = report.counts or {}
  local lines = { string.format("registry %s: %s (%d failed, %d warnings, %d ok, %d skipped)",
    tostring(report.registry.name), string.upper(report.status or (report.healthy and "healthy" or "broken")),
    c.fail or 0, c.warn or 0, c.ok
        or 0,
    c.skip or 0) }
  if report.caller then
    lines[#lines + 1] = "  checked as the caller " .. tostring(report.caller.object_id) .. " (tenant "
      .. tostring(report.caller.tenant_id) .. "), not as the registry's identity"
  end
  local skipped = {}
  for _, r in ipairs(report.checks) do
    if r.status == "skip" then
      skipped[#skipped + 1] = r.id
    else
      lines[#lines + 1] = string.format("%s %-21s %s", LABEL[r.status] or r.status, r.id,
        common.one_line(r.summary))
      if r.status ~= "ok" then
        for _, e in ipairs(r.evidence or {}) do lines[#lines + 1] = "       - " .. common.one_line(e) end
        if r.fix then lines[#lines + 1] = "       fix: " .. common.one_line(common.words(r.fix, "doctor")) end
      end
    end
  end
  if #skipped > 0 then lines[#lines + 1] = "skip " .. table.concat(skipped, ", ") .. " (not applicable)" end
  return table.concat(lines, "\n") .. "\n"
end

local function plan_text(plan)
  local lines = {}
  for i, p in ipairs(plan or {}) do
    lines[#lines + 1] = string.format("  %d. %s  [%s, for check %s]", i, p.description, p.repair,
        tostring(p.check))
  end
  return table.concat(lines, "\n") .. "\n"
end

local function json_value(report)
  local out = {}
  for k, v in pairs(report) do out[k] = v end
  local checks = {}
  for _, r in ipairs(report.checks) do
    checks[#checks + 1] = { id = r.id, title = r.title, status = r.status, summary = r.summary,
      evidence = setmetatable(r.evidence or {}, common.array_mt), fix = r.fix }
  end
  out.checks = setmetatable(checks, common.array_mt)
  if report.fix then
    local fx = {}
    for k, v in pairs(report.fix) do if k ~= "before" then fx[k] = v end end
    if report.fix.before then
      local b = {}
      for _, r in ipairs(report.fix.before) do b[#b + 1] = { id = r.id, status = r.status,
          summary = r.summary } end
      fx.before = setmetatable(b, common.array_mt)
    end
    fx.plan = setmetatable(fx.plan or {}, common.array_mt)
    out.fix = fx
  end
  return out
end

--- The readable report (no -o): checks, repairs, and what to run next.
function M.text(report, fx)
  local parts = {}
  local function out(...)
    for _, x in ipairs({ ... }) do parts[#parts + 1] = x end
  end
  if fx and fx.applied then
    local before = { checks = fx.before, registry = report.registry, counts = {}, healthy = false }
    for _, r in ipairs(fx.before) do before.counts[r.status] = (before.counts[r.status] or 0) + 1 end
    before.healthy = (before.counts.fail or 0) == 0
    out("before:\n", M.checks_text(before), "repairs:\n", plan_text(fx.plan))
    if #(fx.steps or {}) > 0 then out("done:\n", common.steps_text(fx), "\n") end
    if fx.error then
      out("repair ", tostring(fx.error.repair), " failed: ",
          common.one_line(fx.error.message), "\n")
    end
    out("after:\n")
  end
  out(M.checks_text(report))
  if fx and not fx.applied then
    if #fx.plan > 0 then
      out("doctor --fix would:\n", plan_text(fx.plan))
    end
    out("(", common.words(fx.reason or "nothing applied", "doctor"), ")\n")
  elseif not fx and report.revoked then
    out("revoked deliberately on ", tostring(report.revoked.at), " by ", tostring(report.revoked.by),
      ": run `azcmk restore -n ", tostring(report.registry.name), "` to undo\n")
  elseif not fx and (report.repairs or 0) > 0 then
    out("run `azcmk doctor -n ", tostring(report.registry.name), " --fix` to see the safe repairs (",
      tostring(report.repairs), ")\n")
  elseif not fx and not report.healthy then
    out("no safe repair for these failures: see each check's fix\n")
  end
  return table.concat(parts)
end

--- -o table: one row per check.
function M.rows(report)
  local rows = {}
  for i, r in ipairs(report.checks) do
    rows[i] = json.object({ Check = r.id, Status = r.status, Summary = common.one_line(r.summary) },
      { "Check", "Status", "Summary" })
  end
  return json.array(rows)
end

function M.run(argv, io_)
  io_ = io_ or { stdout = io.stdout, stderr = io.stderr }
  local opts, code = common.parse(argv, io_, "doctor", USAGE, FLAGS)
  if not opts then return code end
  if not opts.name then
    io_.stderr:write("azcmk doctor: -n/--name REGISTRY is required -- next: run 'azcmk doctor --help'\n")
    return common.EXIT_REFUSED
  end
  local o, err = common.base_options(opts, io_)
  if not o then return common.fail(io_, "doctor", err) end
  o.registry = opts.name
  o.fix = opts.fix == true
  o.yes = opts.yes == true
  o.dry_run, o.force = opts.dry_run, opts.force
  if o.fix and not o.yes and not o.dry_run and not opts.output and not opts.query and interactive() then
    o.confirm = function(plan)
      io_.stdout:write("doctor --fix would:\n", plan_text(plan), "apply? [y/N] ")
      io_.stdout:flush()
      local answer = io.read("l")
      return answer ~= nil and answer:lower():match("^y") ~= nil
    end
  end
  local report
  report, err = require("azcmk.playbook.doctor").doctor(o)
  if not report then return common.fail(io_, "doctor", err) end
  local fx = report.fix
  local ok, werr = common.emit(io_, opts, json_value(report), nil, function() return M.rows(report) end,
    M.text(report, fx))
  if not ok then return common.fail(io_, "doctor", werr) end
  if fx and fx.needs_confirmation then
    io_.stderr:write(o.confirm and "azcmk doctor: not confirmed; nothing was changed\n"
      or "azcmk doctor: --fix needs --yes to change anything in a non-interactive run; nothing was changed\n")
    return common.EXIT_REFUSED
  end
  return report.healthy and common.EXIT_OK or common.EXIT_FAILED
end

return M
