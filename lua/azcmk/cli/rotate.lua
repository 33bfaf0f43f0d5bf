--- `azcmk rotate`: new key version, another key or a given key id; user-assigned or [system] identity.
local common = require("azcmk.cli.common")

local FLAGS = {
  { "key-encryption-key", nil, "KEY_ID", "rotate to this key id (versioned or versionless)" },
  { "key", nil, "NAME",
    "rotate to this key (created when absent; default: a new version of the current key)" },
  { "vault", nil, "NAME", "the vault of --key (default: the current key's vault)" },
  { "identity", nil, "IDENTITY", "name, resource id, client id or [system] (default: the current one)" },
  { "versionless", nil, false, "use a versionless key id (auto rotation)" },
  { "versioned", nil, false, "use a versioned key id (manual rotation)" },
  { "keep-version", nil, false,
    "no new key version: re-apply the key and identity (after a firewall change)" },
  { "new-version", nil, false, "with --key: also make a new version of that key" },
  { "disable", nil, false, "(refused: CMK cannot be disabled once enabled)" },
  common.FORCE,
  common.DRY_RUN,
}

local M = {}

M.run = common.verb({
  verb = "rotate",
  usage = "azcmk rotate -n REGISTRY [-g RG] [--key-encryption-key KEY_ID | --key NAME [--vault NAME]] "
    .. "[--identity NAME|ID|CLIENT_ID|[system]] [--versionless|--versioned] [--force] [--dry-run]",
  flags = FLAGS,
  build = function(opts, _, o)
    o.registry = opts.name
    o.key_id, o.key, o.vault, o.identity = opts.key_encryption_key, opts.key, opts.vault, opts.identity
    if opts.versionless and opts.versioned then
      return nil, require("azcmk.errors").input("`versionless = true` and `versionless = false` exclude each "
        .. "other", { code = "ConflictingArguments", param = "versionless",
          hint = "pass one of them (or neither to keep the current style)" })
    end
    if opts.versionless then o.versionless = true elseif opts.versioned then o.versionless = false end
    o.disable = opts.disable
    o.dry_run, o.force = opts.dry_run, opts.force
    if opts.keep_version then o.new_version = false elseif opts.new_version then o.new_version = true end
    return true
  end,
  call = function(o) return require("azcmk.playbook.rotate").rotate(o) end,
  render = function(r, opts, io_)
    return common.emit(io_, opts, r, nil, {
      { "registry", r.registry.name }, { "keyIdentifier", r.key_id }, { "versionedKeyIdentifier",
        r.versioned_key_id },
      { "keyVersionInUse", r.key_version_in_use }, { "identity", r.identity }, { "verified", r.verified },
    }, "Rotated registry " .. r.registry.name .. "\n" .. common.steps_text(r) .. "\n"
      .. "  key id:          " .. tostring(r.key_id) .. "\n"
      .. "  version in use:  " .. tostring(r.key_version_in_use) .. " (verified)\n"
      .. "  identity:        " .. tostring(r.identity) .. "\n")
  end,
})

return M
