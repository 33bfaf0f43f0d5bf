--- `azcmk restore`: give the registry identity its access to the key back.
local common = require("azcmk.cli.common")

local M = {}

M.run = common.verb({
  verb = "restore",
  usage = "azcmk restore -n REGISTRY [-g RG] [--dry-run]",
  flags = { common.DRY_RUN },
  build = function(opts, _, o)
    o.registry, o.dry_run = opts.name, opts.dry_run
    return true
  end,
  call = function(o) return require("azcmk.playbook.access").restore(o) end,
  render = function(r, opts, io_)
    local text = r.changed and ("Restored: registry " .. r.registry.name .. " can use its key again\n"
      .. common.steps_text(r) .. "\n")
      or ("Nothing to restore: the identity of registry " .. r.registry.name .. " already has access\n")
    return common.emit(io_, opts, r, nil, { { "registry", r.registry.name }, { "vault", r.vault.name },
      { "model", r.vault.access_model }, { "changed", r.changed } }, text)
  end,
})

return M
