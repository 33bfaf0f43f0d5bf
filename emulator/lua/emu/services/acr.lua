--- emu.services.acr: the Container Registry data plane on https://{registry}.azurecr.io (.cn, .us):
-- the OCI distribution API (/v2/...) behind ACR's token service (/oauth2/...), with the registry's
-- content encrypted at rest by its content key (emu.acr.content_key, wrapped by the customer's
-- Key Vault key when the registry uses CMK). docs/emulator.md, "Registry data plane", lists what is
-- modelled and where each answer comes from.
--
-- Order of every /v2/ request, as the answers of real registries show it:
--   unknown registry                   -> 404 NOT_FOUND (synthetic: in Azure the name would not resolve)
--   content key cannot be opened       -> 403 DENIED (synthetic text; ACR's is not documented): the
--                                         registry identity cannot unwrap the key (policy or role
--                                         removed, key disabled / deleted, vault deleted, firewall),
--                                         checked live on every request; or the identity is gone
--                                         past its grace (Azure's "identity ... is inactive" text)
--   no / bad / insufficient credential -> 401 UNAUTHORIZED + Www-Authenticate Bearer challenge
--   the operation                      -> the distribution spec's answers with ACR's headers
-- Every answer of a CMK registry whose key opened carries X-Emulator-Content-Key: the versioned key
-- id that wraps the content key (emulator-only header: "the version in use" as a fact).
local router = require("emu.router")
local json = require("emu.json")
local util = require("emu.util")
local content_key = require("emu.acr.content_key")
local blobs = require("emu.acr.blobs")
local repos = require("emu.acr.repos")
local tokens = require("emu.acr.tokens")
local admin = require("emu.acr.admin")

local M = {}

local function C() return require("azcmk.core") end
local function regs() return require("emu.arm.registries") end

-- Headers on every registry answer (recorded ACR traffic, azure-sdk-for-js container-registry recordings).
local BASE_HEADERS = {
  ["Docker-Distribution-Api-Version"] = "registry/2.0",
  ["Access-Control-Expose-Headers"] = { "Docker-Content-Digest", "WWW-Authenticate", "Link",
    "X-Ms-Correlation-Request-Id" },
  ["X-Content-Type-Options"] = "nosniff",
  ["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains",
}
M.KEY_HEADER = "X-Emulator-Content-Key"
M.AUTH_MESSAGE = "authentication required, visit https://aka.ms/acr/authorization for more information."

local function headers(extra, req)
  local h = {}
  for k, v in pairs(BASE_HEADERS) do h[k] = v end
  if req then
    h["X-Ms-Correlation-Request-Id"] = req.correlation_id
    if req._ck and req._ck.kid then h[M.KEY_HEADER] = req._ck.kid end
  end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- ACR writes its error fields in the order code, message, detail: kept byte for byte.
local function acr_error(req, status, code, message, detail, extra)
  local h = headers(extra, req)
  h["Content-Type"] = "application/json; charset=utf-8"
  local dj = type(detail) == "table" and detail._json or json.encode(detail == nil and json.null or detail)
  local body = '{"errors":[{"code":' .. json.encode(code) .. ',"message":' .. json.encode(message) ..
    ',"detail":' .. dj .. '}]}'
  if req and req.method == "HEAD" then return status, nil, h end
  return status, body, h
end
M.error = acr_error

local function fail(...) require("emu.errors").throw(acr_error(...)) end

--- The registry record a data-plane host name designates, or nil.
function M.registry_of(req)
  local name = req.subname
  if type(name) ~= "string" or name == "" then return nil end
  local id = require("emu.state").get("acr:name:" .. name:lower())
  if not id then return nil end
  local rec = regs().current(id)
  if not rec or type(rec.properties) ~= "table" then return nil end
  -- the login server is per cloud: myreg.azurecr.io does not answer as myreg.azurecr.cn
  if type(rec.properties.loginServer) ~= "string" or rec.properties.loginServer:lower() ~= req.host then return nil end
  return rec
end

local WHY = {
  vault_not_found = "the key vault was not found", vault_deleted = "the key vault is deleted",
  key_not_found = "the key was not found", key_deleted = "the key is deleted",
  version_not_found = "the key version was not found", key_disabled = "the key is disabled",
  key_not_rsa = "the key is not an RSA key", firewall = "the key vault firewall denies the registry identity",
  no_access = "the registry identity has no 'Get, Wrap Key, Unwrap Key' access to the key",
  key_expired = "the key version is expired or not yet valid and cannot wrap a new content key",
  unwrap_failed = "the key could not unwrap the registry's content key",
}

--- Opens the registry's content key: the key table, or nil, status, body, headers of the refusal.
function M.open_key(rec, req)
  local ck, reason, msg, info = content_key.open(rec)
  if ck then return ck end
  if reason == "inactive" then return nil, acr_error(req, 403, "DENIED", msg) end
  local kvp = rec.properties.encryption.keyVaultProperties
  -- synthetic: ACR's exact data-plane text for a key it cannot reach is not documented.
  return nil, acr_error(req, 403, "DENIED", string.format("The registry %s is encrypted with a customer-managed key " ..
    "that the registry identity '%s' cannot access (%s): key '%s'. Registry data is inaccessible until access to " ..
    "the key is restored. For more information on customer-managed keys, please visit 'https://aka.ms/acr/cmk'.",
    req.host, tostring(info and info.client_id or kvp.identity), WHY[reason] or tostring(reason),
    tostring(info and info.kid or kvp.versionedKeyIdentifier or kvp.keyIdentifier)))
end

-- ---------------------------------------------------------------- authentication

local function challenge(req, scope, err)
  local host = req.host
  local v = string.format('Bearer realm="https://%s/oauth2/token",service="%s"', host, host)
  if scope then v = v .. ',scope="' .. scope .. '"' end
  if err then v = v .. ',error="' .. err .. '"' end
  return v
end

local function has(access, typ, name, action)
  for _, a in ipairs(access or {}) do
    if a.type == typ and a.name == name then
      for _, x in ipairs(a.actions or {}) do if x == action or x == "*" then return true end end
    end
  end
  return false
end

--- Authenticates and authorizes a /v2/ request. need: nil (the API root: any credential) or
-- {type=, name=, actions = {...}} (all required). Returns the caller {kind, oid, access} or raises 401.
local function authorize(req, rec, need)
  local h = req:header("authorization")
  local caller, bad
  if type(h) == "string" and h:match("^[Bb][Ee][Aa][Rr][Ee][Rr]%s") then
    local claims = tokens.verify(h:match("^%S+%s+(%S+)"), req.host, "access")
    if claims then caller = { kind = "token", access = claims.access, oid = claims.sub } else bad = "invalid_token" end
  elseif type(h) == "string" then
    local user, pw = tokens.basic(h)
    if user and admin.check(rec, user, pw) then
      caller = { kind = "admin" }
    elseif user == tokens.TOKEN_USER then
      local claims = tokens.verify(pw, req.host, "refresh_token")
      if claims then caller = { kind = "aad", oid = claims.sub, tid = claims.tenant } end
    end
    if not caller then bad = "invalid_token" end
  end
  local scope = need and (need.type .. ":" .. need.name .. ":" .. table.concat(need.actions, ",")) or nil
  local detail = json.null
  if need then -- ACR's field order: Type, Name, Action
    local parts = {}
    for i, a in ipairs(need.actions) do
      parts[i] = '{"Type":' .. json.encode(need.type) .. ',"Name":' .. json.encode(need.name) .. ',"Action":' ..
        json.encode(a) .. "}"
    end
    detail = { _json = "[" .. table.concat(parts, ",") .. "]" }
  end
  if not caller then
    fail(req, 401, "UNAUTHORIZED", M.AUTH_MESSAGE, detail, { ["WWW-Authenticate"] = challenge(req, scope, bad) })
  end
  if not need then return caller end
  for _, a in ipairs(need.actions) do
    local ok
    if caller.kind == "token" then
      ok = has(caller.access, need.type, need.name, a)
    else
      ok = tokens.may(caller, rec, need.type == "registry" and "catalog" or a)
    end
    if not ok then
      fail(req, 401, "UNAUTHORIZED", M.AUTH_MESSAGE, detail,
        { ["WWW-Authenticate"] = challenge(req, scope, "insufficient_scope") })
    end
  end
  return caller
end

-- ---------------------------------------------------------------- helpers

local function body_of(req)
  ngx.req.read_body()
  local b = ngx.req.get_body_data()
  if not b then
    local f = ngx.req.get_body_file()
    if f then
      local fh = io.open(f, "rb")
      if fh then b = fh:read("*a") fh:close() end
    end
  end
  req._body_read, req._body = true, b
  return b or ""
end

local function sha256_digest(data) return "sha256:" .. C().hex(C().sha256(data)) end

local function parse_digest(d)
  if type(d) ~= "string" then return nil end
  local hex = d:match("^sha256:(%x+)$")
  if hex and #hex == 64 then return hex:lower() end
  return nil
end

local function invalid_digest(req, d)
  fail(req, 400, "DIGEST_INVALID", "provided digest did not match uploaded content", { Digest = d })
end

local function name_unknown(req, name)
  fail(req, 404, "NAME_UNKNOWN", "repository name not known to registry", { Name = name })
end

local function page(req, list)
  local n = tonumber(req:arg("n") or "")
  local last = req:arg("last")
  local out, more = json.array({}), false
  for _, x in ipairs(list) do
    if not last or last == "" or x > last then
      if n and #out >= n then more = true break end
      out[#out + 1] = x
    end
  end
  return out, more and n and #out > 0 and out[#out] or nil, n
end

-- ---------------------------------------------------------------- API root, catalog, tags

local function api_root(req, rec)
  authorize(req, rec, nil)
  if req.method == "HEAD" then return 200, nil, headers({ ["Content-Length"] = "2" }, req) end
  return 200, "{}", headers({ ["Content-Type"] = "application/json; charset=utf-8" }, req)
end

local function catalog(req, rec)
  authorize(req, rec, { type = "registry", name = "catalog", actions = { "*" } })
  local list, next_last, n = page(req, repos.names(req._ck.store))
  local h = headers({ ["Content-Type"] = "application/json; charset=utf-8" }, req)
  if next_last then h.Link = string.format('</v2/_catalog?last=%s&n=%d>; rel="next"', next_last, n) end
  return 200, { repositories = list }, h
end

local function tags_list(req, rec, name)
  authorize(req, rec, { type = "repository", name = name, actions = { "pull" } })
  local r = repos.get(req._ck.store, name)
  if not r then name_unknown(req, name) end
  local all = {}
  for t in pairs(r.tags or {}) do all[#all + 1] = t end
  table.sort(all)
  local list, next_last, n = page(req, all)
  local h = headers({ ["Content-Type"] = "application/json; charset=utf-8" }, req)
  if next_last then
    h.Link = string.format('</v2/%s/tags/list?last=%s&n=%d>; rel="next"', name, next_last, n)
  end
  return 200, { name = name, tags = list }, h
end

-- ---------------------------------------------------------------- manifests

local MANIFEST_TYPES = {
  ["application/vnd.oci.image.manifest.v1+json"] = "image",
  ["application/vnd.docker.distribution.manifest.v2+json"] = "image",
  ["application/vnd.oci.image.index.v1+json"] = "index",
  ["application/vnd.docker.distribution.manifest.list.v2+json"] = "index",
}

local function resolve_ref(req, r, name, ref)
  if parse_digest(ref) then
    if r and r.manifests[ref] then return ref end
  elseif r and r.tags[ref] then
    return r.tags[ref]
  end
  -- ACR's texts and details (MicrosoftDocs/azure-docs#90060, Azure/acr-cli#459)
  if parse_digest(ref) then
    fail(req, 404, "MANIFEST_UNKNOWN", "manifest " .. ref .. " is not found",
      { _json = '{"Name":' .. json.encode(name) .. ',"Revision":' .. json.encode(ref) .. "}" })
  end
  fail(req, 404, "MANIFEST_UNKNOWN", "manifest tagged by \"" .. ref .. "\" is not found", { Tag = ref })
end

local function manifest_of(req, rec, name, ref, action)
  authorize(req, rec, { type = "repository", name = name, actions = { action } })
  local r = repos.get(req._ck.store, name)
  if not r then name_unknown(req, name) end
  return r, resolve_ref(req, r, name, ref)
end

local function get_manifest(req, rec, name, ref)
  local r, digest = manifest_of(req, rec, name, ref, "pull")
  local m = r.manifests[digest]
  local h = headers({ ["Content-Type"] = m.mediaType, ["Docker-Content-Digest"] = digest,
    ETag = '"' .. digest .. '"', ["Content-Length"] = tostring(m.size) }, req)
  if req.method == "HEAD" then return 200, nil, h end
  local data, err = blobs.get(req._ck, parse_digest(digest))
  if not data then error("acr: manifest " .. digest .. " unreadable: " .. tostring(err)) end
  return 200, data, h
end

local function put_manifest(req, rec, name, ref)
  authorize(req, rec, { type = "repository", name = name, actions = { "push" } })
  local data = body_of(req)
  local doc = json.decode(data)
  if type(doc) ~= "table" or json.is_array(doc) then
    fail(req, 400, "MANIFEST_INVALID", "manifest invalid", { Reason = "the manifest is not a JSON object" })
  end
  local ctype = (req:header("content-type") or ""):match("^%s*([^;%s]+)")
  local media = MANIFEST_TYPES[ctype or ""] and ctype or (type(doc.mediaType) == "string" and doc.mediaType)
    or "application/vnd.oci.image.manifest.v1+json"
  local kind = MANIFEST_TYPES[media]
  if not kind or doc.schemaVersion ~= 2 then
    fail(req, 400, "MANIFEST_INVALID", "manifest invalid", { Reason = "unsupported manifest media type or " ..
      "schemaVersion: " .. tostring(media) })
  end
  local digest = sha256_digest(data)
  if parse_digest(ref) and ref ~= digest then invalid_digest(req, ref) end
  local r = repos.get(req._ck.store, name) or { blobs = {}, manifests = {} }
  local refs = {}
  if kind == "image" then
    if type(doc.config) == "table" then refs[#refs + 1] = doc.config end
    for _, l in ipairs(type(doc.layers) == "table" and doc.layers or {}) do refs[#refs + 1] = l end
  else
    for _, m in ipairs(type(doc.manifests) == "table" and doc.manifests or {}) do refs[#refs + 1] = m end
  end
  -- every missing reference is one error (ACR: MANIFEST_BLOB_UNKNOWN, "blob unknown to registry", the digest
  -- as detail; Azure/azure-sdk-for-net#36076)
  local missing = {}
  for _, d in ipairs(refs) do
    local dg = type(d) == "table" and d.digest
    local known = kind == "image" and (r.blobs or {})[dg] or (r.manifests or {})[dg]
    if not known then
      missing[#missing + 1] = '{"code":' .. (kind == "image" and '"MANIFEST_BLOB_UNKNOWN","message":"blob unknown ' ..
        'to registry"' or '"MANIFEST_UNKNOWN","message":"manifest unknown"') .. ',"detail":' ..
        json.encode(tostring(dg)) .. "}"
    end
  end
  if #missing > 0 then
    return 400, '{"errors":[' .. table.concat(missing, ",") .. "]}",
      headers({ ["Content-Type"] = "application/json; charset=utf-8" }, req)
  end
  blobs.put(req._ck, parse_digest(digest), data)
  repos.blob_stored(req._ck.store, digest, #data)
  repos.edit(req._ck.store, name, function(cur)
    cur.manifests[digest] = { mediaType = media, size = #data }
    if not parse_digest(ref) then cur.tags[ref] = digest end
    return cur
  end)
  return 201, nil, headers({ ["Docker-Content-Digest"] = digest, Location = "/v2/" .. name .. "/manifests/" .. digest },
    req)
end

-- The digests a manifest refers to (config, layers, an index's manifests), or {} when it does
-- not parse.
local function referenced(req, digest)
  local data = blobs.get(req._ck, parse_digest(digest))
  local doc = data and json.decode(data)
  local out = {}
  if type(doc) ~= "table" then return out end
  if type(doc.config) == "table" and doc.config.digest then out[#out + 1] = doc.config.digest end
  for _, list in ipairs({ doc.layers, doc.manifests }) do
    for _, d in ipairs(type(list) == "table" and list or {}) do
      if type(d) == "table" and d.digest then out[#out + 1] = d.digest end
    end
  end
  return out
end

-- Delete by tag removes the tag; delete by digest removes the manifest, its tags and - as ACR
-- does - the layers no other manifest of the repository refers to.
local function delete_manifest(req, rec, name, ref)
  local r, digest = manifest_of(req, rec, name, ref, "delete")
  local by_digest = parse_digest(ref) ~= nil
  local still = {}   -- what the repository's other manifests refer to
  local gone = by_digest and referenced(req, digest) or {}
  if by_digest then
    for d in pairs(r.manifests) do
      if d ~= digest then for _, x in ipairs(referenced(req, d)) do still[x] = true end end
    end
  end
  repos.edit(req._ck.store, name, function(cur)
    if by_digest then
      cur.manifests[digest] = nil
      for t, d in pairs(cur.tags) do if d == digest then cur.tags[t] = nil end end
      for _, d in ipairs(gone) do if not still[d] then cur.blobs[d] = nil end end
    else
      cur.tags[ref] = nil
    end
    return cur
  end)
  return 202, nil, headers({ ["Content-Length"] = "0" }, req)
end

-- ---------------------------------------------------------------- blobs

local function blob(req, rec, name, digest)
  local need = req.method == "DELETE" and "delete" or "pull"
  authorize(req, rec, { type = "repository", name = name, actions = { need } })
  local hex = parse_digest(digest)
  if not hex then fail(req, 400, "DIGEST_INVALID", "invalid digest", { Digest = digest }) end
  local r = repos.get(req._ck.store, name)
  local size = r and (r.blobs[digest] or (r.manifests[digest] and r.manifests[digest].size))
  if not size then fail(req, 404, "BLOB_UNKNOWN", "blob unknown to registry", { Digest = digest }) end
  if req.method == "DELETE" then
    repos.edit(req._ck.store, name, function(cur) cur.blobs[digest] = nil return cur end)
    return 202, nil, headers({ ["Content-Length"] = "0" }, req)
  end
  local h = headers({ ["Content-Type"] = "application/octet-stream", ["Docker-Content-Digest"] = digest,
    ETag = '"' .. digest .. '"', ["Content-Length"] = tostring(size) }, req)
  if req.method == "HEAD" then return 200, nil, h end
  local data, err = blobs.get(req._ck, hex)
  if not data then error("acr: blob " .. digest .. " unreadable: " .. tostring(err)) end
  return 200, data, h
end

-- Upload sessions. Location carries ACR's query shape (_nouploadcache, _state: opaque here).
local function upload_location(name, uuid, offset)
  local st = C().b64url_encode(json.encode({ Name = name, UUID = uuid, Offset = offset }))
  return "/v2/" .. name .. "/blobs/uploads/" .. uuid .. "?_nouploadcache=false&_state=" .. st
end

local function upload_headers(req, name, uuid, size)
  return headers({ Location = upload_location(name, uuid, size), ["Docker-Upload-Uuid"] = uuid,
    Range = "0-" .. math.max(size - 1, 0), ["Content-Length"] = "0" }, req)
end

-- Stores a complete blob (digest checked) and links it into the repository.
local function commit_blob(req, name, digest, data)
  local hex = parse_digest(digest)
  if not hex then fail(req, 400, "DIGEST_INVALID", "invalid digest", { Digest = tostring(digest) }) end
  if sha256_digest(data) ~= "sha256:" .. hex then invalid_digest(req, digest) end
  digest = "sha256:" .. hex
  blobs.put(req._ck, hex, data)
  repos.blob_stored(req._ck.store, digest, #data)
  repos.edit(req._ck.store, name, function(cur) cur.blobs[digest] = #data return cur end)
  return 201, nil, headers({ ["Docker-Content-Digest"] = digest, Location = "/v2/" .. name .. "/blobs/" .. digest,
    ["Content-Length"] = "0" }, req)
end

local function too_big(req, size)
  -- synthetic: an emulator limit (ACR takes layers of many GiB)
  fail(req, 400, "SIZE_INVALID", "blob upload exceeds the emulator's limit of " .. blobs.LIMIT .. " bytes",
    { Size = size })
end

local function start_upload(req, rec, name)
  authorize(req, rec, { type = "repository", name = name, actions = { "pull", "push" } })
  local mount, from = req:arg("mount"), req:arg("from")
  if mount and from and parse_digest(mount) and repos.valid_name(from) then
    local src = repos.get(req._ck.store, from)
    local size = src and src.blobs[mount]
    local ok_pull = pcall(authorize, req, rec, { type = "repository", name = from, actions = { "pull" } })
    if size and ok_pull then
      repos.edit(req._ck.store, name, function(cur) cur.blobs[mount] = size return cur end)
      return 201, nil, headers({ ["Docker-Content-Digest"] = mount, Location = "/v2/" .. name .. "/blobs/" .. mount,
        ["Content-Length"] = "0" }, req)
    end
  end
  local digest = req:arg("digest")
  if digest then
    local data = body_of(req)
    if #data > blobs.LIMIT then too_big(req, #data) end
    return commit_blob(req, name, digest, data)
  end
  local uuid = util.uuid()
  repos.upload_put(req._ck.store, uuid, { repo = name, parts = 0, size = 0, started = req.now })
  return 202, nil, upload_headers(req, name, uuid, 0)
end

local function upload(req, rec, name, uuid)
  authorize(req, rec, { type = "repository", name = name, actions = { "pull", "push" } })
  local store = req._ck.store
  local up = uuid:match("^[%x%-]+$") and repos.upload(store, uuid)
  if not up or up.repo ~= name then
    fail(req, 404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", { UUID = uuid })
  end
  if req.method == "GET" then
    local h = upload_headers(req, name, uuid, up.size)
    return 204, nil, h
  elseif req.method == "DELETE" then
    blobs.drop_upload(store, uuid, up.parts)
    repos.upload_drop(store, uuid)
    return 204, nil, headers(nil, req)
  end
  local data = body_of(req)
  if req.method == "PATCH" then
    local from = (req:header("content-range") or ""):match("^%s*(%d+)%-%d+%s*$")
    if from and tonumber(from) ~= up.size then
      return acr_error(req, 416, "BLOB_UPLOAD_INVALID", "blob upload invalid", { Range = "0-" .. (up.size - 1) },
        { Range = "0-" .. math.max(up.size - 1, 0), Location = upload_location(name, uuid, up.size) })
    end
  end
  if up.size + #data > blobs.LIMIT then too_big(req, up.size + #data) end
  if #data > 0 then
    up = repos.upload_edit(store, uuid, function(cur)
      if not cur then return nil end
      cur.parts, cur.size = cur.parts + 1, cur.size + #data
      return cur
    end)
    if not up then fail(req, 404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", { UUID = uuid }) end
    blobs.put_chunk(req._ck, uuid, up.parts, data)
  end
  if req.method == "PATCH" then return 202, nil, upload_headers(req, name, uuid, up.size) end
  -- PUT ?digest= : the end of the upload
  local digest = req:arg("digest")
  if not digest then fail(req, 400, "DIGEST_INVALID", "digest missing", { Digest = json.null }) end
  local whole, err = blobs.read_upload(req._ck, uuid, up.parts)
  if not whole then error("acr: upload " .. uuid .. " unreadable: " .. tostring(err)) end
  local st, b, h = commit_blob(req, name, digest, whole)
  blobs.drop_upload(store, uuid, up.parts)
  repos.upload_drop(store, uuid)
  return st, b, h
end

-- ---------------------------------------------------------------- dispatch

local function v2(req)
  local rec = M.registry_of(req)
  if not rec then
    -- synthetic: real clients get a DNS failure for an unknown registry name.
    return acr_error(req, 404, "NOT_FOUND", "registry '" .. req.host .. "' not found (in Azure the name would " ..
      "not resolve)")
  end
  local ck, st, body, h = M.open_key(rec, req)
  if not ck then return st, body, h end
  req._ck = ck
  local rest = (req.params.rest or ""):gsub("/+$", "")
  local m = req.method
  if rest == "" then
    if m == "GET" or m == "HEAD" then return api_root(req, rec) end
  elseif rest == "_catalog" then
    if m == "GET" then return catalog(req, rec) end
  else
    local name, tail = rest:match("^(.-)/(tags/list)$")
    local ref, uuid, digest
    if not name then name, ref = rest:match("^(.-)/manifests/([^/]+)$") end
    if not name then name, tail = rest:match("^(.-)/(blobs/uploads)$") end
    if not name then name, uuid = rest:match("^(.-)/blobs/uploads/([^/]+)$") end
    if not name then name, digest = rest:match("^(.-)/blobs/([^/]+)$") end
    if name then
      if not repos.valid_name(name) then
        return acr_error(req, 400, "NAME_INVALID", "invalid repository name", { Name = name })
      end
      if tail == "tags/list" then
        if m == "GET" then return tags_list(req, rec, name) end
      elseif ref then
        if m == "GET" or m == "HEAD" then return get_manifest(req, rec, name, ref) end
        if m == "PUT" then return put_manifest(req, rec, name, ref) end
        if m == "DELETE" then return delete_manifest(req, rec, name, ref) end
      elseif tail == "blobs/uploads" then
        if m == "POST" then return start_upload(req, rec, name) end
      elseif uuid then
        if m == "GET" or m == "PATCH" or m == "PUT" or m == "DELETE" then return upload(req, rec, name, uuid) end
      elseif digest then
        if m == "GET" or m == "HEAD" or m == "DELETE" then return blob(req, rec, name, digest) end
      end
      return acr_error(req, 405, "UNSUPPORTED", "The operation is unsupported.") -- distribution's text
    end
  end
  -- synthetic (the text below)
  return acr_error(req, 404, "NOT_FOUND", "The requested resource '/v2/" .. rest .. "' was not found.")
end

--- Drops a deleted registry's data-plane data: content key, blob files, repositories, admin passwords.
function M.forget(id)
  local store = content_key.store_of(id)
  if store then
    blobs.drop_store(store)
    repos.drop_store(store)
  end
  content_key.forget(id)
  admin.forget(id)
end

--- Start and POST /_emulator/reset: the state is new, so are the blob files.
function M.seed()
  blobs.drop_all()
end

-- Control: GET /_emulator/registries/content-key?id=<registry id> -> {store, kid, alg, wrapped_at, managed_by,
-- dir}: which key version wraps the registry's content key (null kid: service-managed) and where its
-- encrypted blobs are. No key material.
router.add({ kind = "control", method = "GET", path = "/_emulator/registries/content-key", ci = false,
  handler = function(req)
    local id = req:arg("id")
    local rec = type(id) == "string" and regs().current(id)
    if not rec then return require("emu.errors").arm(404, "ResourceNotFound", "registry not found") end
    local d = content_key.describe(rec.id) or {}
    if d.store then d.dir = require("emu.seed").dir .. "/acr/" .. d.store end
    return 200, d
  end })

router.add({ kind = "acr", method = { "GET", "HEAD" }, path = "/v2", handler = v2 })
router.add({ kind = "acr", method = { "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE" }, path = "/v2/{*rest}",
  handler = v2 })

require("emu.services.acr_oauth")

return M
