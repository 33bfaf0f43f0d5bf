--- show: a registry's encryption as `az acr encryption show` prints it (properties.encryption),
-- plus what azcmk can tell beside it: the key version really in use, whether the registry
-- follows new versions by itself (versionless key id), the newest version in the vault, and
-- the identity behind `keyVaultProperties.identity`. With probe = true, also the data plane's
-- answers: the anonymous https://{registry}.azurecr.io/v2/ (401 = serving, 403 = cannot use
-- its key), and the content probe as the caller (a manifest and a blob read back: whether the
-- registry can really use its key, and which key version wraps its content).
local common = require("azcmk.playbook.common")
local options = require("azcmk.options")
local Keys = require("azcmk.client.keys")
local state = require("azcmk.state")
local rules = require("azcmk.state.rules")
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

--- show{registry (or name), resource_group?, subscription?, pipeline?, probe?, content?} -> result
-- (probe = true reads content too, unless content = false: only the anonymous GET /v2/):
-- { registry = {name, id, resource_group, login_server, sku}, encryption (verbatim),
--   cmk (bool), state ("active", or "revoked": the revocation tag), revoked = {at, by}?, key_id,
--   key_version_in_use, versioned_key_id, auto_rotation, newest_key_version,
--   newest_key_id, up_to_date, identity = {kind, client_id, principal_id, id}, data_plane?,
--   content? (state.rules.content_view: verdict usable | key_unusable | not_authorized | empty |
--   unreachable | error, summary, repository, reference, key_version, ...),
--   key_rotation_policy = {enabled, rotate_after, rotate_before_expiry, notify_before_expiry,
--   expiry}? (Key Vault's automatic rotation of the key),
--   warnings } or nil, err.
function M.show(o)
  check(o, { registry = "string?", name = "string?", resource_group = "string?", probe = "boolean?",
    content = "boolean?" }, "azcmk.playbook.show")
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local f = ctx:read(o.registry or o.name, o.resource_group, options.merge(state.parts.show,
    { probe = o.probe == true, content = o.probe == true and o.content ~= false }))
  local reg, rg = common.registry_of(f)
  if not reg then return nil, rg end
  return M.summarize(f, ctx, o.probe)
end

--- The result of show from facts f (azcmk.state.read with parts "show"); warnings go to ctx.
function M.summarize(f, ctx, probe)
  local reg = f.reg
  local props = reg.properties or {}
  local enc = props.encryption or { status = "disabled" }
  local out = {
    registry = { name = reg.name, id = reg.id, resource_group = f.rg, login_server = props.loginServer,
      sku = reg.sku and reg.sku.name },
    encryption = enc, cmk = f.cmk == true, warnings = ctx.warnings,
  }
  if probe and props.loginServer then
    out.data_plane = f.data_plane or { ok = false, error = tostring(f.data_plane_err) }
    out.content = rules.content_view(f.content)
  end
  if not out.cmk then return out end
  -- revoked on purpose (the tag revoke writes), or active
  local rec = rules.revocation(f)
  out.state = rec and "revoked" or "active"
  if rec then
    out.revoked = { at = rec.at, by = rec.by }
    ctx:warn("the registry was revoked deliberately on " .. rec.at .. " by " .. rec.by .. "; its data is "
      .. "inaccessible until `restore{registry = \"" .. reg.name .. "\"}`")
  end
  local kvp = f.kvp
  out.key_id = kvp.keyIdentifier
  out.versioned_key_id = kvp.versionedKeyIdentifier
  out.key_version_in_use = Keys.version_of(kvp.versionedKeyIdentifier or kvp.keyIdentifier)
  out.auto_rotation = kvp.keyRotationEnabled == true
  out.last_rotation = kvp.lastKeyRotationTimestamp
  local id = f.ident
  if id.kind == "system" then
    out.identity = { kind = "system", principal_id = id.principal_id }
  else
    out.identity = { kind = "user", client_id = id.client_id, id = id.uai_id, principal_id = id.principal_id }
    if rules.identity(f) == "detached" then
      ctx:warn("the encryption identity " .. tostring(id.client_id) .. " is not attached to the registry; "
        .. "re-attach it (`identity_assign{registry = \"" .. reg.name
        .. "\", identity = \"<its resource id>\"}`)")
    end
  end
  local key = f.key
  if not key then return out end
  if f.newest then
    out.newest_key_id = f.newest.kid
    out.newest_key_version = f.newest.version
    local drift = rules.drift(f)
    out.up_to_date = drift.state == "current"
    if drift.state == "pending" then
      ctx:warn("a newer key version exists; a registry with a versionless key id adopts it within an hour of "
        .. "its creation (or now: `rotate{registry = \"" .. reg.name .. "\", key_id = \"" .. key.versionless
        .. "\"}`)")
    elseif drift.state == "stuck" then
      ctx:warn("a newer key version exists for more than an hour and the registry has not adopted it: the "
        .. "rotation is stuck (`doctor{registry = \"" .. reg.name .. "\"}` says why)")
    end
    if type(f.rotation_policy) == "table" then
      local rot = rotation_of(f.rotation_policy)
      out.key_rotation_policy = rot
      if rot.enabled and not out.auto_rotation then
        ctx:warn("Key Vault rotates this key automatically, but the registry's key id is versioned, "
          .. "so the registry stays on its version; use a versionless key id "
          .. "(`rotate{registry = \"" .. reg.name .. "\", versionless = true}`)")
      end
    end
  elseif f.key_bundle_err then
    local kerr = f.key_bundle_err
    ctx:warn("cannot read the key in the vault (" .. tostring(kerr.code or kerr.status) .. "): "
      .. tostring(kerr.message):match("^[^\r\n]*"))
  elseif f.key_missing then
    ctx:warn("the key " .. key.versionless .. " was not found in the vault (deleted? `recover{vault = \""
      .. key.vault .. "\", key = \"" .. key.name .. "\"}`)")
  end
  return out
end

setmetatable(M, { __call = function(_, o) return M.show(o) end })
return M
