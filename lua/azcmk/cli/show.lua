--- `azcmk show`: a registry's encryption (as `az acr encryption show`) and the key version in use.
local common = require("azcmk.cli.common")

local FLAGS = {
  { "probe", nil, false, "also ask the registry's data plane (https://REGISTRY.azurecr.io/v2/) and read "
    .. "one manifest and blob as you: can the registry really use its key, and which key version" },
}

local M = {}

--- The JSON of `azcmk show -o json`: properties.encryption verbatim plus an "azcmk" object.
function M.json_value(r)
  local out = {}
  for k, v in pairs(r.encryption or {}) do out[k] = v end
  out.azcmk = { registry = r.registry.name, resourceGroup = r.registry.resource_group,
    keyVersionInUse = r.key_version_in_use, newestKeyVersion = r.newest_key_version,
    newestKeyId = r.newest_key_id, autoRotation = r.auto_rotation, upToDate = r.up_to_date,
    keyRotationPolicy = r.key_rotation_policy,
    identity = r.identity, dataPlane = r.data_plane, content = r.content,
    state = r.state, revoked = r.revoked,
    warnings = r.warnings }
  return out
end

M.run = common.verb({
  verb = "show",
  usage = "azcmk show -n REGISTRY [-g RG] [--probe] [-o json|table]",
  flags = FLAGS,
  build = function(opts, _, o)
    o.registry = opts.name
    o.probe = opts.probe
    return true
  end,
  call = function(o) return require("azcmk.playbook.show").show(o) end,
  render = function(r, opts, io_)
    local lines = { "registry " .. r.registry.name .. " (" .. tostring(r.registry.sku) .. ", resource group "
      .. tostring(r.registry.resource_group) .. ")" }
    if not r.cmk then
      lines[#lines + 1] = "  encryption: " .. tostring(r.encryption.status) .. " (no customer-managed key)"
    else
      lines[#lines + 1] = "  encryption:        enabled (customer-managed key)"
      lines[#lines + 1] = "  state:             " .. (r.revoked and ("REVOKED on " .. tostring(r.revoked.at)
        .. " by " .. tostring(r.revoked.by)) or tostring(r.state))
      lines[#lines + 1] = "  key id:            " .. tostring(r.key_id)
      lines[#lines + 1] = "  version in use:    " .. tostring(r.key_version_in_use)
      lines[#lines + 1] = "  newest version:    " .. tostring(r.newest_key_version or "?")
        .. (r.up_to_date == true and "  (in use)" or (r.up_to_date == false and "  (NOT in use yet)" or ""))
      lines[#lines + 1] = "  auto rotation:     " .. (r.auto_rotation and "on (versionless key id)"
        or "off (versioned key id: rotate with `azcmk rotate`)")
      local pol = r.key_rotation_policy
      if pol then
        lines[#lines + 1] = "  key vault policy:  " .. (pol.enabled and ("new version every "
          .. tostring(pol.rotate_after or ("expiry - " .. tostring(pol.rotate_before_expiry))))
          or "no automatic rotation") .. (pol.expiry and (", versions expire after " .. pol.expiry) or "")
      end
      local id = r.identity or {}
      lines[#lines + 1] = "  identity:          " .. (id.kind == "system" and "[system] "
        .. tostring(id.principal_id)
        or ("client id " .. tostring(id.client_id) .. (id.id and (" (" .. id.id:match("[^/]+$") .. ")")
          or "")))
      if r.last_rotation then lines[#lines + 1] = "  last rotation:     " .. tostring(r.last_rotation) end
    end
    if r.data_plane then
      local dp = r.data_plane
      lines[#lines + 1] = "  data plane:        " .. (dp.ok and ("serving (" .. tostring(dp.status) .. ")")
        or ("DENIED " .. tostring(dp.status) .. ": " .. common.one_line(dp.message or dp.error)))
    end
    if r.content then
      local ct = r.content
      lines[#lines + 1] = "  content:           " .. ct.verdict:gsub("_", " "):upper() .. ": "
        .. common.one_line(ct.summary)
      if ct.key_version then lines[#lines + 1] = "  content key:       " .. ct.key_version end
      if ct.error and ct.error.hint and not ct.usable then
        lines[#lines + 1] = "    next: " .. common.one_line(common.words(ct.error.hint, "show"))
      end
    end
    for _, w in ipairs(r.warnings or {}) do lines[#lines + 1] = "  warning: " .. common.words(w, "show") end
    return common.emit(io_, opts, r, M.json_value(r), {
      { "registry", r.registry.name }, { "status", r.encryption.status }, { "state", r.state and (r.state
        .. (r.revoked and (" " .. tostring(r.revoked.at) .. " by " .. tostring(r.revoked.by)) or "")) },
      { "keyIdentifier", r.key_id },
      { "versionedKeyIdentifier", r.versioned_key_id }, { "keyVersionInUse", r.key_version_in_use },
      { "newestKeyVersion", r.newest_key_version }, { "keyRotationEnabled", r.auto_rotation },
      { "identity", r.encryption.keyVaultProperties and r.encryption.keyVaultProperties.identity },
      { "dataPlane", r.data_plane and r.data_plane.status },
      { "content", r.content and r.content.verdict },
      { "contentKeyVersion", r.content and r.content.key_version },
    }, table.concat(lines, "\n") .. "\n")
  end,
})

return M
