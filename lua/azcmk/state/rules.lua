--- The judgements on a registry's CMK facts (azcmk.state), each in one place: `show`,
-- `audit`, the doctor's checks, the nginx status and the writing playbooks' refusals all ask
-- these functions, so they cannot disagree. Every function is pure: facts in, a verdict out.
local Registries = require("azcmk.client.registries")
local Vaults = require("azcmk.client.vaults")
local Keys = require("azcmk.client.keys")
local RoleAssignments = require("azcmk.client.role_assignments")
local ids = require("azcmk.client.ids")

local M = {}

-- A registry whose key id is versionless adopts a new key version within an hour of its creation.
M.PICKUP_SECONDS = 3600

-- ------------------------------------------------------------------ registry

--- Is the registry encrypted with a customer-managed key?
M.cmk_enabled = Registries.cmk_enabled

--- The data plane's answer to an anonymous GET /v2/: "serving" (401: asks for a login),
-- "denied" (403: the registry cannot use its key), "unexpected" (another status),
-- "unreachable" (no answer), or nil (not probed).
function M.data_plane(dp)
  if not dp then return nil end
  if not dp.status then return "unreachable" end
  if dp.status == 403 then return "denied" end
  if dp.ok then return "serving" end
  return "unexpected"
end

--- The content probe's verdict (facts of azcmk.state.content_probe): "usable" (a manifest
-- and a blob were read), "key_unusable" (403 DENIED: the registry cannot use its key),
-- "not_authorized" (the caller lacks a data-plane role), "empty" (no repository or tag to
-- read: the probe proved only that the registry answers), "unreachable" (no answer), "error"
-- (another failure), or nil (not probed).
function M.content(cp)
  if not cp then return nil end
  local err = cp.err
  if err then
    if err.code == "RegistryKeyUnusable" then return "key_unusable" end
    if err.code == "InsufficientScope" then return "not_authorized" end
    if err.kind == "network" or err.kind == "timeout" then return "unreachable" end
    return "error"
  end
  if cp.empty then return "empty" end
  return "usable"
end

--- The key version that wraps the registry's content, as the probe observed it: the version,
-- or "not observable on Azure" (Azure tells no version; only the emulator does), or nil (the
-- probe read nothing).
M.NOT_OBSERVABLE = "not observable on Azure"
function M.content_key_version(cp)
  if not cp then return nil end
  if cp.content_key then return Keys.version_of(cp.content_key) end
  if M.content(cp) == "usable" then return M.NOT_OBSERVABLE end
  return nil
end

--- One sentence on what the content probe proved (cp: its facts).
function M.content_summary(cp)
  local v = M.content(cp)
  if not v then return nil end
  local what = cp.repository and (cp.repository .. (cp.reference and (":" .. cp.reference) or "")) or nil
  local err = cp.err
  if v == "usable" then
    return "the registry read " .. what .. " (manifest" .. (cp.blob_digest and " and blob" or "")
      .. ") with its key, key version " .. M.content_key_version(cp)
  elseif v == "key_unusable" then
    return "the registry cannot use its key: its content can be neither read nor written"
  elseif v == "not_authorized" then
    return "the caller may not read the registry's content (it needs " .. tostring(err.role or "AcrPull")
      .. "): the probe proved only that the registry answers"
  elseif v == "empty" then
    return "the registry holds " .. (what and ("no tag in " .. what) or "no repository")
      .. ": the probe proved only that the registry answers"
  end
  return "the probe failed at the " .. tostring(cp.step) .. ": " .. tostring(err and (err.code or err.status))
    .. " " .. tostring(err and err.message or ""):match("^[^\r\n]*")
end

--- The content probe as the verbs report it: { verdict, usable, summary, repository, reference,
-- manifest_digest, blob_digest, key_id (versioned, when observable), key_version (or
-- NOT_OBSERVABLE), error = {kind, status, code, role, message, hint, request_id}? } or nil.
function M.content_view(cp)
  local v = M.content(cp)
  if not v then return nil end
  local err = cp.err
  return { verdict = v, usable = v == "usable", summary = M.content_summary(cp), repository = cp.repository,
    reference = cp.reference, manifest_digest = cp.manifest_digest, blob_digest = cp.blob_digest,
    key_id = cp.content_key, key_version = M.content_key_version(cp),
    error = err and { kind = err.kind, status = err.status, code = err.code, role = err.role,
      message = err.message, hint = err.hint, request_id = err.request_id } or nil }
end

-- ------------------------------------------------------------------ revocation

--- The tag `revoke` writes on the registry and `restore` removes: "<UTC time> by <who>", who
-- being the caller's object id (else its app id). Recorded on Azure itself, so every machine
-- and every script sees that the registry's key access was taken away on purpose.
M.REVOKED_TAG = "azcmk-revoked"

-- Azure's limit on a tag value
local TAG_VALUE_MAX = 256

--- The tag's value for a revocation at t (seconds since the epoch) by who.
function M.revocation_value(t, who)
  return (os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) .. " by " .. tostring(who or "unknown"))
    :sub(1, TAG_VALUE_MAX)
end

--- True when registry reg's last operation failed (provisioningState Failed): the same write
-- again brings it back to Succeeded.
function M.registry_failed(reg)
  return tostring(((reg or {}).properties or {}).provisioningState) == "Failed"
end

--- The revocation the registry records (the fact f.revoked_tag): { at, by, value } or nil.
function M.revocation(f)
  local v = f and f.revoked_tag
  if type(v) ~= "string" then return nil end
  local at, by = v:match("^(%S+) by (.+)$")
  return { at = at or v, by = by or "unknown", value = v }
end

--- May a verb re-open the key path (grant the identity access, attach an identity, re-apply
-- the key, repair)? nil when it may; else the revocation that stands in the way. force = true
-- (the caller means it) overrides.
function M.reopen_blocked(f, force)
  if force == true then return nil end
  return M.revocation(f)
end

-- ------------------------------------------------------------------ identity

--- The user-assigned identity as read by its id (f.uai): nil (not read or not attached),
-- "unknown" (could not be read), "deleted", "recreated" (same name, another client id than
-- the encryption names), or "ok".
function M.uai_state(f)
  local id = f.ident
  if not id or id.kind ~= "user" then return nil end
  if f.uai_err then return "unknown" end
  if not id.uai_id then return nil end
  if not f.uai then return "deleted" end
  if tostring(id.uai_client_id):lower() ~= tostring(id.client_id):lower() then return "recreated" end
  return "ok"
end

--- The health of the identity the encryption uses, from facts f (f.ident, f.uai):
-- "ok", "missing" (the system-assigned identity is not enabled), "detached" (the
-- user-assigned identity was removed from the registry), "deleted", "recreated" (same name,
-- new client id), "unknown" (the identity could not be read).
function M.identity(f)
  local id = f.ident
  if not id then return nil end
  if id.kind == "system" then return id.attached and "ok" or "missing" end
  if not id.attached then return "detached" end
  if not f.uai_checked then return "ok" end   -- not read: as far as the registry tells
  return M.uai_state(f) or "ok"
end

-- ------------------------------------------------------------------ vault

--- The vault's access model: "rbac" (Azure RBAC) or "policy" (access policies).
function M.access_model(vault)
  return Vaults.uses_rbac(vault) and "rbac" or "policy"
end

--- Is the vault's firewall on (default action Deny, or public network access disabled)?
function M.firewall_on(vault)
  local p = vault and vault.properties or {}
  local acls = p.networkAcls or {}
  return tostring(acls.defaultAction):lower() == "deny"
    or tostring(p.publicNetworkAccess):lower() == "disabled"
end

--- Does the firewall let trusted Microsoft services through (bypass AzureServices, Azure's default)?
function M.bypass_on(vault)
  local acls = (vault and vault.properties or {}).networkAcls or {}
  return acls.bypass == nil or tostring(acls.bypass):lower():find("azureservices", 1, true) ~= nil
end

--- Can a registry identity of kind ("user" | "system") reach the vault through its network
-- settings? nil when it can, else "user_identity_blocked" (only the system-assigned identity
-- passes a firewall as a trusted service) or "no_trusted_services" (the firewall lets no
-- trusted service through).
function M.network_blocks(vault, kind)
  if not M.firewall_on(vault) then return nil end
  if kind == "user" then return "user_identity_blocked" end
  if not M.bypass_on(vault) then return "no_trusted_services" end
  return nil
end

--- Does the vault have the purge protection a registry's key vault needs?
function M.purge_protected(vault)
  return (vault and vault.properties or {}).enablePurgeProtection == true
end

-- ------------------------------------------------------------------ access to the key

--- The role assignments (f.role_assignments, listed at the vault) of principal_id that give
-- the use of the key: a key-use role at the vault, above it, or on the key itself.
-- Returns a list of { name, scope, id }.
function M.key_roles(assignments, vault, principal_id, key_name)
  local out = {}
  if not vault or not principal_id then return out end
  local vid = tostring(vault.id):lower()
  for _, a in ipairs(assignments or {}) do
    local pr = a.properties or {}
    local sc = tostring(pr.scope or ""):lower():gsub("/+$", "")
    local at_or_above = sc == vid or vid:sub(1, #sc + 1) == sc .. "/"
    local at_key = key_name ~= nil and sc == ids.key_scope(vid, key_name:lower())
    local name = RoleAssignments.key_use_role(pr.roleDefinitionId)
    local mine = tostring(pr.principalId):lower() == tostring(principal_id):lower()
    if (at_or_above or at_key) and name and mine then
      out[#out + 1] = { name = name, scope = pr.scope, id = a.id }
    end
  end
  return out
end

--- Does principal_id have the use of the key, in the vault's own model? Access policies:
-- get, wrapKey and unwrapKey (or all); RBAC: a key-use role (key_roles). Returns true/false.
function M.has_access(vault, principal_id, assignments, key_name)
  if M.access_model(vault) == "policy" then return Vaults.policy_grants(vault, principal_id) end
  return #M.key_roles(assignments, vault, principal_id, key_name) > 0
end

-- ------------------------------------------------------------------ key

--- Azure Container Registry takes RSA and RSA-HSM keys only.
function M.supported_kty(kty)
  return tostring(kty):match("^RSA") ~= nil
end

--- Does the key bundle allow wrapKey and unwrapKey (no key_ops = every operation)?
function M.usable_ops(kb)
  local ops = (kb.key or {}).key_ops
  if type(ops) ~= "table" or #ops == 0 then return true end
  local have = {}
  for _, o in ipairs(ops) do have[tostring(o)] = true end
  return have.wrapKey == true and have.unwrapKey == true
end

--- The version the registry uses (from versionedKeyIdentifier, else the key id's own version).
function M.in_use_version(f)
  return (f.key_inuse and f.key_inuse.version) or (f.key and f.key.version)
end

--- The newest enabled version: the current one when enabled, else the first enabled one of
-- f.versions (newest first), else (versions not read) the current one. { kid, version, created }.
function M.newest_enabled(f)
  if f.newest and (f.newest.attributes or {}).enabled ~= false then
    return { kid = f.newest.kid, version = f.newest.version, created = f.newest.attributes.created }
  end
  if f.versions then
    for _, v in ipairs(f.versions) do
      if (v.attributes or {}).enabled ~= false then
        return { kid = v.kid, version = Keys.version_of(v.kid), created = (v.attributes or {}).created }
      end
    end
    return nil
  end
  if f.newest then
    return { kid = f.newest.kid, version = f.newest.version, created = f.newest.attributes.created }
  end
  return nil
end

--- Rotation drift: does the registry use the newest enabled key version? Returns
-- { state, in_use, newest = newest_enabled(f), age (s since the newest was created), versionless,
--   in_use_enabled } where state is
--   "current"   the registry is on the newest enabled version
--   "behind"    a newer version exists and the versioned key id keeps the registry where it is
--   "older"     the only enabled versions are older than the one in use (which is disabled)
--   "pending"   versionless key id, the newest version is younger than PICKUP_SECONDS
--   "stuck"     versionless key id, and the registry is more than PICKUP_SECONDS behind
--   "none"      no enabled version of the key
--   nil         the key was not read
-- now: the service's clock (f.service_now), else this machine's.
function M.drift(f, now)
  if not (f.key and (f.newest or f.versions)) then return nil end
  now = now or f.service_now or os.time()
  local out = { in_use = M.in_use_version(f), versionless = f.kvp and f.kvp.keyRotationEnabled == true }
  out.in_use_enabled = not (f.key_bundle and (f.key_bundle.attributes or {}).enabled == false)
  local ne = M.newest_enabled(f)
  out.newest = ne
  if not ne then out.state = "none"; return out end
  if ne.version == out.in_use then out.state = "current"; return out end
  -- the newest ENABLED version may be older than the one in use (that one disabled): nothing
  -- newer to move to
  local in_use_created
  for _, v in ipairs(f.versions or {}) do
    if Keys.version_of(v.kid) == out.in_use then in_use_created = (v.attributes or {}).created end
  end
  if ne.created and in_use_created and ne.created < in_use_created then out.state = "older"; return out end
  out.age = now - (ne.created or now)
  if not out.versionless then out.state = "behind"
  elseif out.age > M.PICKUP_SECONDS then out.state = "stuck"
  else out.state = "pending" end
  return out
end

-- A key version in use this old is due for rotation (Key Vault's rotation policies default to
-- a year); one that expires within EXPIRY_NOTICE_SECONDS is due whatever its age.
M.ROTATE_AFTER_SECONDS = 365 * 86400
M.EXPIRY_NOTICE_SECONDS = 30 * 86400

--- Is a rotation due? true when the registry is not on the newest enabled version (a rotation
-- is under way or was left half done), when the version in use is older than
-- ROTATE_AFTER_SECONDS, or expires within EXPIRY_NOTICE_SECONDS; false otherwise; nil when the
-- key was not read. now: the service's clock, else this machine's.
function M.rotation_due(f, now)
  local d = M.drift(f, now)
  if not d then return nil end
  if d.state ~= "current" then return true end
  now = now or f.service_now or os.time()
  local a = f.key_bundle and f.key_bundle.attributes or {}
  if a.created and now - a.created >= M.ROTATE_AFTER_SECONDS then return true end
  if a.exp and a.exp - now <= M.EXPIRY_NOTICE_SECONDS then return true end
  return false
end

return M
