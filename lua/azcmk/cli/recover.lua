--- `azcmk recover`: recover a soft-deleted vault and/or key.
local common = require("azcmk.cli.common")

local FLAGS = {
  { "vault-name", nil, "NAME", "the vault (recovered first when it is soft-deleted)", aliases = { "vault" } },
  { "key", nil, "NAME", "the key to recover from soft delete" },
  common.DRY_RUN,
}

local M = {}

M.run = common.verb({
  verb = "recover",
  usage = "azcmk recover --vault-name NAME [--key NAME] [-g RG] [--dry-run]",
  flags = FLAGS,
  build = function(opts, _, o)
    if not opts.vault_name then
      return nil, require("azcmk.errors").input("no vault given", { code = "MissingArgument", param = "vault",
        hint = "pass `vault` (and `key` to recover a key)" })
    end
    o.vault, o.key, o.dry_run = opts.vault_name, opts.key, opts.dry_run
    return true
  end,
  call = function(o) return require("azcmk.playbook.recover").recover(o) end,
  render = function(r, opts, io_)
    return common.emit(io_, opts, r, nil, { { "vault", r.vault.name }, { "key", r.key and r.key.kid },
      { "changed", r.changed } }, (r.changed and "Recovered\n" or "Nothing to recover\n")
        .. common.steps_text(r) .. "\n")
  end,
})

return M
