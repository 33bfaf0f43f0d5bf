--- emu.acr.content_key: each registry's content key and how it is kept, as ACR does it with a
-- customer-managed key: a random AES-256 key that encrypts the registry's blobs, stored only
-- wrapped (RSA-OAEP) by the Key Vault key version the registry uses, through the registry's CMK
-- identity. Reading content needs that identity to reach the key (emu.keyvault.access), so a
-- revoked policy or role, a disabled or deleted key or vault, or a firewall without trusted
-- services makes the content unreadable at once; restoring access makes it readable again.
-- A registry without CMK keeps its key itself (service-managed encryption).
--
-- Record "acr:ck:<lower registry id>":
--   store      random id of the registry's blob directory (a re-created registry starts empty)
--   kid        the versioned key id that wrapped the key (CMK), the observable "version in use"
--   wrapped    base64url RSA-OAEP ciphertext of the key (CMK)
--   plain      base64url key (service-managed only)
--   wrapped_at simulated time of the last (re-)wrap
--   held       base64url key: the copy the running service holds in memory (CMK). Never used to read
--              content (reads always unwrap through the identity's access); only to re-wrap at a
--              rotation whose old version can no longer unwrap (see below)
-- Rotation: when the registry's versionedKeyIdentifier differs from `kid` (PATCH to another key
-- or version, or the versionless pickup within the hour), follow() unwraps with the old version
-- and wraps with the new one. The automatic pickup never moves off a disabled version (emu.arm.
-- registries' pickup: "both versions must stay enabled"); an explicit rotation (PATCH) whose old
-- version is already disabled still re-wraps, with the key the service holds: the emulator's reading
-- of how re-running the rotation un-sticks a registry (ACR's internals are not documented).
local state = require("emu.state")
local clock = require("emu.clock")

local M = {}

M.ALG = "RSA-OAEP"

local function C() return require("azcmk.core") end
local function regs() return require("emu.arm.registries") end
local function access() return require("emu.keyvault.access") end
local function store() return require("emu.keyvault.store") end

local function rkey(id) return "acr:ck:" .. id:lower() end

-- Per-worker cache of unwrapped keys by their wrapped text (the access check runs every time;
-- this only saves the RSA decryption). Room for a fleet: each worker sees every CMK registry a
-- fleet audit probes (1,000 in bench/audit.sh), and a cache emptied at 500 never hit there.
local cache, cache_n = {}, 0

local function cmk_of(rec)
  local enc = rec.properties and rec.properties.encryption
  if enc and enc.status == "enabled" and type(enc.keyVaultProperties) == "table" then
    return enc.keyVaultProperties
  end
  return nil
end

--- Who unwraps for the registry: {principal_id, client_id, system} or nil, "inactive".
local function identity_of(rec, kvp)
  local p = regs().cmk_principal(rec.identity, kvp.identity, rec)
  if not p then return nil end
  local lost = regs().identity_lost_since(rec)
  if lost and clock.now() >= lost + regs().IDENTITY_GRACE then return nil end
  return p
end

local function who(p) return { principal_id = p.principal_id, trusted_service = p.system == true } end

-- The private RSA key of a versioned kid (after the access check passed).
local function pkey_of(r)
  local st = store()
  local k = st.key(r.key.vault, r.key.name)
  local ver = k and st.find_version(k, r.version)
  if not ver then return nil end
  return st.pkey(r.key.vault, r.key.name, ver)
end

--- Wraps raw key bytes with kid through identity p: b64url ciphertext, versioned kid | nil, reason, message.
local function wrap(kid, p, raw)
  local r = access().check_key(kid, who(p))
  if type(r) ~= "table" or not r.ok then return nil, r and r.reason or "unknown", r and r.message end
  if r.expired or r.not_yet_valid then
    return nil, "key_expired", "The key version " .. tostring(r.kid) .. " is expired or not yet valid: it cannot wrap."
  end
  local pk = pkey_of(r)
  if not pk then return nil, "key_not_rsa", "no RSA key material" end
  return C().b64url_encode(pk:encrypt(M.ALG, raw)), r.kid
end

--- Unwraps: raw key | nil, reason, message. An expired key still unwraps (Key Vault allows it).
local function unwrap(kid, p, wrapped)
  local r = access().check_key(kid, who(p))
  if type(r) ~= "table" or not r.ok then return nil, r and r.reason or "unknown", r and r.message end
  local hit = cache[wrapped]
  if hit then return hit end
  local pk = pkey_of(r)
  local raw = pk and pk:decrypt(M.ALG, C().b64url_decode(wrapped))
  if not raw then return nil, "unwrap_failed", "The content key could not be unwrapped with " .. kid .. "." end
  if cache_n >= 10000 then cache, cache_n = {}, 0 end
  cache[wrapped], cache_n = raw, cache_n + 1
  return raw
end

local function new_store_id() return C().hex(C().random_bytes(12)) end

--- Creates the record when missing (a new registry's first data-plane use). nil, reason, message when
-- a CMK registry cannot wrap its first key.
local function ensure(rec, kvp, p)
  local key = rkey(rec.id)
  local cur = state.get(key)
  if cur then return cur end
  local raw = C().random_bytes(32)
  local out = { store = new_store_id(), wrapped_at = clock.now() }
  if kvp then
    local wrapped, kid_or_reason, msg = wrap(kvp.versionedKeyIdentifier or kvp.keyIdentifier, p, raw)
    if not wrapped then return nil, kid_or_reason, msg end
    out.wrapped, out.kid, out.alg, out.held = wrapped, kid_or_reason, M.ALG, C().b64url_encode(raw)
  else
    out.plain = C().b64url_encode(raw)
  end
  if state.add(key, out) then return out end
  return state.get(key)
end

--- Re-wraps under the registry's current version when it changed (rotation). Returns the record in force.
local function follow_rotation(rec, kvp, p, cur)
  local want = kvp.versionedKeyIdentifier
  if not cur.kid or type(want) ~= "string" or want:lower() == cur.kid:lower() then return cur end
  return state.update(rkey(rec.id), function(now_rec)
    if not now_rec or not now_rec.kid or now_rec.kid:lower() == want:lower() then return now_rec end
    local raw = unwrap(now_rec.kid, p, now_rec.wrapped)
    if not raw and now_rec.held then raw = C().b64url_decode(now_rec.held) end -- the service's copy
    if not raw then return now_rec end
    local wrapped, kid = wrap(want, p, raw)
    if not wrapped then return now_rec end
    now_rec.wrapped, now_rec.kid, now_rec.wrapped_at = wrapped, kid, clock.now()
    return now_rec
  end) or cur
end

local INACTIVE = "The identity associated with the registry is inactive. This could be due to attempted removal " ..
  "of the identity. Reassign the identity manually"

--- Opens the content key of a registry record (emu.arm.registries.current(id)).
-- Returns { key = <32 bytes>, store = "<id>", kid = "<versioned kid>" | nil }
-- or nil, reason, message, { kid = <kid that wraps the content>, client_id = <identity client id> }.
-- reason: "inactive" (identity gone) or an emu.keyvault.access reason, "key_expired" (a first wrap).
function M.open(rec)
  local kvp = cmk_of(rec)
  if not kvp then
    local cur = ensure(rec, nil, nil)
    return { key = C().b64url_decode(cur.plain), store = cur.store }
  end
  local p = identity_of(rec, kvp)
  if not p then return nil, "inactive", INACTIVE, { kid = kvp.versionedKeyIdentifier } end
  local info = { client_id = p.client_id, kid = kvp.versionedKeyIdentifier }
  local cur, why, msg = ensure(rec, kvp, p)
  if not cur then return nil, why, msg, info end
  if cur.plain then return { key = C().b64url_decode(cur.plain), store = cur.store } end
  cur = follow_rotation(rec, kvp, p, cur)
  info.kid = cur.kid
  local raw
  raw, why, msg = unwrap(cur.kid, p, cur.wrapped)
  if not raw then return nil, why, msg, info end
  return { key = raw, store = cur.store, kid = cur.kid }
end

--- Keeps the content key in step with the registry record (called when an operation completes and on
-- every read of the registry): a new registry gets its key now, wrapped while its key version is
-- valid (as ACR wraps at creation); a changed key version (PATCH, versionless pickup) re-wraps it now,
-- while the old version can still unwrap (as ACR does at rotation time).
function M.follow(rec)
  if not (rec and rec.id and rec.properties and rec.properties.provisioningState == "Succeeded") then return end
  local kvp = cmk_of(rec)
  local cur = state.get(rkey(rec.id))
  if cur and (not kvp or not cur.kid or type(kvp.versionedKeyIdentifier) ~= "string" or
    kvp.versionedKeyIdentifier:lower() == cur.kid:lower()) then return end
  local p = kvp and identity_of(rec, kvp)
  if kvp and not p then return end
  if not cur then ensure(rec, kvp, p) return end
  follow_rotation(rec, kvp, p, cur)
end

--- The stored record (no key material) for the control API: {store, kid, alg, wrapped_at} or nil.
function M.describe(id)
  local cur = state.get(rkey(id))
  if not cur then return nil end
  return { store = cur.store, kid = cur.kid, alg = cur.kid and cur.alg or nil, wrapped_at = cur.wrapped_at,
    managed_by = cur.kid and "customer" or "service" }
end

--- The blob directory id of a registry, or nil (no content yet).
function M.store_of(id)
  local cur = state.get(rkey(id))
  return cur and cur.store
end

--- Forgets a deleted registry's key (its content becomes unreadable; emu.acr.blobs removes the files).
function M.forget(id)
  state.delete(rkey(id))
end

return M
