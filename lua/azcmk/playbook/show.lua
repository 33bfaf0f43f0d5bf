--- show: a registry's encryption as `az acr encryption show` prints it (properties.encryption),
-- plus what azcmk can tell beside it: the key version really in use, whether the registry
-- follows new versions by itself (versionless key id), the newest version in the vault, and
-- the identity behind `keyVaultProperties.identity`. With probe = true, also the data plane's
-- answer (https://{registry}.azurecr.io/v2/: 401 = serving, 403 = cannot use its key).
local common = require("azcmk.playbook.common")
local Registries = require("azcmk.client.registries")
local Keys = require("azcmk.client.keys")
local check = common.check

local M = {}

-- Key Vault's own automatic rotation (a rotation policy making new versions), summarised.
local function rotation_of(pol)
  local rot = { expiry = pol.attributes and pol.attributes.expiryTime }
  for _, a in ipairs(pol.lifetimeActions or {}) do
    local t = tostring(a.action and a.action.type or ""):lower()
    if t == "rotate" then
      rot.rotate_after = a.trigger and a.trigger.timeAfterCreate
      rot.rotate_before_expiry = a.trigger and a.trigger.timeBeforeExpiry
    elseif t == "notify" then
      rot.notify_before_expiry = a.trigger and a.trigger.timeBeforeExpiry
    end
  end
  rot.enabled = (rot.rotate_after or rot.rotate_before_expiry) ~= nil
  return rot
end

--- show{registry (or name), resource_group?, subscription?, pipeline?, probe?} -> result:
-- { registry = {name, id, resource_group, login_server, sku}, encryption (verbatim),
--   cmk (bool), key_id, key_version_in_use, versioned_key_id, auto_rotation, newest_key_version,
--   newest_key_id, up_to_date, identity = {kind, client_id, principal_id, id}, data_plane?,
--   key_rotation_policy = {enabled, rotate_after, rotate_before_expiry, notify_before_expiry,
--   expiry}? (Key Vault's automatic rotation of the key),
--   warnings } or nil, err.
function M.show(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", probe = "boolean?" },
    "azcmk.playbook.show")
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local reg, rg = ctx:find_registry(o.registry or o.name, o.resource_group)
  if not reg then return nil, rg end
  local props = reg.properties or {}
  local enc = props.encryption or { status = "disabled" }
  local out = {
    registry = { name = reg.name, id = reg.id, resource_group = rg, login_server = props.loginServer,
      sku = reg.sku and reg.sku.name },
    encryption = enc, cmk = Registries.cmk_enabled(reg), warnings = ctx.warnings,
  }
  if out.cmk then
    local kvp = enc.keyVaultProperties
    out.key_id = kvp.keyIdentifier
    out.versioned_key_id = kvp.versionedKeyIdentifier
    out.key_version_in_use = Keys.version_of(kvp.versionedKeyIdentifier or kvp.keyIdentifier)
    out.auto_rotation = kvp.keyRotationEnabled == true
    out.last_rotation = kvp.lastKeyRotationTimestamp
    local ident = tostring(kvp.identity or "")
    if ident:lower() == "system" then
      out.identity = { kind = "system", principal_id = reg.identity and reg.identity.principalId }
    else
      local id, v = Registries.user_identity(reg, ident)
      out.identity = { kind = "user", client_id = ident, id = id, principal_id = v and v.principalId }
      if not id then
        ctx:warn("the encryption identity " .. ident .. " is not attached to the registry; re-attach it with "
          .. "`azcmk identity assign`")
      end
    end
    local _, parsed = ctx:cmk_of(reg, "show")
    if type(parsed) == "table" and parsed.vault_url then
      local latest, kerr = ctx.keys:get({ vault_url = parsed.vault_url, name = parsed.name })
      if latest and latest.key then
        out.newest_key_id = latest.key.kid
        out.newest_key_version = Keys.version_of(latest.key.kid)
        out.up_to_date = out.newest_key_version == out.key_version_in_use
        if not out.up_to_date and out.auto_rotation then
          ctx:warn("a newer key version exists; a registry with a versionless key id adopts it within an "
            .. "hour (rotate now with `azcmk rotate --key-encryption-key " .. parsed.versionless .. "`)")
        end
        local pol = ctx.keys:get_rotation_policy({ vault_url = parsed.vault_url, name = parsed.name })
        if type(pol) == "table" then
          local rot = rotation_of(pol)
          out.key_rotation_policy = rot
          if rot.enabled and not out.auto_rotation then
            ctx:warn("Key Vault rotates this key automatically, but the registry's key id is versioned, "
              .. "so the registry stays on its version; use a versionless key id "
              .. "(azcmk rotate --versionless)")
          end
        end
      elseif kerr then
        ctx:warn("cannot read the key in the vault (" .. tostring(kerr.code or kerr.status) .. "): "
          .. tostring(kerr.message):match("^[^\r\n]*"))
      else
        ctx:warn("the key " .. parsed.versionless .. " was not found in the vault (deleted? `azcmk recover`)")
      end
    end
  end
  if o.probe and props.loginServer then
    local pr, perr = ctx.registries:probe({ login_server = props.loginServer })
    if pr then out.data_plane = pr
    else out.data_plane = { ok = false, error = tostring(perr) } end
  end
  return out
end

setmetatable(M, { __call = function(_, o) return M.show(o) end })
return M
