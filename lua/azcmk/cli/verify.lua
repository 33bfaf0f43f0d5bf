--- `azcmk verify`: push a tiny test artifact to the registry, pull it back, compare, delete it;
-- exit 0 only when both directions work.
local common = require("azcmk.cli.common")

local FLAGS = {
  { "repository", nil, "NAME", "repository for the test artifact (default azcmk-verify)" },
  common.DRY_RUN,
}

local M = {}

local function direction(d, what)
  if d.ok then
    return what .. " ok" .. (d.existing and (" (read " .. tostring(d.repository) .. ":"
      .. tostring(d.reference)
      .. ", already in the registry)") or "")
  end
  if d.skipped then return what .. " not tried: " .. tostring(d.reason) end
  local e = d.error or {}
  return what .. " FAILED: " .. tostring(e.code or e.status) .. ": " .. common.one_line(e.message)
    .. (e.hint and ("\n    next: " .. common.one_line(common.words(e.hint, "verify"))) or "")
end

--- The report as text (`azcmk verify` without -o).
function M.text(r)
  local lines = { "registry " .. r.registry.name .. " (" .. r.registry.login_server .. "), test artifact "
    .. r.repository .. ":" .. r.tag }
  lines[#lines + 1] = "  " .. direction(r.push, "push")
  lines[#lines + 1] = "  " .. direction(r.pull, "pull")
  if r.cleanup and r.cleanup.needed then
    lines[#lines + 1] = "  cleanup " .. (r.cleanup.ok and "ok (test manifest deleted)" or "FAILED")
  end
  lines[#lines + 1] = "  content key:  " .. tostring(r.key_version or "unknown (nothing was read)")
    .. (r.key_matches == false and ("  (the registry declares " .. tostring(r.declared_key_version) .. ")")
      or "")
  for _, w in ipairs(r.warnings or {}) do lines[#lines + 1] = "  warning: " .. common.words(w, "verify") end
  lines[#lines + 1] = r.ok and "verified: the registry reads and writes its content with its key"
    or "NOT verified"
  return table.concat(lines, "\n") .. "\n"
end

local function render(r, opts, io_)
  return common.emit(io_, opts, r, nil, { { "registry", r.registry.name }, { "ok", r.ok },
    { "push", r.push.ok }, { "pull", r.pull.ok }, { "cleanup", r.cleanup and r.cleanup.ok },
    { "keyVersion", r.key_version } }, M.text(r))
end

M.run = common.verb({
  verb = "verify",
  usage = "azcmk verify -n REGISTRY [-g RG] [--repository NAME] [--dry-run]",
  flags = FLAGS,
  about = "Pushes a tiny test artifact (a config blob, a layer blob and an OCI manifest tagged "
    .. "azcmk-verify-<random>), pulls it back and compares digests and bytes, then deletes the manifest "
    .. "(also on failure). Exit 0 only when both directions work. Needs AcrPush on the registry (and "
    .. "AcrDelete, Contributor or Owner for the cleanup).",
  build = function(opts, _, o)
    o.registry = opts.name
    o.repository = opts.repository
    o.dry_run = opts.dry_run
    return true
  end,
  call = function(o) return require("azcmk.playbook.verify").verify(o) end,
  -- a failed verification still reports each direction (stdout), then the error line (stderr)
  on_error = function(err, opts, io_)
    if type(err) == "table" and err.verification then render(err.verification, opts, io_) end
  end,
  render = render,
})

return M
