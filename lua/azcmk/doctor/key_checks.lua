--- Doctor checks, part 3 (docs/doctor.md #8-#11, #13, #14): the key version in use
-- (exists, RSA, key_ops, enabled, nbf/exp), deletion, rotation drift (versionless ids and the
-- one-hour pickup), the rotation policy, throttle headroom and the known CMK limits.
local Keys = require("azcmk.client.keys")
local ids = require("azcmk.client.ids")
local rules = require("azcmk.state.rules")
local registry_checks = require("azcmk.doctor.registry_checks")
local short, call = registry_checks.short, registry_checks.call

local M = {}

local function now_of(f) return f.service_now or os.time() end

-- `rotate{registry = "NAME", ...}`: the rotation a fix proposes, as a playbook call
local function rotate_call(f, extra) return call("rotate", f, extra) end

local function when(t, now)
  if type(t) ~= "number" then return "?" end
  local d = now - t
  local ago = d >= 0
  d = math.abs(d)
  local s
  if d < 120 then s = string.format("%ds", d)
  elseif d < 7200 then s = string.format("%dmin", math.floor(d / 60))
  elseif d < 172800 then s = string.format("%dh", math.floor(d / 3600))
  else s = string.format("%dd", math.floor(d / 86400)) end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", t) .. " (" .. (ago and (s .. " ago") or ("in " .. s)) .. ")"
end
M.when = when

local newest_enabled = rules.newest_enabled
local in_use_version = rules.in_use_version

local function key_applies(f)
  return f.cmk and f.key and f.vault
end

-- ISO-8601 duration -> days (approximate: months 30, years 365); nil if it does not parse
local function days(iso)
  if type(iso) ~= "string" then return nil end
  local date, time = iso:upper():match("^P([%dYMWD]*)T?([%dHMS]*)$")
  if not date or (date == "" and time == "") then return nil end
  local total = 0
  local units = { Y = 365, M = 30, W = 7, D = 1 }
  for n, u in date:gmatch("(%d+)([YMWD])") do total = total + tonumber(n) * units[u] end
  local tunits = { H = 1 / 24, M = 1 / 1440, S = 1 / 86400 }
  for n, u in time:gmatch("(%d+)([HMS])") do total = total + tonumber(n) * tunits[u] end
  return total
end
M.days = days

M.list = {
  { id = "key", title = "Key usable: exists, RSA, wrapKey/unwrapKey, enabled, within nbf/exp",
    run = function(f)
      if not key_applies(f) then return { status = "skip", summary = "no key to check", evidence = {} } end
      if f.key_missing then return { status = "skip", summary = "the key is missing (see key.deleted)",
        evidence = { "GET " .. f.key.versionless .. " -> 404" } } end
      if f.key_bundle_err then
        return { status = "skip", summary = "the caller cannot read the key",
            evidence = { short(f.key_bundle_err) },
          fix = "see caller.vault" }
      end
      local kb = f.key_bundle
      local a = kb.attributes or {}
      local now = now_of(f)
      local ver = in_use_version(f) or Keys.version_of(kb.key and kb.key.kid)
      local ev = { "GET " .. f.key.versionless .. "/" .. tostring(ver) .. " (the version in use): kty "
        .. tostring((kb.key or {}).kty) .. ", key_ops " .. table.concat((kb.key or {}).key_ops or {}, ",")
        .. ", enabled " .. tostring(a.enabled) .. ", nbf " .. (a.nbf and when(a.nbf, now) or "-") .. ", exp "
        .. (a.exp and when(a.exp, now) or "-") }
      local nb = f.newest_bundle
      if nb and nb ~= kb then
        local na = nb.attributes or {}
        ev[#ev + 1] = "newest version " .. tostring(Keys.version_of((nb.key or {}).kid)) .. ": kty "
          .. tostring((nb.key or {}).kty) .. ", enabled " .. tostring(na.enabled) .. ", created "
          .. when(na.created, now)
      end
      local kty = tostring((kb.key or {}).kty)
      if not rules.supported_kty(kty) then
        return { status = "fail", summary = "the key is an " .. kty
            .. " key; ACR supports only RSA or RSA-HSM",
          evidence = ev,
              fix = "create an RSA key (or a new RSA version) and rotate to it ("
                .. rotate_call(f, "key = \"<name>\"") .. ")" }
      end
      if nb and nb ~= kb and f.kvp.keyRotationEnabled then
        local nkty = tostring((nb.key or {}).kty)
        if not rules.supported_kty(nkty) then
          return { status = "fail", summary = "the newest version of the key is an " .. nkty
              .. " key (EC); ACR "
            .. "supports only RSA or RSA-HSM and cannot adopt it", evidence = ev,
            fix = "create a new RSA version of the key (POST " .. f.key.versionless
                .. "/create with kty RSA) or "
              .. "rotate to an RSA key; never give a CMK key an EC version" }
        end
      end
      if not rules.usable_ops(kb) then
        return { status = "fail", summary = "the key's key_ops lack wrapKey or unwrapKey", evidence = ev,
          fix = "PATCH the key version's key_ops to include wrapKey and unwrapKey" }
      end
      if a.enabled == false then
        local ne = newest_enabled(f)
        local r = { status = "fail", summary = "the key version in use (" .. tostring(ver) .. ") is disabled",
          evidence = ev }
        if ne and ne.version ~= ver and f.kvp.keyRotationEnabled then
          r.fix = "re-run the rotation so the registry adopts the newest enabled version " .. ne.version
            .. " now (PATCH the registry with the same versionless key id)"
          r.repair = { id = "rerun_rotation" }
        else
          r.fix = "enable the key version (PATCH " .. f.key.versionless .. "/" .. tostring(ver)
            .. " attributes.enabled=true; az keyvault key set-attributes --enabled true), or rotate to " ..
                "another key"
        end
        return r
      end
      if a.exp and a.exp <= now then
        return { status = "warn",
            summary = "the key version in use expired: unwrap still works, wrap does not "
          .. "(new data keys and rotations fail)", evidence = ev,
          fix = "create a new key version (or extend exp) and rotate to it (" .. rotate_call(f) .. ")" }
      end
      if a.nbf and a.nbf > now then
        return { status = "warn",
            summary = "the key version in use is not valid yet (nbf): unwrap works, wrap "
          .. "does not", evidence = ev, fix = "clear nbf or wait until it is reached" }
      end
      return { status = "ok", summary = kty .. " key, enabled", evidence = ev }
    end },

  { id = "key.deleted", title = "Key not deleted",
    run = function(f)
      if not key_applies(f) then return { status = "skip", summary = "no key to check", evidence = {} } end
      if not f.key_missing then
        return { status = "ok", summary = "the key exists", evidence = { "GET " .. f.key.versionless
            .. " found" } }
      end
      local ev = { "GET " .. f.key.versionless .. " -> 404" }
      if f.deleted_key then
        local d = f.deleted_key
        ev[#ev + 1] = "GET " .. ids.deleted_key_url(f.key.vault_url, f.key.name) .. ": deletedDate "
          .. when(d.deletedDate, now_of(f)) .. ", scheduledPurgeDate " .. when(d.scheduledPurgeDate,
              now_of(f))
        return { status = "fail", summary = "the key was deleted (recoverable until "
          .. os.date("!%Y-%m-%d", d.scheduledPurgeDate or 0) .. ")", evidence = ev,
          fix = "recover it: POST " .. ids.deleted_key_url(f.key.vault_url, f.key.name, "recover")
            .. " (`recover{vault = \"" .. f.key.vault .. "\", key = \"" .. f.key.name
            .. "\"}`); the registry resumes once "
            .. "it can reach the key", repair = { id = "recover_key" } }
      end
      if f.deleted_key_err then ev[#ev + 1] = "deleted keys: " .. short(f.deleted_key_err) end
      return { status = "fail", summary = "the key is gone (not in the vault, not soft-deleted)",
          evidence = ev,
        fix = "a purged key cannot be recovered; restore a backup of the key into the vault, or the data " ..
            "is lost" }
    end },

  { id = "rotation", title = "Rotation drift: the registry uses the newest enabled key version",
    run = function(f)
      if not key_applies(f) or f.key_missing or f.key_bundle_err or not f.versions then
        return { status = "skip", summary = "no key versions to compare", evidence = {} }
      end
      local now = now_of(f)
      local d = rules.drift(f, now)
      local cur, ne = d.in_use, d.newest
      local ev = { "versionedKeyIdentifier (in use) " .. tostring(f.kvp.versionedKeyIdentifier),
        "keyIdentifier " .. tostring(f.kvp.keyIdentifier) .. " (" .. (f.kvp.keyRotationEnabled
          and "versionless: ACR follows new versions within an hour" or "versioned: manual rotation") .. ")",
        "GET " .. f.key.versionless .. "/versions -> " .. #f.versions .. " version(s)" }
      if f.kvp.lastKeyRotationTimestamp then
        ev[#ev + 1] = "lastKeyRotationTimestamp " .. tostring(f.kvp.lastKeyRotationTimestamp)
      end
      if d.state == "none" then
        return { status = "fail", summary = "no enabled version of the key", evidence = ev,
          fix = "enable a version of the key or create a new one" }
      end
      ev[#ev + 1] = "newest enabled version " .. ne.version .. ", created " .. when(ne.created, now)
      if d.state == "current" then
        return { status = "ok", summary = "on the newest enabled version", evidence = ev }
      end
      ev[#ev + 1] = "version in use " .. tostring(cur) .. " enabled " .. tostring(d.in_use_enabled)
      if d.state == "older" then
        return { status = "fail", summary = "the version in use (" .. tostring(cur) .. ") is disabled; "
          .. "only older versions are enabled", evidence = ev,
          fix = "re-enable version " .. tostring(cur) .. " (az keyvault key set-attributes --enabled true), "
            .. "or create a new version and rotate: " .. rotate_call(f) }
      end
      if d.state == "behind" then
        return { status = "warn",
            summary = "a newer key version exists; the versioned key id keeps the registry "
          .. "on " .. tostring(cur), evidence = ev,
          fix = "rotate: " .. rotate_call(f) .. " (or switch to the versionless id: "
            .. rotate_call(f, "versionless = true") .. ")" }
      end
      if d.state == "stuck" then
        return { status = "fail",
            summary = string.format("versionless key id, but the registry is %s behind the "
          .. "newest version (ACR adopts new versions within an hour): rotation is stuck", when(ne.created,
              now)
          :match("%((.-) ago%)") or "more than an hour"), evidence = ev,
          fix = "fix access and network first, keep the old version enabled, then re-run the rotation " ..
              "(PATCH the "
            .. "registry with the same keyIdentifier: " .. rotate_call(f, "new_version = false") .. ")",
          repair = { id = "rerun_rotation" } }
      end
      if not d.in_use_enabled then
        return { status = "fail", summary = "a new version was created " .. (when(ne.created,
            now):match("%((.-)%)")
          or "") .. " (less than an hour) and the old version in use is already disabled: the registry " ..
              "cannot "
          .. "use the old one and has not adopted the new one yet", evidence = ev,
          fix = "re-enable the old version until the registry has moved, or re-run the rotation now " ..
              "(PATCH with "
            .. "the same versionless keyIdentifier)", repair = { id = "rerun_rotation" } }
      end
      return { status = "warn",
          summary = "a new version is less than an hour old; the registry adopts it within "
        .. "the hour - keep the old version enabled until then", evidence = ev }
    end },

  { id = "rotation.policy", title = "Key rotation policy sane",
    run = function(f)
      if not key_applies(f) or f.key_missing then return { status = "skip", summary = "no key",
          evidence = {} } end
      if f.rotation_policy_err then
        return { status = "skip", summary = "cannot read the rotation policy",
          evidence = { short(f.rotation_policy_err) } }
      end
      local pol = f.rotation_policy or {}
      local ev, bad = {}, {}
      local attrs = pol.attributes or {}
      ev[#ev + 1] = "GET " .. f.key.versionless .. "/rotationpolicy: expiryTime "
          .. tostring(attrs.expiryTime or "-")
      local rotate
      for _, la in ipairs(pol.lifetimeActions or {}) do
        local t, tr = tostring((la.action or {}).type), la.trigger or {}
        ev[#ev + 1] = "action " .. t .. ": timeAfterCreate " .. tostring(tr.timeAfterCreate or "-")
          .. ", timeBeforeExpiry " .. tostring(tr.timeBeforeExpiry or "-")
        if t:lower() == "rotate" then rotate = tr end
      end
      local exp_days = days(attrs.expiryTime)
      if attrs.expiryTime and exp_days and exp_days < 28 then bad[#bad + 1] = "expiryTime below P28D" end
      if rotate then
        local a = days(rotate.timeAfterCreate)
        local b = days(rotate.timeBeforeExpiry)
        if a and a < 7 then bad[#bad + 1] = "rotation less than 7 days after creation" end
        if b and b < 7 then bad[#bad + 1] = "rotation less than 7 days before expiry" end
        if a and exp_days and a > exp_days then bad[#bad + 1] = "rotation after the version expires" end
      end
      if #bad > 0 then
        return { status = "warn", summary = "rotation policy: " .. table.concat(bad, "; "), evidence = ev,
          fix = "PUT a valid policy (e.g. rotate P90D after creation, expiry P2Y, notify P30D before " ..
              "expiry)" }
      end
      if not rotate then
        ev[#ev + 1] = "no Rotate action: versions are made by hand (rotate at least every 2 years)"
      end
      return { status = "ok", summary = rotate and "automatic rotation configured"
          or "valid (no automatic rotation)",
        evidence = ev }
    end },
}

M.tail = {
  { id = "throttle", title = "Throttle headroom (ARM and Key Vault)",
    run = function(f)
      local ev = { "x-ms-ratelimit-remaining-subscription-reads (lowest seen) " .. tostring(f.reads_left
          or "-"),
        "429 answers during the checks: " .. tostring(f.throttled or 0),
        "requests the pipeline had to retry (throttling or server errors): " .. tostring(f.retried or 0) }
      if (f.throttled or 0) > 0 or (f.retried or 0) > 0 or (f.reads_left and f.reads_left < 1000) then
        return { status = "warn", summary = "little throttle headroom", evidence = ev,
          fix = "slow down scripts; spread keys across vaults (Key Vault limits are per vault per 10 s)" }
      end
      return { status = "ok", summary = "headroom ok", evidence = ev }
    end },

  { id = "limits", title = "Known CMK limits",
    run = function(f)
      if not f.cmk then return { status = "skip", summary = "no CMK", evidence = {} } end
      local pol = (f.reg.properties or {}).policies or {}
      local trust = tostring((pol.trustPolicy or {}).status or "disabled")
      local ev = { "policies.trustPolicy.status " .. trust,
        "CMK registries keep ACR Task logs 24 h only and do not support content trust",
        "change CMK settings with PATCH of the single property, never a GET->PUT round trip (Azure Policy "
          .. "'Modify' remediation fails with BadRequest)" }
      if trust:lower() == "enabled" then
        return { status = "fail", summary = "content trust is on, which CMK registries do not support",
            evidence = ev,
          fix = "disable content trust (BlockedForEncryptionEnabledRegistry)" }
      end
      return { status = "ok", summary = "no known limit hit", evidence = ev }
    end },
}

return M
