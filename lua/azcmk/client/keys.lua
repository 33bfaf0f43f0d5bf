--- Key Vault keys, data plane: create (or new version), get,
-- versions, update, rotate, rotation policy, delete, deleted keys, recover, wrap / unwrap.
-- Every call takes vault_url ("https://kv.vault.azure.net") or vault (a name, with the
-- pipeline's cloud suffix).
local base = require("azcmk.client.base")
local errors = require("azcmk.errors")
local reconcile = require("azcmk.client.reconcile")
local V = require("azcmk.client.api_versions")

local C = base.class("keys")

local function vurl(self, o)
  if o.vault_url then return o.vault_url end
  if type(o.vault) ~= "string" then error("azcmk.client.keys: vault_url or vault required", 3) end
  return "https://" .. o.vault:lower() .. self.p.cloud.vault_suffix
end

local function call(self, o, method, path, body)
  local opts = body ~= nil and base.with_body(V.keys, body) or { api_version = V.keys }
  local res, err = self.p:vault(method, vurl(self, o), path, opts)
  if not res then return nil, err end
  return res.json or true
end

local function seg(s) return base.seg(s) end

-- Every call names its vault: vault_url, or vault (a name).
local VAULT = { vault_url = "string?", vault = "string?" }
local function check(o, spec, where) return base.check(o, spec, where, VAULT) end

-- Every version create() makes carries this tag, whose value names the intent it was made
-- for (`once`, or a fresh one per call): a create whose answer was lost is found again by
-- it, and a re-run of the same step reuses its version instead of making another. A tag,
-- not the created time: it is exact whatever the clocks say and whoever else writes the key,
-- and Key Vault keeps a version's tags and lists them with the versions.
C.INTENT_TAG = "azcmk-op"

--- A short intent value from its parts (the same parts give the same value on every run).
function C.intent(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))):lower() end
  local crypto = require("azcmk.crypto")
  return crypto.hex(crypto.sha256(table.concat(parts, "|"))):sub(1, 32)
end

local fresh_n = 0
local function fresh_intent(self)
  fresh_n = fresh_n + 1
  return C.intent("call", self.p.now and self.p.now() or os.time(), os.clock(), fresh_n, math.random())
end

local function vault_of(o)
  return { vault_url = o.vault_url, vault = o.vault, name = o.name, subscription = o.subscription }
end

-- The version made for intent id (the oldest with the tag: Key Vault's own rotations copy a
-- version's tags to the next), as a KeyBundle; nil when there is none; nil, err.
local function made_for(self, o, id)
  local list, err = self:versions(vault_of(o))
  if not list then
    if errors.is(err, 404) then return nil end      -- no key yet: nothing made
    return nil, err
  end
  for i = #list, 1, -1 do
    local it = list[i]
    if type(it.tags) == "table" and it.tags[C.INTENT_TAG] == id then
      local kb, gerr = self:get({ vault_url = o.vault_url, vault = o.vault, name = o.name,
        subscription = o.subscription, version = C.version_of(it.kid) })
      if gerr then return nil, gerr end
      if kb then return kb end
    end
  end
  return nil
end

--- create{vault_url | vault, name, kty = "RSA", key_size?, key_ops?, enabled?, exp?, nbf?, tags?,
-- once?} -> KeyBundle. On an existing name this makes a new version. once: an intent (C.intent)
-- that makes the call idempotent: a version made for it earlier is returned (with
-- reused = true) instead of a new one. A create that fails ambiguously is read back
-- (azcmk.client.reconcile) by its intent tag.
function C:create(o)
  check(o, { name = "string", kty = "string?", key_size = "number?", key_ops = "table?",
    tags = "table?", exp = "number?", nbf = "number?", enabled = "boolean?", crv = "string?",
    once = "string?" }, "keys:create")
  local id = o.once
  if id then
    local found, ferr = made_for(self, o, id)
    if ferr then return nil, ferr end
    if found then found.reused = true; return found end
  else
    id = fresh_intent(self)
  end
  local tags = base.copy(o.tags)
  tags[C.INTENT_TAG] = id
  local body = { kty = o.kty or "RSA",
    attributes = { enabled = o.enabled ~= false, exp = o.exp, nbf = o.nbf },
    key_size = o.key_size, key_ops = o.key_ops, tags = tags, crv = o.crv }
  return reconcile.write(self.p, {
    what = "new version of key " .. o.name,
    send = function() return call(self, o, "POST", "/keys/" .. seg(o.name) .. "/create", body) end,
    read = function() return made_for(self, o, id) end,
    check = "list the versions of key " .. o.name .. " (az keyvault key list-versions) and look for the tag "
      .. C.INTENT_TAG .. "=" .. id,
  })
end

--- get{vault_url | vault, name, version?} -> KeyBundle, nil (absent: KeyNotFound), or nil, err.
function C:get(o)
  check(o, { name = "string", version = "string?" }, "keys:get")
  local r, err = call(self, o, "GET", "/keys/" .. seg(o.name) .. "/"
    .. (o.version and seg(o.version) or ""))
  if r then return r end
  if errors.is(err, 404) then return nil, nil end
  return nil, err
end

--- versions{vault_url | vault, name} -> array of KeyItems {kid, attributes}, newest first.
function C:versions(o)
  check(o, { name = "string" }, "keys:versions")
  local out, err = base.all(self.p:vault_pages(vurl(self, o), "/keys/" .. seg(o.name) .. "/versions",
    { api_version = V.keys }))
  if not out then return nil, err end
  table.sort(out, function(a, b)
    local ca = a.attributes and a.attributes.created or 0
    local cb = b.attributes and b.attributes.created or 0
    if ca ~= cb then return ca > cb end
    return tostring(a.kid) > tostring(b.kid)
  end)
  return out
end

--- list{vault_url | vault, max_results?} -> array of KeyItems (versionless kids). With
-- max_results, at most that many (one page, maxresults=N): e.g. a cheap "may the caller list
-- this vault's keys" probe.
function C:list(o)
  check(o, { max_results = "number?" }, "keys:list")
  local query = o.max_results and { maxresults = tostring(math.floor(o.max_results)) } or nil
  local out = {}
  for item, err in self.p:vault_pages(vurl(self, o), "/keys", { api_version = V.keys, query = query }) do
    if not item then return nil, err end
    out[#out + 1] = item
    if o.max_results and #out >= o.max_results then break end
  end
  return out
end

--- update{vault_url | vault, name, version, enabled?, exp?, nbf?, key_ops?, tags?} -> KeyBundle.
function C:update(o)
  check(o, { name = "string", version = "string", enabled = "boolean?", tags = "table?",
    key_ops = "table?", exp = "number?", nbf = "number?" }, "keys:update")
  local attrs
  if o.enabled ~= nil or o.exp or o.nbf then attrs = { enabled = o.enabled, exp = o.exp, nbf = o.nbf } end
  return call(self, o, "PATCH", "/keys/" .. seg(o.name) .. "/" .. seg(o.version),
    { attributes = attrs, tags = o.tags, key_ops = o.key_ops })
end

--- rotate{vault_url | vault, name} -> KeyBundle of the new version (needs keys/rotate). Key
-- Vault's rotate takes no tags, so a rotate that fails ambiguously is read back by the
-- versions that were not there before it: exactly one new is it; none is not applied; more
-- is someone else's rotation too, and an error.
function C:rotate(o)
  check(o, { name = "string" }, "keys:rotate")
  local before, berr = self:versions(vault_of(o))
  if not before then return nil, berr end
  local seen = {}
  for _, it in ipairs(before) do seen[it.kid] = true end
  return reconcile.write(self.p, {
    what = "rotation of key " .. o.name,
    send = function() return call(self, o, "POST", "/keys/" .. seg(o.name) .. "/rotate") end,
    read = function()
      local now, err = self:versions(vault_of(o))
      if not now then return nil, err end
      local new = {}
      for _, it in ipairs(now) do if not seen[it.kid] then new[#new + 1] = it end end
      if #new == 0 then return nil end
      if #new > 1 then
        return nil, errors.new("azure", { code = "ConcurrentKeyVersions",
          message = #new .. " new versions of key " .. o.name .. " appeared during the rotation" })
      end
      return self:get({ vault_url = o.vault_url, vault = o.vault, name = o.name,
        version = C.version_of(new[1].kid) })
    end,
    check = "list the versions of key " .. o.name .. " (az keyvault key list-versions): a version created "
      .. "just now is this rotation's",
  })
end

--- get_rotation_policy{vault_url | vault, name} -> KeyRotationPolicy.
function C:get_rotation_policy(o)
  check(o, { name = "string" }, "keys:get_rotation_policy")
  return call(self, o, "GET", "/keys/" .. seg(o.name) .. "/rotationpolicy")
end

--- set_rotation_policy{vault_url | vault, name, policy = {lifetimeActions, attributes}} -> policy.
-- Or the short form: rotate_after = "P90D", notify_before = "P30D", expiry = "P2Y".
function C:set_rotation_policy(o)
  check(o, { name = "string", policy = "table?", rotate_after = "string?", notify_before = "string?",
    expiry = "string?" }, "keys:set_rotation_policy")
  local policy = o.policy
  if not policy then
    local actions = {}
    if o.rotate_after then
      actions[#actions + 1] = { trigger = { timeAfterCreate = o.rotate_after }, action = { type = "Rotate" } }
    end
    if o.notify_before then
      actions[#actions + 1] = { trigger = { timeBeforeExpiry = o.notify_before },
        action = { type = "Notify" } }
    end
    policy = { lifetimeActions = #actions > 0 and actions or base.EMPTY_ARRAY,
      attributes = o.expiry and { expiryTime = o.expiry } or nil }
  end
  return call(self, o, "PUT", "/keys/" .. seg(o.name) .. "/rotationpolicy", policy)
end

--- delete{vault_url | vault, name} -> DeletedKeyBundle (the key goes to soft delete).
function C:delete(o)
  check(o, { name = "string" }, "keys:delete")
  return call(self, o, "DELETE", "/keys/" .. seg(o.name))
end

--- get_deleted{vault_url | vault, name} -> DeletedKeyBundle, nil (not deleted), or nil, err.
function C:get_deleted(o)
  check(o, { name = "string" }, "keys:get_deleted")
  local r, err = call(self, o, "GET", "/deletedkeys/" .. seg(o.name))
  if r then return r end
  if errors.is(err, 404) then return nil, nil end
  return nil, err
end

--- recover{vault_url | vault, name} -> KeyBundle (the latest version, back from soft delete).
-- A recover that fails ambiguously is read back: a live key means it was applied.
function C:recover(o)
  check(o, { name = "string" }, "keys:recover")
  return reconcile.write(self.p, {
    what = "recovery of key " .. o.name,
    send = function() return call(self, o, "POST", "/deletedkeys/" .. seg(o.name) .. "/recover") end,
    read = function() return self:get(vault_of(o)) end,
    check = "see whether key " .. o.name .. " is live (az keyvault key show) or still deleted "
      .. "(az keyvault key show-deleted)",
  })
end

--- purge{vault_url | vault, name} -> true. Permanent; refused by a purge-protected vault.
function C:purge(o)
  check(o, { name = "string" }, "keys:purge")
  return call(self, o, "DELETE", "/deletedkeys/" .. seg(o.name))
end

local function wrapop(self, o, op)
  check(o, { name = "string", version = "string?", alg = "string?", value = "string" }, "keys:" .. op)
  local path = "/keys/" .. seg(o.name) .. "/" .. (o.version and (seg(o.version) .. "/") or "") .. op
  return call(self, o, "POST", path, { alg = o.alg or "RSA-OAEP-256", value = o.value })
end

--- wrap{vault_url | vault, name, version?, alg = "RSA-OAEP-256", value = <base64url>} -> {kid, value}.
function C:wrap(o) return wrapop(self, o, "wrapkey") end

--- unwrap{vault_url | vault, name, version?, alg, value} -> {kid, value}.
function C:unwrap(o) return wrapop(self, o, "unwrapkey") end

--- The version of a kid (last path segment after /keys/{name}/), or nil.
function C.version_of(kid)
  return type(kid) == "string" and kid:match("/keys/[^/]+/([^/]+)/?$") or nil
end

return C
