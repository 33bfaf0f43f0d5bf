--- emu.services.keyvault: the Key Vault data plane for keys on https://{kv}.vault.azure.net
-- (and the China / US Gov suffixes). Every request: vault exists (else 404 VaultNotFound,
-- synthetic: real Azure fails DNS), bearer token (401 + challenge), api-version, firewall
-- (networkAcls / publicNetworkAccess), then authorization by the vault's model (access
-- policies or RBAC data actions, emu.keyvault.access). Keys live in emu.keyvault.store; RSA is
-- real (azcmk.core), EC is structurally valid random material (never used for crypto).
-- Texts marked "-- synthetic" are written in Key Vault's style where the real one is unknown.
-- Rotation policies: emu.services.keyvault_policy. Control: GET /_emulator/keyaccess,
-- GET|POST /_emulator/keyvault.
local router = require("emu.router")
local json = require("emu.json")
local errors = require("emu.errors")
local auth = require("emu.auth")
local store = require("emu.keyvault.store")
local access = require("emu.keyvault.access")
local throttle = require("emu.throttle")

local M = {}

-- The previews too: az 2.45 pins 7.4-preview.1 for every key command (Python azure-keyvault-keys
-- 4.8 beta) and recorded Azure traffic shows 7.5-preview.1 answered 200.
M.API_VERSIONS = { "7.0", "7.1", "7.2", "7.3", "7.4-preview.1", "7.4", "7.5-preview.1", "7.5", "7.6",
  "2025-07-01" }
local API_SET = {}
for _, v in ipairs(M.API_VERSIONS) do API_SET[v] = true end
M.LATEST = "2025-07-01"

M.HEADERS = {
  ["x-ms-keyvault-service-version"] = "1.9.2956.1",
  ["x-ms-keyvault-network-info"] = "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
}

local function kvh(vault)
  local h = {}
  for k, v in pairs(M.HEADERS) do h[k] = v end
  h["x-ms-keyvault-region"] = vault and store.location(vault) or "westus"
  h["x-ms-keyvault-network-info"] = "conn_type=Ipv4;addr=" .. (ngx.var.remote_addr or "127.0.0.1") ..
    ";act_addr_fam=InterNetwork;"
  return h
end

local function fail(status, code, msg, inner, vault)
  errors.throw(errors.kv(status, code, msg, inner, kvh(vault)))
end
M.fail = fail

local function bad(msg, vault) fail(400, "BadParameter", msg, nil, vault) end
M.bad = bad

-- ---------------------------------------------------------------- the request preamble

local function client_ip()
  return ngx.var.remote_addr or "127.0.0.1"
end

--- Vault, token, api-version, firewall. Returns vault.
function M.open(req)
  local vault = store.vault(req.subname or "")
  if not vault then
    -- Real Key Vault: the host name does not resolve. Synthetic 404 in Key Vault's envelope.
    fail(404, "VaultNotFound", "The vault '" .. tostring(req.subname) .. "' was not found. Check the vault " ..
      "name; a deleted vault must be recovered before it can be used.") -- synthetic
  end
  auth.vault(req)
  local v = req:arg("api-version")
  if not v or v == "" then
    fail(400, "BadParameter", "The 'api-version' query parameter is missing.", nil, vault) -- synthetic
  end
  if not API_SET[v] then
    -- synthetic (the text below)
    fail(400, "BadParameter", "The specified version (" .. v .. ") is not recognized. Consider using the latest " ..
      "supported version (" .. M.LATEST .. ").", nil, vault)
  end
  local ip = client_ip()
  local net_ok, why = access.firewall_ok(vault, { ip = ip, trusted_service = false })
  if not net_ok then
    if why == "public" then
      -- synthetic (the text below)
      fail(403, "Forbidden", access.connection_message(vault, req.principal), "ForbiddenByConnection", vault)
    end
    fail(403, "Forbidden", access.firewall_message(vault, req.principal, ip), "ForbiddenByFirewall", vault)
  end
  req.vault = vault
  return vault
end

--- Raises Key Vault's 403 unless the caller holds `perm` (access-policy permission name).
function M.authorize(req, perm, key_name)
  local vault = req.vault
  if access.allowed(vault, req.principal.oid, perm, key_name) then return end
  if access.rbac_mode(vault) then
    fail(403, "Forbidden", access.rbac_denied_message(vault, req.principal, perm, key_name), "ForbiddenByRbac", vault)
  end
  fail(403, "Forbidden", access.policy_denied_message(vault, req.principal, perm), "ForbiddenByPolicy", vault)
end

--- A data-plane route: open + authorize(perm) + handler(req, vault). perm may be a function(req).
function M.route(method, path, perm, handler)
  router.add({ kind = "vault", method = method, path = path, ci = false, handler = function(req)
    local vault = M.open(req)
    local busy = throttle.vault(req, vault)
    if busy then fail(429, "Throttled", busy, nil, vault) end
    local p = type(perm) == "function" and perm(req) or perm
    if p then M.authorize(req, p, req.params.name) end
    local st, body, h = handler(req, vault)
    local hh = kvh(vault)
    if h then for k, v in pairs(h) do hh[k] = v end end
    return st, body, hh
  end })
end

-- ---------------------------------------------------------------- shapes

local function base(req, vault)
  return store.base_url(vault.name, req.cloud)
end
M.base = base

function M.kid(req, vault, k, ver)
  return base(req, vault) .. "/keys/" .. k.name .. (ver and ("/" .. ver.v) or "")
end

function M.attributes(vault, ver)
  local a = { enabled = ver.enabled, created = ver.created, updated = ver.updated,
    recoveryLevel = store.recovery_level(vault), recoverableDays = store.retention_days(vault) }
  if ver.nbf then a.nbf = ver.nbf end
  if ver.exp then a.exp = ver.exp end
  if ver.exportable ~= nil then a.exportable = ver.exportable end
  return a
end

--- The attributes of a version as api-version `api` shows them: from 7.5-preview.1 on, Azure
-- answers `exportable` (false unless set) and `hsmPlatform` ("0" for software-protected keys)
-- on every key (recorded traffic, azure-cli test_keyvault_key_rotation).
function M.attributes_for(vault, ver, api)
  local a = M.attributes(vault, ver)
  local major, minor = tostring(api or ""):match("^(%d+)%.(%d+)")
  if major and (tonumber(major) > 7 or (tonumber(major) == 7 and tonumber(minor) >= 5)) then
    if a.exportable == nil then a.exportable = false end
    a.hsmPlatform = "0"
  end
  return a
end

local function has_tags(t)
  return type(t) == "table" and next(t) ~= nil
end

--- KeyBundle of a version (material generated if still missing).
function M.bundle(req, vault, k, ver)
  ver = store.ensure_material(vault.name, k.name, ver)
  local j = ver.jwk or {}
  local key = { kid = M.kid(req, vault, k, ver), kty = ver.kty, key_ops = json.array(json.copy(ver.key_ops)) }
  if ver.kty == "EC" or ver.kty == "EC-HSM" then
    key.crv, key.x, key.y = ver.crv, j.x, j.y
  else
    key.n, key.e = j.n, j.e
  end
  local b = { key = key, attributes = M.attributes_for(vault, ver, req:arg("api-version")) }
  if has_tags(ver.tags) then b.tags = json.copy(ver.tags) end
  return b
end

function M.deleted_fields(req, vault, k, b)
  b.recoveryId = base(req, vault) .. "/deletedkeys/" .. k.name
  b.deletedDate = k.deleted.deletedDate
  b.scheduledPurgeDate = k.deleted.scheduledPurgeDate
  return b
end

local function item(req, vault, k, ver, versioned)
  local it = { kid = M.kid(req, vault, k, versioned and ver or nil), attributes = M.attributes(vault, ver) }
  if has_tags(ver.tags) then it.tags = json.copy(ver.tags) end
  return it
end

-- ---------------------------------------------------------------- errors

function M.key_not_found(vault, name, version)
  fail(404, "KeyNotFound", "A key with (name/id) " .. name .. (version and ("/" .. version) or "") .. " was not " ..
    "found in this key vault. If you recently deleted this key you may be able to recover it using the correct " ..
    "recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
    nil, vault)
end

local function deleted_not_found(vault, name)
  fail(404, "KeyNotFound", "Deleted Key not found: " .. name, nil, vault)
end

local function being_deleted(vault)
  fail(409, "Conflict", "Key is currently being deleted.", "ObjectIsBeingDeleted", vault)
end

local function deleted_but_recoverable(vault, name)
  fail(409, "Conflict", "Key " .. name .. " is currently in a deleted but recoverable state, and its name cannot be " ..
    "reused; in this state, the key can only be recovered or purged.", "ObjectIsDeletedButRecoverable", vault)
end

--- Key names: ^[0-9a-zA-Z-]+$, 1-127 characters.
function M.check_name(vault, name)
  if type(name) ~= "string" or #name < 1 or #name > 127 or not name:match("^[%w%-]+$") then
    fail(400, "BadParameter", "The request URI contains an invalid name: " .. tostring(name), nil, vault) -- synthetic
  end
end

--- The live key record (after lazy rotation), or raises 404 KeyNotFound (also when deleted).
function M.live_key(_, vault, name, version)
  M.check_name(vault, name)
  local k = store.auto_rotate(vault.name, name)
  if not k or k.deleted then M.key_not_found(vault, name, version) end
  local ver = store.find_version(k, version)
  if not ver then M.key_not_found(vault, name, version) end
  return k, ver
end

-- ---------------------------------------------------------------- body parsing

function M.body(req, vault, optional)
  local raw = req:body()
  if raw == nil or raw:match("^%s*$") then
    if optional then return {} end
    bad("The request body is missing.", vault) -- synthetic
  end
  local v, err = json.decode(raw)
  if v == nil then bad("The request body is not valid JSON: " .. tostring(err), vault) end -- synthetic
  if type(v) ~= "table" or json.is_array(v) then bad("The request body must be a JSON object.", vault) end -- synthetic
  return v
end

local KEY_OPS = { encrypt = "encrypt", decrypt = "decrypt", sign = "sign", verify = "verify", wrapkey = "wrapKey",
  unwrapkey = "unwrapKey", import = "import", export = "export" }

local function is_int(x) return type(x) == "number" and x == math.floor(x) and x >= 0 and x < 2 ^ 53 end

function M.parse_key_ops(vault, ops)
  if ops == nil or ops == json.null then return nil end
  if type(ops) ~= "table" or (not json.is_array(ops) and next(ops) ~= nil) then
    bad("Property 'key_ops' must be an array of strings.", vault) -- synthetic
  end
  local out = json.array({})
  for _, o in ipairs(ops) do
    local c = type(o) == "string" and KEY_OPS[o:lower()]
    if not c then bad("Invalid key operation '" .. tostring(o) .. "' in 'key_ops'.", vault) end -- synthetic
    out[#out + 1] = c
  end
  return out
end

function M.parse_attributes(vault, a)
  if a == nil or a == json.null then return {} end
  if type(a) ~= "table" or json.is_array(a) then bad("Property 'attributes' must be an object.", vault) end -- synthetic
  local out = {}
  if a.enabled ~= nil and a.enabled ~= json.null then
    if type(a.enabled) ~= "boolean" then bad("Property 'attributes.enabled' must be a boolean.", vault) end -- synthetic
    out.enabled = a.enabled
  end
  for _, f in ipairs({ "nbf", "exp" }) do
    local v = a[f]
    if v ~= nil and v ~= json.null then
      if not is_int(v) then
        bad("Property 'attributes." .. f .. "' must be a unix time in seconds.", vault) -- synthetic
      end
      out[f] = math.floor(v)
    elseif v == json.null then
      out[f] = json.null
    end
  end
  if a.exportable ~= nil and a.exportable ~= json.null then
    -- synthetic
    if type(a.exportable) ~= "boolean" then bad("Property 'attributes.exportable' must be a boolean.", vault) end
    out.exportable = a.exportable
  end
  if type(out.nbf) == "number" and type(out.exp) == "number" and out.nbf > out.exp then
    bad("The 'nbf' attribute must not be later than the 'exp' attribute.", vault) -- synthetic
  end
  return out
end

function M.parse_tags(vault, t)
  if t == nil or t == json.null then return nil end
  if type(t) ~= "table" or (json.is_array(t) and next(t) ~= nil) then
    bad("Property 'tags' must be an object of strings.", vault) -- synthetic
  end
  local n, out = 0, {}
  for k, v in pairs(t) do
    n = n + 1
    if type(k) ~= "string" or type(v) ~= "string" then
      bad("Property 'tags' must be an object of strings.", vault) -- synthetic
    end
    if #k > 256 or #v > 256 then
      bad("Tag names and values must be at most 256 characters long.", vault) -- synthetic
    end
    out[k] = v
  end
  if n > 15 then bad("The number of tags (" .. n .. ") exceeds the maximum of 15.", vault) end -- synthetic
  return out
end

-- ---------------------------------------------------------------- create / import

local RSA_SIZES = { [2048] = true, [3072] = true, [4096] = true }

local function parse_create(vault, b)
  local kty = b.kty
  if kty == nil or kty == json.null then bad("Property 'kty' is required.", vault) end -- synthetic
  if type(kty) ~= "string" then bad("Invalid value for property 'kty'.", vault) end -- synthetic
  local norm = ({ rsa = "RSA", ["rsa-hsm"] = "RSA-HSM", ec = "EC", ["ec-hsm"] = "EC-HSM", oct = "oct",
    ["oct-hsm"] = "oct-HSM" })[kty:lower()]
  -- Key Vault's answer for oct on a vault (seen in the wild); reused for unknown kty values.
  if not norm or norm == "oct" or norm == "oct-HSM" then
    fail(400, "BadParameter", "Invalid kty value: " .. kty, "KeyTypeNotSupported", vault) -- synthetic
  end
  local premium = vault.properties and vault.properties.sku and vault.properties.sku.name == "premium"
  if norm:find("HSM", 1, true) and not premium then
    -- Azure's text; its status and code are not documented (400 BadParameter here)
    bad("Hardware key operation not allowed on standard vault", vault)
  end
  local o = { kty = norm }
  if norm == "RSA" or norm == "RSA-HSM" then
    local size = b.key_size
    if size == nil or size == json.null then size = 2048 end
    if type(size) ~= "number" or not RSA_SIZES[size] then
      bad("Invalid key size '" .. tostring(size) .. "'. RSA keys must be 2048, 3072 or 4096 bits.", vault) -- synthetic
    end
    o.size = math.floor(size)
    local pe = b.public_exponent
    if pe ~= nil and pe ~= json.null and pe ~= 65537 then
      bad("Invalid public exponent '" .. tostring(pe) .. "'. Only 65537 is supported.", vault) -- synthetic
    end
    if b.crv ~= nil and b.crv ~= json.null then
      bad("Property 'crv' is only valid for EC keys.", vault) -- synthetic
    end
  else
    local crv = b.crv
    if crv == nil or crv == json.null then crv = "P-256" end
    if type(crv) ~= "string" or not store.EC_LEN[crv:upper()] then
      bad("Invalid value '" .. tostring(crv) .. "' for property 'crv'.", vault) -- synthetic
    end
    o.crv = crv:upper()
    if b.key_size ~= nil and b.key_size ~= json.null then
      bad("Property 'key_size' is only valid for RSA keys.", vault) -- synthetic
    end
  end
  o.key_ops = M.parse_key_ops(vault, b.key_ops)
  local a = M.parse_attributes(vault, b.attributes)
  o.enabled = a.enabled
  o.nbf = type(a.nbf) == "number" and a.nbf or nil
  o.exp = type(a.exp) == "number" and a.exp or nil
  if a.exportable then
    bad("Exportable keys need a release policy.", vault) -- synthetic
  end
  o.tags = M.parse_tags(vault, b.tags)
  return o
end

--- Adds a version to key `name` (creating the record); conflicts for deleted names.
function M.add_version(_, vault, name, ver)
  local conflict
  local rec = store.update_key(vault.name, name, function(k)
    if k and k.deleted then
      if k.deleted.scheduledPurgeDate > store.now() then
        conflict = store.deletion_state(k)
        return k
      end
      k = nil
    end
    k = k or { name = name, vault = vault.name:lower(), versions = json.array({}) }
    k.versions[#k.versions + 1] = ver
    k.versions = json.array(k.versions)
    return k
  end)
  if conflict == "deleting" then being_deleted(vault) end
  if conflict then deleted_but_recoverable(vault, rec.name) end
  return rec
end

M.route("POST", "/keys/{name}/create", "create", function(req, vault)
  local name = req.params.name
  M.check_name(vault, name)
  local o = parse_create(vault, M.body(req, vault))
  -- Material is generated here (outside any lock), then the version is stored.
  o.jwk = store.generate_jwk(o.kty, o.size, o.crv)
  local ver = store.new_version(o)
  local k = M.add_version(req, vault, name, ver)
  return 200, M.bundle(req, vault, k, ver)
end)

M.route("PUT", "/keys/{name}", "import", function(req, vault)
  local name = req.params.name
  M.check_name(vault, name)
  local b = M.body(req, vault)
  local j = b.key
  if type(j) ~= "table" or json.is_array(j) then bad("Property 'key' is required.", vault) end -- synthetic
  local kty = type(j.kty) == "string" and j.kty:upper()
  if kty ~= "RSA" and kty ~= "RSA-HSM" then
    bad("Only RSA keys can be imported into this emulator.", vault) -- synthetic (emulator limitation)
  end
  local hsm = b.Hsm == true or b.hsm == true or kty == "RSA-HSM"
  local premium = vault.properties.sku and vault.properties.sku.name == "premium"
  if hsm and not premium then
    bad("Hardware key operation not allowed on standard vault", vault)
  end
  for _, f in ipairs({ "n", "e", "d", "p", "q", "dp", "dq", "qi" }) do
    -- synthetic
    if j[f] ~= nil and type(j[f]) ~= "string" then
      bad("Property 'key." .. f .. "' must be a base64url string.", vault)
    end
  end
  if not j.d then bad("The imported key must include its private part ('d').", vault) end -- synthetic
  local pk = store.core().pkey_from_jwk({ kty = "RSA", n = j.n, e = j.e, d = j.d, p = j.p, q = j.q, dp = j.dp,
    dq = j.dq, qi = j.qi })
  if not pk then bad("The key material is not a valid RSA key.", vault) end -- synthetic
  local bits = pk:bits()
  local jwk = pk:jwk(true)
  pk:close()
  jwk.kty = "RSA"
  local a = M.parse_attributes(vault, b.attributes)
  local ver = store.new_version({ kty = hsm and "RSA-HSM" or "RSA", size = bits,
    key_ops = M.parse_key_ops(vault, j.key_ops), enabled = a.enabled,
    nbf = type(a.nbf) == "number" and a.nbf or nil, exp = type(a.exp) == "number" and a.exp or nil,
    tags = M.parse_tags(vault, b.tags), jwk = jwk })
  local k = M.add_version(req, vault, name, ver)
  return 200, M.bundle(req, vault, k, ver)
end)

-- ---------------------------------------------------------------- paging

local function skiptoken_encode(marker)
  return store.core().b64url_encode(json.encode({ NextMarker = marker, TargetLocation = 0 }))
end

local function skiptoken_decode(vault, tok)
  if tok == nil or tok == "" then return nil end
  local raw = store.core().b64url_decode(tok)
  local t = raw and json.decode(raw)
  if type(t) ~= "table" or type(t.NextMarker) ~= "string" then
    bad("The value of '$skiptoken' is not valid.", vault) -- synthetic
  end
  return t.NextMarker
end

--- maxresults 1..25 (default 25).
local function maxresults(req, vault)
  local m = req:arg("maxresults")
  if m == nil or m == "" then return 25 end
  local n = tonumber(m)
  if not n or n ~= math.floor(n) or n < 1 or n > 25 then
    bad("Invalid value '" .. m .. "' for 'maxresults'. The value must be between 1 and 25.", vault) -- synthetic
  end
  return n
end

--- One page of `items` ({marker=, value=}, sorted by marker) after the request's $skiptoken.
function M.page(req, vault, path, items)
  local n = maxresults(req, vault)
  local after = skiptoken_decode(vault, req:arg("$skiptoken"))
  local out = json.array({})
  local last, more = nil, false
  for _, it in ipairs(items) do
    if not after or it.marker > after then
      if #out >= n then more = true break end
      out[#out + 1] = it.value
      last = it.marker
    end
  end
  local next_link = json.null
  if more then
    next_link = "https://" .. req.host .. ":443" .. path .. "?api-version=" .. req:arg("api-version") ..
      "&$skiptoken=" .. skiptoken_encode(last) .. "&maxresults=" .. n
  end
  return { value = out, nextLink = next_link }
end

-- ---------------------------------------------------------------- read

M.route("GET", "/keys", "list", function(req, vault)
  local items = {}
  for _, k in ipairs(store.keys(vault.name)) do
    if not k.deleted then
      k = store.auto_rotate(vault.name, k.name) or k
      items[#items + 1] = { marker = k.name:lower(), value = item(req, vault, k, store.newest(k), false) }
    end
  end
  return 200, M.page(req, vault, "/keys", items)
end)

M.route("GET", "/keys/{name}/versions", "list", function(req, vault)
  local k = M.live_key(req, vault, req.params.name)
  local items = {}
  for i, v in ipairs(k.versions) do
    items[#items + 1] = { marker = string.format("%08d", i), value = item(req, vault, k, v, true) }
  end
  return 200, M.page(req, vault, "/keys/" .. req.params.name .. "/versions", items)
end)

local function get_key(req, vault)
  local k, ver = M.live_key(req, vault, req.params.name, req.params.version)
  return 200, M.bundle(req, vault, k, ver)
end

-- ---------------------------------------------------------------- update

local function update_key(req, vault)
  local name, version = req.params.name, req.params.version
  M.live_key(req, vault, name, version)
  local b = M.body(req, vault, true)
  local ops = M.parse_key_ops(vault, b.key_ops)
  local a = M.parse_attributes(vault, b.attributes)
  local tags = M.parse_tags(vault, b.tags)
  if a.exportable ~= nil then bad("Property 'attributes.exportable' cannot be changed.", vault) end -- synthetic
  local out
  local k = store.update_key(vault.name, name, function(k)
    if not k or k.deleted then return k end
    local ver = store.find_version(k, version)
    if not ver then return k end
    if a.enabled ~= nil then ver.enabled = a.enabled end
    for _, f in ipairs({ "nbf", "exp" }) do
      if a[f] == json.null then ver[f] = nil elseif a[f] then ver[f] = a[f] end
    end
    if ops then ver.key_ops = ops end
    if tags then ver.tags = tags end
    ver.updated = store.now()
    out = ver
    return k
  end)
  if not out then M.key_not_found(vault, name, version) end
  return 200, M.bundle(req, vault, k, out)
end

-- ---------------------------------------------------------------- delete / deleted keys

M.route("DELETE", "/keys/{name}", "delete", function(req, vault)
  local name = req.params.name
  M.check_name(vault, name)
  store.auto_rotate(vault.name, name)
  local now = store.now()
  local days = store.retention_days(vault)
  local rec, done = store.update_key(vault.name, name, function(k)
    if not k or k.deleted then return k, false end
    k.deleted = { deletedDate = now, scheduledPurgeDate = now + days * store.DAY,
      settle_until = require("emu.clock").now() + store.delete_seconds() }
    return k, true
  end)
  if not done then M.key_not_found(vault, name) end
  local b = M.bundle(req, vault, rec, store.newest(rec))
  return 200, M.deleted_fields(req, vault, rec, b)
end)

--- The deleted key record, or raises (404 not deleted / 409 still being deleted when strict).
local function deleted_key(vault, name, strict)
  M.check_name(vault, name)
  local k = store.key(vault.name, name)
  local st = store.deletion_state(k)
  if not st then deleted_not_found(vault, name) end
  if st == "deleting" then
    if strict then being_deleted(vault) end
    deleted_not_found(vault, name)
  end
  return k
end

M.route("GET", "/deletedkeys", "list", function(req, vault)
  local items = {}
  for _, k in ipairs(store.keys(vault.name)) do
    if store.deletion_state(k) == "deleted" then
      local it = item(req, vault, k, store.newest(k), false)
      items[#items + 1] = { marker = k.name:lower(), value = M.deleted_fields(req, vault, k, it) }
    end
  end
  return 200, M.page(req, vault, "/deletedkeys", items)
end)

M.route("GET", "/deletedkeys/{name}", "get", function(req, vault)
  local k = deleted_key(vault, req.params.name, false)
  return 200, M.deleted_fields(req, vault, k, M.bundle(req, vault, k, store.newest(k)))
end)

M.route("POST", "/deletedkeys/{name}/recover", "recover", function(req, vault)
  local k = deleted_key(vault, req.params.name, true)
  k = store.update_key(vault.name, k.name, function(rec)
    if rec then rec.deleted = nil end
    return rec
  end)
  if not k then deleted_not_found(vault, req.params.name) end
  return 200, M.bundle(req, vault, k, store.newest(k))
end)

M.route("DELETE", "/deletedkeys/{name}", "purge", function(req, vault)
  local k = deleted_key(vault, req.params.name, true)
  if store.purge_protected(vault) then
    -- synthetic (the text below)
    fail(403, "Forbidden", "Operation \"purge\" is not allowed because purge protection is enabled for this vault. " ..
      "Key Vault service will automatically purge it after the retention period has passed. Vault: " .. vault.name ..
      ";location=" .. store.location(vault), nil, vault)
  end
  require("emu.state").delete(store.kkey(vault.name, k.name))
  return 204, nil
end)

-- ---------------------------------------------------------------- rotate

M.route("POST", "/keys/{name}/rotate", "rotate", function(req, vault)
  local name = req.params.name
  local k = M.live_key(req, vault, name)
  local cur = store.newest(k)
  local now = store.now()
  local ver = store.new_version({ kty = cur.kty, size = cur.size, crv = cur.crv, key_ops = cur.key_ops,
    tags = json.copy(cur.tags), exp = store.policy_exp(k.policy, now),
    jwk = store.generate_jwk(cur.kty, cur.size, cur.crv) })
  k = M.add_version(req, vault, name, ver)
  return 200, M.bundle(req, vault, k, ver)
end)

-- ---------------------------------------------------------------- crypto

local ALGS = { ["RSA-OAEP"] = true, ["RSA-OAEP-256"] = true, ["RSA1_5"] = true }
local OP_PERM = { wrapkey = "wrapKey", unwrapkey = "unwrapKey", encrypt = "encrypt", decrypt = "decrypt",
  sign = "sign", verify = "verify" }

local function crypto(req, vault, op, version)
  local name = req.params.name
  local k, ver = M.live_key(req, vault, name, version)
  local opname = OP_PERM[op]
  if not ver.enabled then
    -- Text as in Key Vault; innererror code unverified.
    -- synthetic (the text below)
    fail(403, "Forbidden", "Operation " .. opname .. " is not allowed on a disabled key.", "KeyDisabled", vault)
  end
  local allowed = false
  for _, o in ipairs(ver.key_ops or {}) do if o == opname then allowed = true end end
  if not allowed then
    -- synthetic
    fail(403, "Forbidden", "Operation " .. opname .. " is not permitted by this key's key_ops.", nil, vault)
  end
  if op == "sign" or op == "verify" then
    -- synthetic (emulator limitation)
    fail(501, "NotImplemented", "The emulator does not implement sign and verify.", nil, vault)
  end
  local now = store.now()
  local outside = (ver.nbf and now < ver.nbf) or (ver.exp and now >= ver.exp)
  if outside and (op == "wrapkey" or op == "encrypt") then
    fail(403, "Forbidden", "Operation " .. opname .. " is not allowed on a key that is not yet valid or has expired.",
      nil, vault) -- synthetic
  end
  local b = M.body(req, vault)
  if b.alg == nil or b.alg == json.null then bad("Property 'alg' is required.", vault) end -- synthetic
  if type(b.alg) ~= "string" or not ALGS[b.alg] then
    bad("Invalid algorithm '" .. tostring(b.alg) .. "' for an RSA key. Supported: RSA-OAEP, RSA-OAEP-256, " ..
      "RSA1_5.", vault) -- synthetic
  end
  if type(b.value) ~= "string" then bad("Property 'value' is required.", vault) end -- synthetic
  if ver.kty ~= "RSA" and ver.kty ~= "RSA-HSM" then
    bad("Algorithm '" .. b.alg .. "' is not valid for a key of type " .. ver.kty .. ".", vault) -- synthetic
  end
  local data = store.core().b64url_decode(b.value)
  if not data then bad("Property 'value' is not a valid base64url string.", vault) end -- synthetic
  local pk, err = store.pkey(vault.name, k.name, ver)
  if not pk then error("keyvault: no key material: " .. tostring(err)) end
  local out
  if op == "wrapkey" or op == "encrypt" then
    local limit = math.floor(pk:bits() / 8) - (b.alg == "RSA1_5" and 11 or (b.alg == "RSA-OAEP" and 42 or 66))
    if #data > limit or #data == 0 then
      bad("The value is too long for the key and algorithm (at most " .. limit .. " bytes).", vault) -- synthetic
    end
    out = pk:encrypt(b.alg, data)
  else
    out = pk:decrypt(b.alg, data)
    if not out then
      -- Key Vault answers a failed decryption with the Windows text (unverified).
      bad("The parameter is incorrect.\r\n", vault) -- synthetic
    end
  end
  return 200, { kid = M.kid(req, vault, k, ver), value = store.core().b64url_encode(out) }
end

-- POST /keys/{name}/{version}/{op}
M.route("POST", "/keys/{name}/{version}/{op}", function(req)
  local p = OP_PERM[req.params.op]
  return p or "get"
end, function(req, vault)
  if not OP_PERM[req.params.op] then
    fail(404, "NotFound", "The requested operation '" .. req.params.op .. "' was not found.", nil, vault) -- synthetic
  end
  return crypto(req, vault, req.params.op, req.params.version)
end)

-- POST /keys/{name}/{op} (no version: the newest), also create/rotate/backup registered above
M.route("POST", "/keys/{name}/{op}", function(req)
  local op = req.params.op
  if op == "backup" then return "backup" end
  return OP_PERM[op] or "get"
end, function(req, vault)
  local op = req.params.op
  if op == "backup" then return M.backup(req, vault) end
  if not OP_PERM[op] then
    fail(404, "NotFound", "The requested operation '" .. op .. "' was not found.", nil, vault) -- synthetic
  end
  return crypto(req, vault, op, nil)
end)

-- ---------------------------------------------------------------- backup / restore

local BACKUP_MAGIC = "AZCMK-EMULATOR-KEY-BACKUP-1:"

function M.backup(req, vault)
  local k = M.live_key(req, vault, req.params.name)
  for _, v in ipairs(k.versions) do store.ensure_material(vault.name, k.name, v) end
  k = store.key(vault.name, k.name)
  local blob = { name = k.name, versions = k.versions, sub = vault.id:match("^/subscriptions/([^/]+)") }
  return 200, { value = store.core().b64url_encode(BACKUP_MAGIC .. json.encode(blob)) }
end

M.route("POST", "/keys/restore", "restore", function(req, vault)
  local b = M.body(req, vault)
  local raw = type(b.value) == "string" and store.core().b64url_decode(b.value)
  local blob = raw and raw:sub(1, #BACKUP_MAGIC) == BACKUP_MAGIC and json.decode(raw:sub(#BACKUP_MAGIC + 1))
  if type(blob) ~= "table" or type(blob.name) ~= "string" or type(blob.versions) ~= "table" then
    bad("Backup blob contains invalid or corrupt version.", vault) -- synthetic
  end
  local conflict
  local rec = store.update_key(vault.name, blob.name, function(k)
    if k then conflict = k.deleted and "deleted" or "exists" return k end
    return { name = blob.name, vault = vault.name:lower(), versions = json.array(blob.versions) }
  end)
  if conflict == "exists" then
    fail(409, "Conflict", "There was a conflict restoring the key '" .. blob.name .. "'. A key with the same " ..
      "name already exists.", nil, vault) -- synthetic
  elseif conflict then
    deleted_but_recoverable(vault, blob.name)
  end
  return 200, M.bundle(req, vault, rec, store.newest(rec))
end)

-- Rotation policy routes (literal segments) before the generic {version} routes.
require("emu.services.keyvault_policy").register(M)

-- GET/PATCH by name (newest) and by version: after the literal routes above.
M.route("GET", "/keys/{name}", "get", get_key)
M.route("GET", "/keys/{name}/{version}", "get", get_key)
M.route("PATCH", "/keys/{name}", "update", update_key)
M.route("PATCH", "/keys/{name}/{version}", "update", update_key)

-- ---------------------------------------------------------------- control

local function control(method, path, handler)
  router.add({ kind = "control", method = method, path = "/_emulator" .. path, handler = handler, ci = false })
end

--- GET /_emulator/keyaccess?kid=&principal=&trusted=true|false -> access.check_key's answer,
-- plus access.newest_version and access.versions.
control("GET", "/keyaccess", function(req)
  local kid = req:arg("kid")
  if not kid or kid == "" then return errors.arm(400, "BadRequest", "give the key URL as 'kid'") end
  local trusted = req:arg("trusted")
  local res = access.check_key(kid, { principal_id = req:arg("principal"),
    trusted_service = trusted == "true" or trusted == "1" })
  if res.key then
    res.key = { name = res.key.name, vault = res.key.vault, version = res.key.version, kid = res.key.kid,
      kty = res.key.kty, enabled = res.key.enabled, nbf = res.key.nbf, exp = res.key.exp,
      created = res.key.created }
  end
  local newest = access.newest_version(kid)
  local versions = access.versions(kid)
  return 200, { result = res, newest = newest or json.null, versions = versions and json.array(versions) or json.null }
end)

control("GET", "/keyvault", function()
  return 200, { delete_seconds = store.delete_seconds() }
end)

control("POST", "/keyvault", function(req)
  local b = json.decode(req:body() or "")
  if type(b) ~= "table" then return errors.arm(400, "BadRequest", "body must be a JSON object") end
  for k in pairs(b) do
    if k ~= "delete_seconds" then return errors.arm(400, "BadRequest", "unknown setting '" .. tostring(k) .. "'") end
  end
  if b.delete_seconds ~= nil then
    if type(b.delete_seconds) ~= "number" or b.delete_seconds < 0 or b.delete_seconds > 3600 then
      return errors.arm(400, "BadRequest", "'delete_seconds' must be a number of seconds in 0..3600")
    end
    store.set_delete_seconds(b.delete_seconds)
  end
  return 200, { delete_seconds = store.delete_seconds() }
end)

--- On reset: the default settle time again.
function M.seed()
  store.set_delete_seconds(1)
end

return M
