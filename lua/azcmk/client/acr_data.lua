--- The registry's data plane as the caller: the OCI distribution API on
-- https://{login server}/v2/ behind ACR's token service.
--   1. the caller's Entra ID token (the cloud's ARM scope) -> POST /oauth2/exchange
--      (grant_type=access_token) -> the registry's refresh token
--   2. refresh token -> POST /oauth2/token (grant_type=refresh_token, scope
--      repository:<name>:pull[,push] | repository:<name>:delete | registry:catalog:*) -> an
--      access token for what the call does
--   3. the call, with that token as the request's bearer= (docs/pipeline.md: the one way a call
--      brings its own token)
-- Tokens live in a table private to this file, keyed by the client: never in the client
-- object, a log line, an error or __tostring.
--
--   local AcrData = require("azcmk.client.acr_data")
--   local d = AcrData.new(p, { login_server = "myregistry1.azurecr.io" })
--   local cat, err = d:catalog()      -- { repositories = {...}, content_key = kid | nil }
--
-- Every answer carries content_key: the versioned key id that wraps the registry's content,
-- when the service says it (the emulator's X-Emulator-Content-Key); Azure does not (nil).
-- Failures are structured errors whose code a script can branch on:
--   RegistryKeyUnusable  403 DENIED: the registry cannot use its customer-managed key
--   InsufficientScope    401 insufficient_scope: the caller lacks a data-plane role (err.role)
--   RegistryLoginFailed  the token service refused the caller's token
--   RepositoryNotFound, ManifestNotFound, BlobNotFound (404), BlobDigestMismatch
local errors = require("azcmk.errors")
local options = require("azcmk.options")
local url = require("azcmk.url")

local M = {}

M.KEY_HEADER = "x-emulator-content-key"

-- What the data plane wants in Accept for a manifest (OCI and Docker v2, images and indexes).
M.MANIFEST_TYPES = { "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json" }

-- The built-in role that gives an action on a registry's content (Azure's data-plane roles).
M.ROLES = { pull = "AcrPull", catalog = "AcrPull", push = "AcrPush", delete = "AcrDelete" }

-- ACR issues refresh tokens for 3 h and access tokens for 75 min: used well inside that.
local REFRESH_SECONDS, ACCESS_SECONDS = 2 * 3600, 45 * 60

local secrets = setmetatable({}, { __mode = "k" })   -- client -> { refresh, access = {scope -> tok} }

local C = {}
C.__index = C
C.__tostring = function(self) return "azcmk.client.acr_data(" .. self.login_server .. ")" end

--- new(p, {login_server}): a data-plane client of one registry (login server as ARM gives it,
-- e.g. myregistry1.azurecr.io).
function M.new(p, o)
  if type(p) ~= "table" or type(p.send) ~= "function" then
    error("azcmk.client.acr_data.new: a pipeline is required", 2)
  end
  options.check(o or {}, { login_server = "string" }, "azcmk.client.acr_data.new", 3)
  local self = setmetatable({ p = p, login_server = o.login_server:lower(),
    registry = o.login_server:lower():match("^([^.]+)") }, C)
  secrets[self] = { access = {} }
  return self
end

-- ------------------------------------------------------------------ errors

local function acr_code(err)
  return (err.codes and err.codes[1]) or err.code
end

-- error="..." of a Www-Authenticate Bearer challenge
local function challenge_error(raw)
  local h = raw and raw.headers and raw.headers["www-authenticate"]
  return type(h) == "string" and h:match('error="([^"]*)"') or nil
end

local NOT_FOUND = { NAME_UNKNOWN = "RepositoryNotFound", MANIFEST_UNKNOWN = "ManifestNotFound",
  BLOB_UNKNOWN = "BlobNotFound" }

--- The structured error of a failed data-plane call (err, raw from the pipeline); what: the
-- action (pull, push, delete, catalog), subject: what was asked for ("repository r", ...).
function C:_error(err, raw, what, subject)
  if not err.status then return err end
  local code = acr_code(err)
  local f = { status = err.status, codes = err.codes, message = err.message, request_id = err.request_id,
    client_request_id = err.client_request_id, operation = err.operation, details = err.details,
    outcome = err.outcome, param = "registry" }
  local reg = self.registry
  if err.status == 403 and code == "DENIED" then
    f.code = "RegistryKeyUnusable"
    f.hint = "the registry cannot use its customer-managed key, so its content can be neither read nor "
      .. "written: give its identity back the use of the key (`restore{registry = \"" .. reg
      .. "\"}` after a revoke), or see why with `doctor{registry = \"" .. reg .. "\"}`"
    return errors.new("azure", f)
  end
  if err.status == 401 and challenge_error(raw) == "insufficient_scope" then
    local role = M.ROLES[what] or "AcrPull"
    f.code, f.role, f.param = "InsufficientScope", role, nil
    f.message = "the caller may not "
      .. (what == "catalog" and "list the repositories of" or (what .. " in"))
      .. " registry " .. self.login_server .. (subject and (" (" .. subject .. ")") or "")
    f.hint = "assign the caller the data-plane role " .. role .. " on the registry (a role assignment at "
      .. "the registry's scope), or use an identity that has it; role assignments can take a few minutes "
      .. "to apply"
    return errors.new("auth", f)
  end
  if err.status == 401 then
    f.code = "RegistryLoginFailed"
    f.hint = "the registry refused the caller's token: check that the credential is of the registry's tenant "
      .. "and cloud (AZURE_TENANT_ID, AZURE_CLOUD)"
    return errors.new("auth", f)
  end
  if err.status == 404 and NOT_FOUND[code] then
    f.code = NOT_FOUND[code]
    f.message = (subject and (subject .. ": ") or "") .. tostring(err.message)
    f.hint = "check the name: the registry's catalog lists its repositories, and each repository its tags"
    return errors.new("azure", f)
  end
  return err
end

-- ------------------------------------------------------------------ tokens

local function form(t) return url.encode_form(t) end

local FORM = { ["Content-Type"] = "application/x-www-form-urlencoded" }

-- POST /oauth2/<path> with a form: the decoded answer or nil, err. Nothing of it is logged
-- but the allow-listed form fields (azcmk.log), and the tokens never leave this file.
function C:_token_call(path, fields)
  local res, err, raw = self.p:send({ method = "POST",
    url = "https://" .. self.login_server .. "/oauth2/" .. path,
    headers = FORM, body = form(fields), auth = false, idempotent = true })
  if not res then
    local e = self:_error(err, raw)
    if e == err and err.status then
      e = errors.new("auth", { status = err.status, code = "RegistryLoginFailed", codes = err.codes,
        message = "the registry's token service refused: " .. tostring(err.message),
        request_id = err.request_id,
        operation = err.operation, param = "registry",
        hint = "check that the credential is of the registry's tenant and cloud "
          .. "(AZURE_TENANT_ID, AZURE_CLOUD)" })
    end
    return nil, e
  end
  if type(res.json) ~= "table" then
    return nil, errors.new("http", { status = res.status, code = "RegistryLoginFailed",
      request_id = res.request_id,
      message = "the registry's token service answered without a token", param = "registry" })
  end
  return res.json
end

function C:_refresh_token()
  local s = secrets[self]
  local now = self.p.now()
  if s.refresh and now - s.refresh.at < REFRESH_SECONDS then return s.refresh.token end
  local aad, err = self.p:token(self.p.cloud.arm_scope)
  if not aad then return nil, err end
  local j
  j, err = self:_token_call("exchange", { { "grant_type", "access_token" }, { "service", self.login_server },
    { "access_token", aad.token } })
  if not j then return nil, err end
  if type(j.refresh_token) ~= "string" then
    return nil, errors.new("http", { code = "RegistryLoginFailed", param = "registry",
      message = "the registry's /oauth2/exchange answered without a refresh token" })
  end
  s.refresh = { token = j.refresh_token, at = now }
  return j.refresh_token
end

function C:_access_token(scope)
  local s = secrets[self]
  local now = self.p.now()
  local t = s.access[scope]
  if t and now - t.at < ACCESS_SECONDS then return t.token end
  local refresh, err = self:_refresh_token()
  if not refresh then return nil, err end
  local j
  j, err = self:_token_call("token", { { "grant_type", "refresh_token" }, { "service", self.login_server },
    { "scope", scope }, { "refresh_token", refresh } })
  if not j then return nil, err end
  if type(j.access_token) ~= "string" then
    return nil, errors.new("http", { code = "RegistryLoginFailed", param = "registry",
      message = "the registry's /oauth2/token answered without an access token" })
  end
  s.access[scope] = { token = j.access_token, at = now }
  return j.access_token
end

--- Forgets every token of this client (the next call logs in again).
function C:forget()
  secrets[self] = { access = {} }
end

-- ------------------------------------------------------------------ calls

local function scope_of(what, repo)
  if what == "catalog" then return "registry:catalog:*" end
  if what == "push" then return "repository:" .. repo .. ":pull,push" end
  return "repository:" .. repo .. ":" .. what
end

-- One data-plane call as `what` on repository repo: res or nil, err (mapped). A token the
-- registry no longer takes (expired, its signing key changed) is fetched again once.
function C:_call(what, repo, req, subject)
  local scope = scope_of(what, repo)
  req.url = req.url:match("^https://") and req.url or ("https://" .. self.login_server .. req.url)
  for try = 1, 2 do
    local tok, terr = self:_access_token(scope)
    if not tok then return nil, terr end
    req.bearer = tok
    local res, err, raw = self.p:send(req)
    req.bearer = nil
    if res then
      res.content_key = res.headers[M.KEY_HEADER]
      return res
    end
    if not (try == 1 and err.status == 401 and challenge_error(raw) == "invalid_token") then
      return nil, self:_error(err, raw, what, subject), raw
    end
    self:forget()
  end
end

local function seg(repo)
  return (repo:gsub("[^%w%-%._~/]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- A tag or digest as it goes into a path: tags are [A-Za-z0-9_.-], digests algorithm:hex.
local function ref(r)
  if not r:match("^[%w_.:%-]+$") then error("azcmk.client.acr_data: not a tag or digest: " .. r, 3) end
  return r
end

local function check(o, spec, where) return options.check(o, spec, "azcmk.client.acr_data:" .. where, 4) end

--- catalog{n?} -> { repositories = {...}, content_key } or nil, err (the first page, n names).
function C:catalog(o)
  o = o or {}
  check(o, { n = "number?" }, "catalog")
  local res, err = self:_call("catalog", nil, { method = "GET", url = "/v2/_catalog"
    .. (o.n and ("?n=" .. math.floor(o.n)) or "") }, "catalog")
  if not res then return nil, err end
  local j = type(res.json) == "table" and res.json or {}
  return { repositories = type(j.repositories) == "table" and j.repositories or {},
    content_key = res.content_key }
end

--- tags{repository, n?} -> { tags = {...}, content_key } or nil, err.
function C:tags(o)
  check(o, { repository = "string", n = "number?" }, "tags")
  local res, err = self:_call("pull", o.repository, { method = "GET", url = "/v2/" .. seg(o.repository)
    .. "/tags/list" .. (o.n and ("?n=" .. math.floor(o.n)) or "") }, "repository " .. o.repository)
  if not res then return nil, err end
  local j = type(res.json) == "table" and res.json or {}
  return { tags = type(j.tags) == "table" and j.tags or {}, content_key = res.content_key }
end

--- manifest{repository, reference (tag or digest), head?} -> { body (nil for head), json,
-- digest, media_type, size, content_key } or nil, err.
function C:manifest(o)
  check(o, { repository = "string", reference = "string", head = "boolean?" }, "manifest")
  local res, err = self:_call("pull", o.repository, { method = o.head and "HEAD" or "GET",
    url = "/v2/" .. seg(o.repository) .. "/manifests/" .. ref(o.reference),
    headers = { Accept = table.concat(M.MANIFEST_TYPES, ", ") } },
    "manifest " .. o.repository .. ":" .. o.reference)
  if not res then return nil, err end
  local h = res.headers
  return { body = not o.head and res.body or nil, json = not o.head and res.json or nil,
    digest = h["docker-content-digest"], media_type = h["content-type"],
    size = tonumber(h["content-length"] or "") or (res.body and #res.body), content_key = res.content_key }
end

--- put_manifest{repository, reference (tag or digest), body (the manifest's JSON text),
-- media_type?} -> { digest, content_key } or nil, err.
function C:put_manifest(o)
  check(o, { repository = "string", reference = "string", body = "string", media_type = "string?" },
    "put_manifest")
  local res, err = self:_call("push", o.repository, { method = "PUT",
    url = "/v2/" .. seg(o.repository) .. "/manifests/" .. ref(o.reference), body = o.body,
    headers = { ["Content-Type"] = o.media_type or M.MANIFEST_TYPES[1] }, idempotent = true },
    "manifest " .. o.repository .. ":" .. o.reference)
  if not res then return nil, err end
  return { digest = res.headers["docker-content-digest"], content_key = res.content_key }
end

--- delete_manifest{repository, digest} -> true or nil, err (its tags go with it).
function C:delete_manifest(o)
  check(o, { repository = "string", digest = "string" }, "delete_manifest")
  local res, err = self:_call("delete", o.repository, { method = "DELETE",
    url = "/v2/" .. seg(o.repository) .. "/manifests/" .. ref(o.digest), idempotent = true },
    "manifest " .. o.repository .. "@" .. o.digest)
  if not res then return nil, err end
  return true
end

--- The "sha256:<hex>" digest of data.
function M.digest(data)
  local crypto = require("azcmk.crypto")
  return "sha256:" .. crypto.hex(crypto.sha256(data))
end

--- put_blob{repository, data} -> { digest, content_key } or nil, err: a monolithic upload
-- (POST /blobs/uploads/, then PUT <location>&digest= with the bytes).
function C:put_blob(o)
  check(o, { repository = "string", data = "string" }, "put_blob")
  local digest = M.digest(o.data)
  local subject = "blob " .. o.repository .. "@" .. digest
  local res, err, raw = self:_call("push", o.repository, { method = "POST",
    url = "/v2/" .. seg(o.repository) .. "/blobs/uploads/", idempotent = true }, subject)
  if not res then return nil, err, raw end
  local loc = res.headers["location"]
  local lp = loc and url.parse(loc:match("^https://") and loc or ("https://" .. self.login_server .. loc))
  if not lp or lp.host ~= self.login_server then
    return nil, errors.new("http", { status = res.status, code = "UnexpectedAnswer", param = "registry",
      message = "the registry started an upload without a Location on its own host",
      request_id = res.request_id })
  end
  local put = url.origin(lp) .. lp.path .. "?" .. ((lp.query and lp.query ~= "") and (lp.query .. "&") or "")
    .. "digest=" .. url.encode(digest)
  res, err = self:_call("push", o.repository, { method = "PUT", url = put, body = o.data,
    headers = { ["Content-Type"] = "application/octet-stream" }, idempotent = true }, subject)
  if not res then return nil, err end
  return { digest = res.headers["docker-content-digest"] or digest, content_key = res.content_key }
end

--- blob{repository, digest} -> { data, digest, content_key } or nil, err; the bytes are checked
-- against the digest (BlobDigestMismatch).
function C:blob(o)
  check(o, { repository = "string", digest = "string" }, "blob")
  local subject = "blob " .. o.repository .. "@" .. o.digest
  local res, err, raw = self:_call("pull", o.repository, { method = "GET",
    url = "/v2/" .. seg(o.repository) .. "/blobs/" .. ref(o.digest),
    headers = { Accept = "application/octet-stream" } }, subject)
  -- Azure answers a blob GET with a redirect to a signed storage URL: followed without a token
  local loc = not res and raw and raw.status >= 300 and raw.status < 400 and raw.headers["location"]
  if loc and loc:match("^https://") then
    res, err = self.p:send({ method = "GET", url = loc, auth = false,
      headers = { Accept = "application/octet-stream" } })
  end
  if not res then return nil, err end
  local data = res.body or ""
  if M.digest(data) ~= o.digest then
    return nil, errors.new("azure", { status = res.status, code = "BlobDigestMismatch", param = "registry",
      message = subject .. ": the bytes read back do not match the digest", request_id = res.request_id,
      hint = "the registry returned other bytes than it stored; retry, and report it with the request id" })
  end
  return { data = data, digest = o.digest, content_key = res.content_key }
end

M.class = C
return M
