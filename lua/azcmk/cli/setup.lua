--- `azcmk setup`: create or reuse everything a CMK-encrypted registry needs (azcmk.playbook.setup).
local common = require("azcmk.cli.common")

local FLAGS = {
  { "location", "l", "REGION", "location for new resources (default: the resource group's)" },
  { "vault", nil, "VAULT", "Key Vault name (created with soft delete + purge protection when absent), or an "
    .. "existing vault's resource id, also of another subscription of the tenant (used, never created)" },
  { "key", nil, "NAME", "key name (default: <registry>-cmk; RSA, created when absent)" },
  { "identity", nil, "IDENTITY", "user-assigned identity: a name (created when absent; default "
    .. "<registry>-identity), or an existing one's resource id or client id" },
  { "access", nil, "MODEL", "policy or rbac: how a NEW vault grants access (default policy); "
    .. "an existing vault's model is followed" },
  { "versionless", nil, false, "use a versionless key id: the registry follows new key versions by itself" },
  { "enable-purge-protection", nil, false,
    "switch purge protection on for an existing vault (IRREVERSIBLE)" },
  { "key-type", nil, "KTY", "RSA (default) or RSA-HSM (EC keys are not supported by ACR)" },
  { "key-size", nil, "BITS", "2048 (default), 3072 or 4096" },
  { "sku", nil, "SKU", "registry SKU; only Premium supports customer-managed keys" },
  common.FORCE,
  common.DRY_RUN,
}

local M = {}

M.run = common.verb({
  verb = "setup",
  usage = "azcmk setup -g RG -n REGISTRY --vault NAME|VAULT_RESOURCE_ID [-l REGION] [--key KEY] "
    .. "[--identity NAME] "
    .. "[--access policy|rbac] [--versionless] [--enable-purge-protection] [--force] [--dry-run]",
  flags = FLAGS,
  build = function(opts, _, o)
    o.registry = opts.name
    o.location, o.vault, o.key, o.identity, o.access = opts.location, opts.vault, opts.key, opts.identity,
      opts.access
    o.versionless = opts.versionless
    o.enable_purge_protection = opts.enable_purge_protection
    o.key_type, o.sku = opts.key_type, opts.sku
    o.dry_run, o.force = opts.dry_run, opts.force
    o.key_size = opts.key_size and tonumber(opts.key_size) or nil
    if opts.key_size and not o.key_size then
      return nil, require("azcmk.errors").input("the key size must be a number", { code = "InvalidKeySize",
        param = "key_size", hint = "use `key_size` 2048, 3072 or 4096" })
    end
    return true
  end,
  call = function(o) return require("azcmk.playbook.setup").setup(o) end,
  render = function(r, opts, io_)
    local kvp = r.encryption and r.encryption.keyVaultProperties or {}
    return common.emit(io_, opts, r, nil, {
      { "registry", r.registry.name }, { "login server", r.registry.login_server },
      { "vault", r.vault.name }, { "access model", r.vault.access_model },
      { "identity", r.identity.name }, { "identity client id", r.identity.client_id },
      { "key id", r.key_id }, { "versioned key id", r.versioned_key_id }, { "auto rotation",
        kvp.keyRotationEnabled },
      { "changed", r.changed },
    }, (r.changed and "Set up" or "Nothing to change: everything exists") .. " - registry " .. r.registry.name
      .. " is encrypted with " .. tostring(r.key_id) .. "\n" .. common.steps_text(r) .. "\n"
      .. "  key in use: " .. tostring(r.versioned_key_id) .. (r.versionless
        and "\n  versionless key id: the registry adopts new key versions within an hour\n"
        or "\n  versioned key id: rotate manually with `azcmk rotate`\n"))
  end,
})

return M
