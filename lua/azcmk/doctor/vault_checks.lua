--- Doctor checks, part 2 (docs/doctor.md #5-#7, #12): the vault (resolvable, deleted,
-- tenant), its network path, the caller's own read access, the registry identity's
-- permissions in the vault's access model (policy vs RBAC, and the mismatch), recoverability.
local Vaults = require("azcmk.client.vaults")
local ids = require("azcmk.client.ids")
local rules = require("azcmk.state.rules")
local registry_checks = require("azcmk.doctor.registry_checks")
local short, call = registry_checks.short, registry_checks.call

-- A failed access finding on a revoked registry: the revocation took the access on purpose,
-- so it is reported as such, with restore as the way back (its repair runs only with force).
local function or_revoked(f, r)
  local rec = rules.revocation(f)
  if not rec or r.status ~= "fail" then return r end
  r.status, r.revoked = "warn", true
  r.summary = registry_checks.revoked_text(rec, "no access to the key")
  r.fix = "end the revocation: " .. call("restore", f)
  return r
end

local M = {}

local function applies(f)
  return f.cmk and f.key ~= nil
end

local model = rules.access_model
local firewall_on = rules.firewall_on

-- Role assignments of the registry identity that give the use of the key.
local function key_roles(f)
  return rules.key_roles(f.role_assignments, f.vault, f.ident.principal_id, f.key.name)
end

M.list = {
  { id = "vault", title = "Key Vault resolvable (not deleted)",
    run = function(f)
      if not applies(f) then return { status = "skip", summary = "no CMK key", evidence = {} } end
      local ev = { "GET " .. ids.subscription_id(f.subscription or "...")
        .. "/resources?$filter=resourceType eq '" .. ids.TYPES.vault .. "' and "
        .. "name eq '" .. f.key.vault .. "' -> " .. (f.vault and "found" or "not found") }
      if f.vault_err then
        return { status = "fail", summary = "cannot read the vault", evidence = { short(f.vault_err) },
          fix = f.vault_err.hint or "give the caller Reader on the vault" }
      end
      if f.vault_subscription and f.vault_subscription:lower() ~= tostring(f.subscription):lower() then
        ev[#ev + 1] = "found in subscription " .. f.vault_subscription .. ", not the registry's ("
          .. tostring(f.subscription) .. ")"
      end
      if f.vault then
        ev[#ev + 1] = "GET " .. f.vault.id .. ": location " .. tostring(f.vault.location) .. ", sku "
          .. tostring(((f.vault.properties or {}).sku or {}).name) .. ", access model " .. model(f.vault)
        return { status = "ok", summary = "vault " .. f.key.vault .. " found", evidence = ev }
      end
      if f.deleted_vault then
        local dp = f.deleted_vault.properties or {}
        ev[#ev + 1] = "GET " .. ids.deleted_vaults_id(f.vault_subscription or f.subscription) .. ": "
          .. f.key.vault .. " deleted "
          .. tostring(dp.deletionDate) .. ", scheduled purge " .. tostring(dp.scheduledPurgeDate)
          .. ", purge protection " .. (dp.purgeProtectionEnabled == true and "on" or "off")
        return { status = "fail", summary = "the vault " .. f.key.vault .. " is deleted (recoverable until "
          .. tostring(dp.scheduledPurgeDate) .. ")", evidence = ev,
          fix = "recover the vault (PUT with createMode 'recover': `recover{vault = \"" .. f.key.vault
            .. "\"}`); role assignments at the vault are lost with the deletion and must be re-granted",
          repair = { id = "recover_vault" } }
      end
      return { status = "fail", summary = "the vault " .. f.key.vault
          .. " is neither in the subscription nor "
        .. "soft-deleted there", evidence = ev,
            fix = "a purged vault cannot come back; if the vault lives in "
          .. "another subscription, run the doctor with `subscription` of that one; else rotate to a key " ..
              "in an "
          .. "existing vault (" .. call("rotate", f, "key_id = \"<key id>\"") .. ")" }
    end },

  { id = "vault.tenant", title = "Vault tenant = the registry identity's tenant",
    run = function(f)
      if not (applies(f) and f.vault) then return { status = "skip", summary = "no vault", evidence = {} } end
      local vt = (f.vault.properties or {}).tenantId
      local it = f.ident and f.ident.tenant_id
      local ev = { "vault properties.tenantId " .. tostring(vt), "identity tenantId " .. tostring(it) }
      if vt and it and vt:lower() ~= it:lower() then
        return { status = "fail", summary = "the vault is in tenant " .. vt .. ", the registry identity in "
            .. it,
          evidence = ev, fix = "ACR has no cross-tenant CMK: move the key to a vault in tenant " .. it
            .. " and rotate to it (" .. call("rotate", f, "key_id = \"<key id>\"") .. ")" }
      end
      return { status = "ok", summary = "same tenant", evidence = ev }
    end },

  { id = "vault.network", title = "Vault network path for the registry identity",
    run = function(f)
      if not (applies(f) and f.vault) then return { status = "skip", summary = "no vault", evidence = {} } end
      local p = f.vault.properties or {}
      local acls = p.networkAcls or {}
      local ev = { "vault publicNetworkAccess " .. tostring(p.publicNetworkAccess or "Enabled")
        .. ", networkAcls.defaultAction " .. tostring(acls.defaultAction or "Allow") .. ", bypass "
        .. tostring(acls.bypass or "AzureServices"), "registry encryption identity: " .. f.ident.kind }
      if not firewall_on(f.vault) then
        return { status = "ok", summary = "no vault firewall", evidence = ev }
      end
      local blocks = rules.network_blocks(f.vault, f.ident.kind)
      if blocks == "user_identity_blocked" then
        return { status = "fail",
            summary = "vault firewall on with a user-assigned identity: the trusted-service "
          .. "bypass only works with the registry's system-assigned identity", evidence = ev,
          fix = "allow trusted Microsoft services (bypass AzureServices), enable the registry's system " ..
              "identity, "
            .. "grant it access and rotate with identity 'system'",
          repair = { id = "use_system_identity" } }
      end
      if blocks == "no_trusted_services" then
        return { status = "fail", summary = "vault firewall on without 'Allow trusted Microsoft services'",
          evidence = ev, fix = "set the vault's networkAcls.bypass to AzureServices",
          repair = { id = "enable_trusted_services" } }
      end
      return { status = "ok", summary = "firewall on, trusted services allowed, system identity",
          evidence = ev }
    end },

  { id = "caller.vault", title = "The caller can read the vault's keys (evidence for the key checks)",
    run = function(f)
      if not (applies(f) and f.vault) then return { status = "skip", summary = "no vault", evidence = {} } end
      local err = f.vault_probe_err or f.key_bundle_err
      local ev = { "GET " .. f.key.vault_url .. "/keys?maxresults=1 as the caller (oid "
        .. tostring(f.caller and f.caller.oid) .. ") -> " .. (err and short(err) or "200") }
      if not err or (err.status ~= 403 and err.status ~= 401) then
        return { status = "ok", summary = "the caller reads the vault's keys", evidence = ev }
      end
      local code = tostring(err.code)
      local lacks
      if code == "ForbiddenByFirewall"
          or tostring(err.message):find("not authorized and caller is not a trusted",
        1, true) then
        return { status = "warn",
            summary = "the vault firewall blocks the caller too; key checks are skipped",
          evidence = ev,
              fix = "run the doctor from an allowed network (or add your address to the vault's ipRules) "
            .. "to see the key checks" }
      elseif Vaults.uses_rbac(f.vault) then
        lacks = "the data action Microsoft.KeyVault/vaults/keys/read (role Key Vault Reader or Key Vault " ..
            "Crypto "
          .. "User at the vault)"
      else
        local perm = tostring(err.message):match("does not have keys (%a+) permission")
        lacks = "keys " .. (perm or "get/list") .. " permission in an access policy of the vault"
      end
      return { status = "warn", summary = "the caller cannot read the vault's keys: it lacks " .. lacks,
        evidence = ev, fix = "give the caller (object id " .. tostring(f.caller and f.caller.oid) .. ") "
            .. lacks
          .. " to let the doctor check the key; the registry's own access is checked separately" }
    end },

  { id = "access", title = "The registry identity has get, wrapKey, unwrapKey (policy) or the role (RBAC)",
    run = function(f)
      if not (applies(f) and f.vault) then return { status = "skip", summary = "no vault", evidence = {} } end
      local pid = f.ident.principal_id
      if not pid then return { status = "skip", summary = "no identity principal", evidence = {} } end
      local m = model(f.vault)
      local ev = { "vault access model: " .. (m == "rbac" and "Azure RBAC (enableRbacAuthorization true)"
        or "access policies"), "registry identity principal " .. pid .. " (read from the vault's "
        .. "configuration as the caller, not by acting as the identity)" }
      local ap = Vaults.policy_of(f.vault, pid)
      if ap then
        ev[#ev + 1] = "access policy for " .. pid .. ": keys " .. table.concat((ap.permissions or {}).keys
            or {}, ",")
      else
        ev[#ev + 1] = "no access policy entry for " .. pid
      end
      local roles = {}
      if f.role_assignments_err then
        ev[#ev + 1] = "role assignments: " .. short(f.role_assignments_err)
      else
        roles = key_roles(f)
        ev[#ev + 1] = "GET " .. ids.role_assignment_id(f.vault.id, false) .. "?$filter="
          .. "assignedTo('" .. pid .. "') -> " .. #(f.role_assignments or {}) .. " assignment(s)"
        for _, r in ipairs(roles) do ev[#ev + 1] = "role " .. r.name .. " at " .. tostring(r.scope) end
      end
      local grants_policy = Vaults.policy_grants(f.vault, pid)
      if m == "policy" then
        if grants_policy then return { status = "ok",
            summary = "access policy grants get, wrapKey, unwrapKey",
          evidence = ev } end
        local r = { status = "fail", evidence = ev, repair = { id = "grant" },
          fix = "add an access policy with keys get, wrapKey, unwrapKey for " .. pid
            .. " (PUT " .. ids.access_policy_path(f.vault.id, "add") .. "; " .. call("restore", f) .. ")" }
        if #roles > 0 then
          r.summary = "access-model mismatch: the vault uses access policies but the identity only has " ..
              "the RBAC "
            .. "role " .. roles[1].name .. ", which this vault ignores"
        elseif ap then
          r.summary = "the identity's access policy lacks some of get, wrapKey, unwrapKey"
        else
          r.summary = "the registry identity has no access policy on the vault (access removed)"
        end
        return or_revoked(f, r)
      end
      if f.role_assignments_err then
        return { status = "warn", summary = "cannot list the identity's role assignments", evidence = ev,
          fix = "give the caller Reader on the vault" }
      end
      if #roles > 0 then return { status = "ok", summary = "role " .. roles[1].name, evidence = ev } end
      local r = { status = "fail", evidence = ev, repair = { id = "grant" },
        fix = "assign the role Key Vault Crypto Service Encryption User " ..
            "(e147488a-f6f5-4113-8e2d-b22465e65bf6) "
          .. "to " .. pid .. " at the vault" }
      if ap then
        r.summary = "access-model mismatch: the vault uses Azure RBAC but the identity only has an " ..
            "access policy, "
          .. "which this vault ignores"
      else
        r.summary = "the registry identity has no role with keys read, wrap and unwrap on the vault " ..
            "(RBAC role "
          .. "missing)"
      end
      return or_revoked(f, r)
    end },
}

--- Recoverability (§5 #12) runs after the key checks.
M.recoverability = { id = "vault.recoverability", title = "Soft delete and purge protection",
  run = function(f)
    if not (applies(f) and f.vault) then return { status = "skip", summary = "no vault", evidence = {} } end
    local p = f.vault.properties or {}
    local ev = { "enableSoftDelete " .. tostring(p.enableSoftDelete) .. ", softDeleteRetentionInDays "
      .. string.format("%g", tonumber(p.softDeleteRetentionInDays) or 0) .. ", enablePurgeProtection "
          .. tostring(p.enablePurgeProtection) }
    if not rules.purge_protected(f.vault) then
      return { status = "warn",
          summary = "purge protection is off: a deleted key or vault can be purged for good",
        evidence = ev,
            fix = "enable purge protection (IRREVERSIBLE; az keyvault update --enable-purge-protection)" }
    end
    local days = tonumber(p.softDeleteRetentionInDays)
    return { status = "ok", summary = "soft delete " .. (days and string.format("%d", days) or "?")
        .. " days, purge "
      .. "protection on", evidence = ev }
  end }

return M
