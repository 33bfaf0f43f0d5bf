--- `azcmk revoke`: remove the registry identity's access to its key (needs --yes).
local common = require("azcmk.cli.common")

local FLAGS = {
  { "yes", "y", false, "really revoke: ALL registry data becomes inaccessible until `azcmk restore`" },
  common.DRY_RUN,
}

local M = {}

M.run = common.verb({
  verb = "revoke",
  usage = "azcmk revoke -n REGISTRY [-g RG] --yes | --dry-run",
  flags = FLAGS,
  build = function(opts, _, o)
    o.registry = opts.name
    o.yes = opts.yes == true
    o.dry_run = opts.dry_run
    return true
  end,
  call = function(o) return require("azcmk.playbook.access").revoke(o) end,
  on_error = function(err, opts, io_)
    if type(err) == "table" and err.code == "ConfirmationRequired" and err.plan then
      local lines = { "revoke would:" }
      for _, l in ipairs(common.plan_lines("revoke", err.plan)) do lines[#lines + 1] = l end
      lines[#lines + 1] = "  => all data of the registry becomes inaccessible until `azcmk restore`"
      common.emit(io_, opts, { applied = false, plan = setmetatable(err.plan, common.array_mt) }, nil,
        function() return common.plan_rows(err.plan) end, table.concat(lines, "\n") .. "\n")
    end
  end,
  render = function(r, opts, io_)
    local text = r.changed and ("Revoked: registry " .. r.registry.name
      .. " can no longer use its key; its data is "
      .. "inaccessible until `azcmk restore -n " .. r.registry.name .. "`\n" .. common.steps_text(r) .. "\n")
      or ("Nothing to revoke: the identity of registry " .. r.registry.name .. " has no access to the key\n")
    return common.emit(io_, opts, r, { applied = r.changed, plan = r.plan, registry = r.registry,
      identity = r.identity,
      vault = r.vault, steps = r.steps, warnings = r.warnings },
      { { "registry", r.registry.name }, { "vault", r.vault.name }, { "model", r.vault.access_model },
        { "revoked", r.changed } }, text)
  end,
})

return M
