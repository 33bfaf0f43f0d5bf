--- Doctor checks, part 1 (docs/doctor.md #0-#4): inputs, the caller's tokens and tenant,
-- the registry (exists, Premium, CMK on, data plane), the identity binding and the
-- user-assigned identity itself. Each check: run(f) -> { status = ok|warn|fail|skip,
-- summary, evidence = {...}, fix?, repair? = { id, ... } }.
local rules = require("azcmk.state.rules")

local M = {}

-- `verb{registry = "NAME", ...}`: what a fix proposes to run, as a playbook call
local function call(verb, f, extra)
  return "`" .. verb .. "{registry = \"" .. tostring(f.reg and f.reg.name or f.input.registry) .. "\""
    .. (extra and (", " .. extra) or "") .. "}`"
end
M.call = call

local function short(err)
  if type(err) ~= "table" then return tostring(err) end
  return string.format("%s%s%s", err.status and (err.status .. " ") or "", err.code and (err.code .. ": ")
      or "",
    (tostring(err.message or ""):match("^[^\r\n]*") or ""):sub(1, 300))
end
M.short = short

--- The permission an ARM 403 names ("... perform action 'X' over scope ...").
function M.missing_action(err)
  return type(err) == "table" and tostring(err.message or ""):match("perform action '([^']+)'") or nil
end

--- "<what>: revoked deliberately on <at> by <by> (run restore to undo)": how the checks name a
-- finding that a recorded revocation explains (rec: azcmk.state.rules.revocation).
function M.revoked_text(rec, what)
  return what .. ": revoked deliberately on " .. rec.at .. " by " .. rec.by .. " (run restore to undo)"
end

M.list = {
  { id = "inputs", title = "Inputs: registry name, key id shape and vault suffix for the cloud",
    run = function(f)
      if f.input.registry_err then
        return { status = "fail", summary = "the registry name is invalid",
          evidence = { short(f.input.registry_err) }, fix = f.input.registry_err.hint }
      end
      if f.input.rg_err then
        return { status = "fail", summary = "the resource group name is invalid",
          evidence = { short(f.input.rg_err) }, fix = f.input.rg_err.hint }
      end
      if f.key_err then
        return { status = "fail", summary = "the registry's key id does not parse for the " .. f.cloud
            .. " cloud",
          evidence = { "keyIdentifier = " .. tostring(f.kvp.keyIdentifier), short(f.key_err) },
          fix = f.key_err.hint
              or ("rotate the registry to a valid key id (" .. call("rotate", f, "key_id = \"<key id>\"")
                .. ")") }
      end
      local ev = { "registry name '" .. tostring(f.input.registry) .. "' is valid", "cloud " .. f.cloud }
      if f.key then
        ev[#ev + 1] = "key id " .. f.key.id .. ": vault '" .. f.key.vault .. "', key '" .. f.key.name .. "', "
          .. (f.key.version and ("version " .. f.key.version) or "versionless")
        if f.key.version and #f.key.version ~= 32 then
          return { status = "fail", summary = "the key version is not 32 hexadecimal characters",
            evidence = ev, fix = "rotate to the key's real version id (32 hex) or to its versionless id" }
        end
      end
      return { status = "ok", summary = "inputs parse", evidence = ev }
    end },

  { id = "caller", title = "Caller: ARM and Key Vault tokens, token tenant = vault tenant",
    run = function(f)
      if f.arm_token_err then
        return { status = "fail", summary = "no ARM token for the caller",
          evidence = { short(f.arm_token_err) },
          fix = f.arm_token_err.hint
              or "fix the credential (AZURE_CLIENT_ID/SECRET, az login, managed identity)" }
      end
      local c = f.caller or {}
      local ev = { "caller object id " .. tostring(c.oid) .. ", app id " .. tostring(c.appid)
        .. ", token tenant (tid) " .. tostring(c.tid),
        "the doctor runs as this caller, not as the registry's identity" }
      if f.challenge_tenant then
        ev[#ev + 1] = "Key Vault 401 challenge (GET " .. f.key.vault_url
            .. "/keys?maxresults=1) names tenant "
          .. f.challenge_tenant
      end
      local vt = f.vault and f.vault.properties and f.vault.properties.tenantId
      if vt then ev[#ev + 1] = "vault " .. f.key.vault .. " properties.tenantId = " .. vt end
      if vt and c.tid and vt:lower() ~= c.tid:lower() then
        return { status = "fail", summary = "the caller's token tenant " .. c.tid
            .. " differs from the vault's tenant "
          .. vt, evidence = ev,
          fix = "the registry's identity lives in tenant " .. tostring(f.ident and f.ident.tenant_id or c.tid)
            .. "; ACR has no cross-tenant CMK: move the key to a vault of that tenant and rotate to it "
            .. "(" .. call("rotate", f, "key_id = \"<key id>\"")
            .. "), or run the doctor with a credential of tenant "
                .. vt }
      end
      if f.challenge_tenant and c.tid and f.challenge_tenant:lower() ~= c.tid:lower() then
        return { status = "fail", summary = "Key Vault asks for tokens of tenant " .. f.challenge_tenant
          .. ", the caller is in " .. c.tid, evidence = ev,
          fix = "use a credential of tenant " .. f.challenge_tenant
              .. " (or allow-list it for the credential)" }
      end
      return { status = "ok", summary = "tokens obtained, tenant " .. tostring(c.tid), evidence = ev }
    end },

  { id = "registry", title = "Registry exists, Premium, encryption with a customer-managed key",
    run = function(f)
      if f.reg_err then
        local action = M.missing_action(f.reg_err)
        return { status = "fail", summary = action and ("the caller may not read the registry: it lacks "
          .. action) or "cannot read the registry", evidence = { short(f.reg_err),
          "caller object id " .. tostring(f.caller and f.caller.oid) },
          fix = action and ("give the caller a role with " .. action .. " (e.g. Reader) on the registry, its "
            .. "resource group or the subscription") or f.reg_err.hint }
      end
      if not f.reg then
        if not f.caller then return { status = "skip", summary = "no token", evidence = {} } end
        return { status = "fail", summary = "registry '" .. tostring(f.input.registry) .. "' not found",
          evidence = { "no registry of that name " .. (f.input.resource_group and ("in resource group "
            .. f.input.resource_group) or "in the subscription") },
          fix = "check `registry`, `resource_group` and `subscription`" }
      end
      local sku = f.reg.sku and f.reg.sku.name
      local enc = (f.reg.properties or {}).encryption or {}
      local ev = { "GET " .. f.reg.id .. ": sku " .. tostring(sku) .. ", encryption.status "
        .. tostring(enc.status) }
      if not f.cmk then
        return { status = "fail", summary = "the registry is not encrypted with a customer-managed key",
          evidence = ev, fix = "CMK can only be enabled when a registry is created (Azure/acr#416): create a "
            .. "new Premium registry with CMK (`setup{}`) and import the images (az acr import)" }
      end
      ev[#ev + 1] = "keyIdentifier " .. tostring(f.kvp.keyIdentifier)
      ev[#ev + 1] = "versionedKeyIdentifier " .. tostring(f.kvp.versionedKeyIdentifier)
      ev[#ev + 1] = "identity " .. tostring(f.kvp.identity) .. ", keyRotationEnabled "
        .. tostring(f.kvp.keyRotationEnabled)
      local rec = rules.revocation(f)
      if rec then
        ev[#ev + 1] = "tag " .. rules.REVOKED_TAG .. " = " .. rec.value .. " (revoked deliberately)"
      end
      if sku ~= "Premium" then
        return { status = "fail", summary = "a CMK registry must be Premium (sku " .. tostring(sku) .. ")",
          evidence = ev, fix = "switch the registry back to Premium" }
      end
      if rules.registry_failed(f.reg) then
        ev[#ev + 1] = "provisioningState Failed"
        return { status = "fail", summary = "the registry's last operation failed (provisioningState Failed)",
          evidence = ev, fix = "run the command that last changed it again (restore and revoke send a Failed "
            .. "registry its tags again), or send the registry its tags unchanged (az acr update)" }
      end
      return { status = "ok", summary = "Premium, CMK enabled", evidence = ev }
    end },

  { id = "registry.data_plane",
    title = "Registry data plane serves (401 = asks for login, 403 = key unusable) and reads its content",
    run = function(f)
      local dp = f.data_plane
      if not dp then return { status = "skip", summary = "no login server to probe", evidence = {} } end
      local ev = { "anonymous GET https://" .. tostring(f.login_server) .. "/v2/ -> " .. tostring(dp.status)
        .. (dp.code and (" " .. dp.code) or "") .. (dp.message and (": " .. tostring(dp.message):sub(1,
            240)) or "") }
      -- the content probe, as the caller: a manifest and a blob read back (state.content_probe)
      local ct = rules.content_view(f.content)
      if ct then
        ev[#ev + 1] = "content probe as the caller (" .. ct.verdict .. "): " .. ct.summary
        if ct.error then ev[#ev + 1] = "  " .. short(ct.error) end
      end
      local verdict = rules.data_plane(dp)
      local denied = verdict == "denied" or (ct and ct.verdict == "key_unusable")
      local rec = rules.revocation(f)
      if denied and rec then
        return { status = "warn", revoked = true,
          summary = M.revoked_text(rec, "the registry refuses to serve"), evidence = ev,
          fix = "end the revocation: " .. call("restore", f) }
      end
      if denied then
        return { status = "fail", summary = "the registry refuses to serve: it cannot use its key",
          evidence = ev, fix = "see the other failed checks for why (identity, access, network, key)" }
      end
      if verdict ~= "serving" then
        return { status = "warn", summary = "unexpected data-plane answer " .. tostring(dp.status),
          evidence = ev }
      end
      if not ct then return { status = "ok", summary = "serving (asks for login)", evidence = ev } end
      if ct.verdict == "usable" or ct.verdict == "empty" then
        return { status = "ok", summary = "serving: " .. ct.summary, evidence = ev }
      end
      -- the caller could not read: the registry answers, whether it can use its key is not proven
      return { status = "warn", summary = "serving (asks for login), but " .. ct.summary, evidence = ev,
        fix = ct.error and ct.error.hint }
    end },

  { id = "identity.binding", title = "The encryption identity is attached to the registry",
    run = function(f)
      if not f.cmk then return { status = "skip", summary = "no CMK", evidence = {} } end
      local id = f.ident
      local ri = f.reg.identity or {}
      local ev = { "keyVaultProperties.identity = " .. tostring(id.value),
        "registry identity.type = " .. tostring(ri.type) }
      for k, v in pairs(ri.userAssignedIdentities or {}) do
        ev[#ev + 1] = "attached user-assigned identity " .. k .. " (clientId " .. tostring(v.clientId) .. ")"
      end
      local health = rules.identity(f)
      if id.kind == "system" then
        if health ~= "missing" then
          ev[#ev + 1] = "system-assigned principalId " .. tostring(id.principal_id)
          return { status = "ok", summary = "system-assigned identity enabled", evidence = ev }
        end
        return { status = "fail", summary = "the encryption uses the system identity, which is not enabled",
          evidence = ev, fix = "enable the registry's system-assigned identity and give it access to the key "
            .. "(" .. call("identity_assign", f, "identity = \"[system]\"") .. ", then "
            .. call("doctor", f, "fix = true") .. ")",
          repair = { id = "use_system_identity" } }
      end
      if health ~= "detached" then
        return { status = "ok", summary = "user-assigned identity " .. tostring(id.uai_id):match("[^/]+$")
          .. " attached", evidence = ev }
      end
      local r = { status = "fail", summary = "the encryption identity " .. tostring(id.value)
        .. " is not attached to the registry (removed)", evidence = ev }
      if f.uai then
        ev[#ev + 1] = "found in the subscription: " .. f.uai.id .. " (clientId "
            .. tostring(id.uai_client_id) .. ")"
        r.fix = "re-assign the identity (PATCH identity: " .. call("identity_assign", f, "identity = \""
          .. f.uai.id .. "\"") .. ")"
        r.repair = { id = "reassign_identity", uai_id = f.uai.id }
      else
        ev[#ev + 1] = "no user-assigned identity with that client id in subscription"
        r.fix = "the identity is gone: switch the registry to its system-assigned identity (enable it, " ..
            "grant it, "
          .. "rotate with identity 'system')"
        r.repair = { id = "use_system_identity" }
      end
      return r
    end },

  { id = "identity.exists", title = "The user-assigned identity still exists and its clientId matches",
    run = function(f)
      if not f.cmk or f.ident.kind ~= "user" then
        return { status = "skip", summary = f.cmk and "system-assigned identity" or "no CMK", evidence = {} }
      end
      local id = f.ident
      if f.uai_err then
        return { status = "warn", summary = "cannot read the identity", evidence = { short(f.uai_err) },
          fix = "give the caller Reader on the identity" }
      end
      if not id.uai_id then return { status = "skip", summary = "identity not attached", evidence = {} } end
      local ev = { "GET " .. id.uai_id .. " -> " .. (f.uai and "200" or "404") }
      local state = rules.uai_state(f)
      if state == "deleted" then
        ev[#ev + 1] = "the registry keeps working on the identity's last credential for about 3 months, then "
          .. "its data becomes inaccessible (403 'The identity associated with the registry is inactive')"
        return { status = "fail", summary = "the user-assigned identity was deleted", evidence = ev,
          fix = "a deleted identity cannot come back (a new one gets new ids): switch the registry to its "
            .. "system-assigned identity (enable it, grant it, rotate with identity 'system') or rotate to "
            .. "another user-assigned identity (" .. call("rotate", f, "identity = \"<name>\"") .. ")",
          repair = { id = "use_system_identity" } }
      end
      ev[#ev + 1] = "identity clientId " .. tostring(id.uai_client_id) .. ", principalId "
        .. tostring(id.uai_principal_id)
      if state == "recreated" then
        return { status = "fail", summary = "the identity was re-created: its clientId no longer matches "
          .. id.client_id, evidence = ev, fix = "rotate the registry to the system-assigned identity or to "
            .. "the new identity (" .. call("rotate", f, "identity = \"" .. id.uai_id .. "\"") .. ")",
          repair = { id = "use_system_identity" } }
      end
      return { status = "ok", summary = "exists, clientId matches", evidence = ev }
    end },
}

return M
