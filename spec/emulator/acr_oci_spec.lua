-- The registry data plane over real HTTPS on real host names: ACR's token flow (Entra ID token ->
-- /oauth2/exchange -> refresh token -> /oauth2/token -> repository-scoped access token), the OCI
-- distribution API (blobs monolithic and chunked, manifests by tag and digest, tags, catalog),
-- admin user and anonymous pull, and the content encrypted at rest with the customer's key:
-- unreadable after a revoke, readable after restore, re-wrapped by a rotation.
local E = require("support.emulator")
local W = require("support.cmk_world")
local core = require("azcmk.core")
local cjson = require("cjson")

local function digest_of(s) return "sha256:" .. core.hex(core.sha256(s)) end

describe("emulator: registry OCI data plane", function()
  local sub

  setup(function()
    sub = W.fresh().subscription_id
    E.control("POST", "keyvault", { delete_seconds = 0 })
  end)

  teardown(function()
    E.assert_no_internal_errors()
    E.reset()
  end)

  local function url(reg, path) return "https://" .. reg:lower() .. ".azurecr.io" .. path end

  local function req(reg, method, path, opts)
    opts = opts or {}
    return assert(E.request({ method = method, url = url(reg, path), headers = opts.headers, body = opts.body,
      form = opts.form }))
  end

  --- Entra ID token (ARM scope) -> refresh token -> access token for `scope`.
  local function login(reg, scope, who)
    local aad = E.token("https://management.azure.com", who)
    local host = reg:lower() .. ".azurecr.io"
    local x = req(reg, "POST", "/oauth2/exchange", { form = { grant_type = "access_token", service = host,
      access_token = aad } })
    assert.equal(200, x.status, x.body)
    local t = req(reg, "POST", "/oauth2/token", { form = { grant_type = "refresh_token", service = host,
      scope = scope, refresh_token = x.json.refresh_token } })
    assert.equal(200, t.status, t.body)
    return t.json.access_token, x.json.refresh_token
  end

  local function bearer(tok, extra)
    local h = { Authorization = "Bearer " .. tok }
    for k, v in pairs(extra or {}) do h[k] = v end
    return h
  end

  local function claims(jwt)
    return cjson.decode(core.b64url_decode(jwt:match("^[^.]+%.([^.]+)%.")))
  end

  --- Pushes a blob in one POST (?digest=) and returns its digest.
  local function push_blob(reg, tok, repo, data)
    local d = digest_of(data)
    local r = req(reg, "POST", "/v2/" .. repo .. "/blobs/uploads/?digest=" .. d,
      { headers = bearer(tok, { ["Content-Type"] = "application/octet-stream" }), body = data })
    assert.equal(201, r.status, r.body)
    return d
  end

  local function image_manifest(config_d, config_size, layer_d, layer_size)
    return cjson.encode({ schemaVersion = 2, mediaType = "application/vnd.oci.image.manifest.v1+json",
      config = { mediaType = "application/vnd.oci.image.config.v1+json", digest = config_d, size = config_size },
      layers = { { mediaType = "application/vnd.oci.image.layer.v1.tar", digest = layer_d, size = layer_size } } })
  end

  --- A small image (config + one layer) pushed under repo:tag; returns manifest text and digests.
  local function push_image(reg, tok, repo, tag, layer)
    local config = '{"architecture":"amd64","os":"linux"}'
    local cd = push_blob(reg, tok, repo, config)
    local ld = push_blob(reg, tok, repo, layer)
    local m = image_manifest(cd, #config, ld, #layer)
    local r = req(reg, "PUT", "/v2/" .. repo .. "/manifests/" .. tag,
      { headers = bearer(tok, { ["Content-Type"] = "application/vnd.oci.image.manifest.v1+json" }), body = m })
    assert.equal(201, r.status, r.body)
    assert.equal(digest_of(m), r.headers["docker-content-digest"])
    return { manifest = m, digest = digest_of(m), layer = ld, config = cd }
  end

  it("challenges with ACR's Bearer realm, scope and detail, then serves a token from the exchange", function()
    local w = W.world()
    local host = w.reg:lower() .. ".azurecr.io"
    local r = req(w.reg, "GET", "/v2/hello/manifests/latest")
    assert.equal(401, r.status)
    assert.equal('Bearer realm="https://' .. host .. '/oauth2/token",service="' .. host ..
      '",scope="repository:hello:pull"', r.headers["www-authenticate"])
    assert.equal('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required, visit ' ..
      'https://aka.ms/acr/authorization for more information.","detail":[{"Type":"repository","Name":"hello",' ..
      '"Action":"pull"}]}]}', r.body)
    assert.equal("registry/2.0", r.headers["docker-distribution-api-version"])
    local tok, refresh = login(w.reg, "repository:hello:pull,push")
    local c = claims(tok)
    assert.equal(host, c.aud)
    assert.equal("Azure Container Registry", c.iss)
    assert.same({ { type = "repository", name = "hello", actions = { "pull", "push" } } }, c.access)
    assert.equal("refresh_token", claims(refresh).grant_type)
    -- the access token opens /v2/ and the scope it names, not another repository
    assert.equal(200, req(w.reg, "GET", "/v2/", { headers = bearer(tok) }).status)
    r = req(w.reg, "GET", "/v2/other/tags/list", { headers = bearer(tok) })
    assert.equal(401, r.status)
    assert.matches('scope="repository:other:pull",error="insufficient_scope"', r.headers["www-authenticate"], 1, true)
    -- a refresh token is Basic's password for the token user (docker login / az acr login)
    local b = req(w.reg, "GET", "/oauth2/token?service=" .. host .. "&scope=repository:hello:pull",
      { headers = { Authorization = "Basic " .. core.b64_encode("00000000-0000-0000-0000-000000000000:" .. refresh) } })
    assert.equal(200, b.status, b.body)
    assert.same({ "pull" }, claims(b.json.access_token).access[1].actions)
  end)

  it("grants only what ARM RBAC allows and refuses bad Entra ID tokens", function()
    local w = W.world()
    local host = w.reg:lower() .. ".azurecr.io"
    -- the no-access principal gets a token without actions: the registry answers insufficient_scope
    local tok = login(w.reg, "repository:hello:pull", "noaccess")
    assert.same({}, claims(tok).access[1].actions)
    local r = req(w.reg, "GET", "/v2/hello/tags/list", { headers = bearer(tok) })
    assert.equal(401, r.status)
    assert.matches('error="insufficient_scope"', r.headers["www-authenticate"], 1, true)
    -- AcrPull at the registry: pull yes, push no
    local s = E.seed()
    W.assign_role(sub, W.reg_path(sub, w.rg, w.reg), "7f951dda-4ed3-4680-a7ca-43fe172d538d", s.noaccess.object_id)
    tok = login(w.reg, "repository:hello:pull,push", "noaccess")
    assert.same({ "pull" }, claims(tok).access[1].actions)
    -- a Key Vault token, garbage, or another service are refused
    for _, bad in ipairs({ E.token("https://vault.azure.net"), "not-a-token" }) do
      r = req(w.reg, "POST", "/oauth2/exchange", { form = { grant_type = "access_token", service = host,
        access_token = bad } })
      assert.equal(401, r.status, r.body)
      assert.equal("UNAUTHORIZED", r.json.errors[1].code)
    end
    r = req(w.reg, "POST", "/oauth2/exchange", { form = { grant_type = "access_token", service = "other.azurecr.io",
      access_token = E.token() } })
    assert.equal(400, r.status)
    -- the ACR audience is accepted too
    r = req(w.reg, "POST", "/oauth2/exchange", { form = { grant_type = "access_token", service = host,
      access_token = E.token("https://containerregistry.azure.net") } })
    assert.equal(200, r.status, r.body)
  end)

  it("uploads blobs monolithic and in chunks, serves them by HEAD and GET, and keeps them encrypted", function()
    local w = W.world()
    local tok = login(w.reg, "repository:app/web:pull,push,delete")
    local mono = push_blob(w.reg, tok, "app/web", "monolithic layer bytes")
    -- chunked: POST -> 202, PATCH, PATCH, PUT ?digest=
    local r = req(w.reg, "POST", "/v2/app/web/blobs/uploads/", { headers = bearer(tok) })
    assert.equal(202, r.status, r.body)
    assert.equal("0-0", r.headers["range"])
    local uuid = r.headers["docker-upload-uuid"]
    assert.matches("^/v2/app/web/blobs/uploads/" .. uuid:gsub("%-", "%%-") .. "%?_nouploadcache=false&_state=",
      r.headers["location"])
    local part1, part2 = string.rep("A", 70000), "the second chunk"
    r = req(w.reg, "PATCH", r.headers["location"], { headers = bearer(tok, { ["Content-Type"] =
      "application/octet-stream", ["Content-Range"] = "0-69999" }), body = part1 })
    assert.equal(202, r.status, r.body)
    assert.equal("0-69999", r.headers["range"])
    -- a chunk that does not start at the offset: 416
    local bad = req(w.reg, "PATCH", r.headers["location"], { headers = bearer(tok, { ["Content-Range"] = "5-9" }),
      body = "xxxxx" })
    assert.equal(416, bad.status)
    r = req(w.reg, "PATCH", r.headers["location"], { headers = bearer(tok), body = part2 })
    assert.equal(202, r.status)
    local status = req(w.reg, "GET", "/v2/app/web/blobs/uploads/" .. uuid, { headers = bearer(tok) })
    assert.equal(204, status.status)
    assert.equal("0-" .. (#part1 + #part2 - 1), status.headers["range"])
    -- a wrong digest is refused and the upload stays
    local wrong = req(w.reg, "PUT", r.headers["location"] .. "&digest=" .. digest_of("other"),
      { headers = bearer(tok) })
    assert.equal(400, wrong.status)
    assert.equal("DIGEST_INVALID", wrong.json.errors[1].code)
    local whole = part1 .. part2
    r = req(w.reg, "PUT", r.headers["location"] .. "&digest=" .. digest_of(whole), { headers = bearer(tok) })
    assert.equal(201, r.status, r.body)
    assert.equal(digest_of(whole), r.headers["docker-content-digest"])
    assert.equal("/v2/app/web/blobs/" .. digest_of(whole), r.headers["location"])
    -- HEAD: length and digest; GET: the bytes
    r = req(w.reg, "HEAD", "/v2/app/web/blobs/" .. digest_of(whole), { headers = bearer(tok) })
    assert.equal(200, r.status)
    assert.equal(tostring(#whole), r.headers["content-length"])
    assert.equal(digest_of(whole), r.headers["docker-content-digest"])
    r = req(w.reg, "GET", "/v2/app/web/blobs/" .. digest_of(whole), { headers = bearer(tok) })
    assert.equal(whole, r.body)
    assert.equal("monolithic layer bytes", req(w.reg, "GET", "/v2/app/web/blobs/" .. mono,
      { headers = bearer(tok) }).body)
    -- at rest: the file holds neither the plaintext nor anything that opens without the content key
    local ck = E.control("GET", "registries/content-key?id=" .. W.reg_path(sub, w.rg, w.reg)).json
    assert.equal(w.kid, ck.kid)
    local f = assert(io.open(ck.dir .. "/blobs/" .. digest_of(whole):sub(8), "rb"))
    local raw = f:read("*a")
    f:close()
    assert.is_nil(raw:find("AAAAAAAAAAAAAAAA", 1, true))
    assert.is_nil(raw:find("the second chunk", 1, true))
    assert.equal(#whole + 16 + 12 + #"AZCMK-ACR-BLOB-1\n", #raw)
    -- unknown blob and upload
    r = req(w.reg, "GET", "/v2/app/web/blobs/" .. digest_of("nothing"), { headers = bearer(tok) })
    assert.equal(404, r.status)
    assert.equal("BLOB_UNKNOWN", r.json.errors[1].code)
    r = req(w.reg, "PATCH", "/v2/app/web/blobs/uploads/0f0f0f0f-0000-4000-8000-000000000000",
      { headers = bearer(tok), body = "x" })
    assert.equal(404, r.status)
    assert.equal("BLOB_UPLOAD_UNKNOWN", r.json.errors[1].code)
  end)

  it("stores OCI and Docker manifests by tag and digest, lists tags and the catalog, deletes", function()
    local w = W.world()
    local tok = login(w.reg, "repository:hello:pull,push,delete registry:catalog:*")
    local img = push_image(w.reg, tok, "hello", "v1", "layer one")
    -- by tag and by digest, with ACR's headers
    for _, ref in ipairs({ "v1", img.digest }) do
      local r = req(w.reg, "GET", "/v2/hello/manifests/" .. ref, { headers = bearer(tok,
        { Accept = "application/vnd.oci.image.manifest.v1+json" }) })
      assert.equal(200, r.status, r.body)
      assert.equal(img.manifest, r.body)
      assert.equal("application/vnd.oci.image.manifest.v1+json", r.headers["content-type"])
      assert.equal(img.digest, r.headers["docker-content-digest"])
      assert.equal('"' .. img.digest .. '"', r.headers["etag"])
    end
    local head = req(w.reg, "HEAD", "/v2/hello/manifests/v1", { headers = bearer(tok) })
    assert.equal(tostring(#img.manifest), head.headers["content-length"])
    -- a Docker v2 manifest by digest, then tagged
    local dm = cjson.encode({ schemaVersion = 2, mediaType = "application/vnd.docker.distribution.manifest.v2+json",
      config = { mediaType = "application/vnd.docker.container.image.v1+json", digest = img.config, size = 38 },
      layers = { { mediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip", digest = img.layer, size = 9 } } })
    local r = req(w.reg, "PUT", "/v2/hello/manifests/" .. digest_of(dm), { headers = bearer(tok,
      { ["Content-Type"] = "application/vnd.docker.distribution.manifest.v2+json" }), body = dm })
    assert.equal(201, r.status, r.body)
    r = req(w.reg, "PUT", "/v2/hello/manifests/docker", { headers = bearer(tok,
      { ["Content-Type"] = "application/vnd.docker.distribution.manifest.v2+json" }), body = dm })
    assert.equal(201, r.status)
    r = req(w.reg, "GET", "/v2/hello/manifests/docker", { headers = bearer(tok) })
    assert.equal("application/vnd.docker.distribution.manifest.v2+json", r.headers["content-type"])
    -- refusals: digest mismatch, unknown blob, unknown tag (ACR's "tagged by" text)
    r = req(w.reg, "PUT", "/v2/hello/manifests/" .. digest_of("x"), { headers = bearer(tok,
      { ["Content-Type"] = "application/vnd.oci.image.manifest.v1+json" }), body = img.manifest })
    assert.equal("DIGEST_INVALID", r.json.errors[1].code)
    r = req(w.reg, "PUT", "/v2/hello/manifests/broken", { headers = bearer(tok,
      { ["Content-Type"] = "application/vnd.oci.image.manifest.v1+json" }),
      body = image_manifest(img.config, 38, digest_of("absent"), 6) })
    assert.equal(400, r.status)
    assert.equal("MANIFEST_BLOB_UNKNOWN", r.json.errors[1].code)
    r = req(w.reg, "GET", "/v2/hello/manifests/nosuchtag", { headers = bearer(tok) })
    assert.equal(404, r.status)
    assert.equal('manifest tagged by "nosuchtag" is not found', r.json.errors[1].message)
    -- tags and catalog, with n/last paging
    assert.same({ name = "hello", tags = { "docker", "v1" } },
      req(w.reg, "GET", "/v2/hello/tags/list", { headers = bearer(tok) }).json)
    r = req(w.reg, "GET", "/v2/hello/tags/list?n=1", { headers = bearer(tok) })
    assert.same({ "docker" }, r.json.tags)
    assert.equal('</v2/hello/tags/list?last=docker&n=1>; rel="next"', r.headers["link"])
    push_image(w.reg, login(w.reg, "repository:zeta/app:pull,push"), "zeta/app", "1", "z")
    r = req(w.reg, "GET", "/v2/_catalog", { headers = bearer(tok) })
    assert.same({ "hello", "zeta/app" }, r.json.repositories, r.body)
    -- delete by digest: the manifest and its tag go
    r = req(w.reg, "DELETE", "/v2/hello/manifests/" .. img.digest, { headers = bearer(tok) })
    assert.equal(202, r.status, r.body)
    r = req(w.reg, "GET", "/v2/hello/manifests/v1", { headers = bearer(tok) })
    assert.equal("MANIFEST_UNKNOWN", r.json.errors[1].code)
    assert.same({ "docker" }, req(w.reg, "GET", "/v2/hello/tags/list", { headers = bearer(tok) }).json.tags)
    -- layers another manifest still refers to stay; deleting that one too removes them (ACR
    -- deletes the layers unique to a manifest deleted by digest)
    r = req(w.reg, "GET", "/v2/hello/blobs/" .. img.layer, { headers = bearer(tok) })
    assert.equal(200, r.status, r.body)
    r = req(w.reg, "DELETE", "/v2/hello/manifests/" .. digest_of(dm), { headers = bearer(tok) })
    assert.equal(202, r.status, r.body)
    for _, d in ipairs({ img.layer, img.config }) do
      r = req(w.reg, "GET", "/v2/hello/blobs/" .. d, { headers = bearer(tok) })
      assert.equal(404, r.status, r.body)
      assert.equal("BLOB_UNKNOWN", r.json.errors[1].code)
    end
    local pull_only = login(w.reg, "repository:nosuchrepo:pull")
    r = req(w.reg, "GET", "/v2/nosuchrepo/tags/list", { headers = bearer(pull_only) })
    assert.equal("NAME_UNKNOWN", r.json.errors[1].code)
  end)

  it("cannot read the content after a revoke, reads it again after restore, and re-wraps on rotation", function()
    local w = W.world()
    local tok = login(w.reg, "repository:hello:pull,push")
    local img = push_image(w.reg, tok, "hello", "v1", "secret layer")
    local path = "/v2/hello/blobs/" .. img.layer
    local r = req(w.reg, "GET", path, { headers = bearer(tok) })
    assert.equal("secret layer", r.body)
    assert.equal(w.kid, r.headers["x-emulator-content-key"])
    -- revoke: pull and push fail with 403 DENIED
    local principal = w.uai.properties.principalId
    W.policy(sub, w.rg, w.vault, "remove", principal)
    r = req(w.reg, "GET", path, { headers = bearer(tok) })
    assert.equal(403, r.status)
    assert.equal("DENIED", r.json.errors[1].code)
    assert.matches("customer-managed key", r.json.errors[1].message, 1, true)
    r = req(w.reg, "POST", "/v2/hello/blobs/uploads/?digest=" .. digest_of("new"),
      { headers = bearer(tok), body = "new" })
    assert.equal(403, r.status)
    -- restore
    W.policy(sub, w.rg, w.vault, "add", principal)
    assert.equal("secret layer", req(w.reg, "GET", path, { headers = bearer(tok) }).body)
    -- rotation by PATCH to a new version: the content key is re-wrapped under it
    local kid2 = W.create_key(w.vault, "cmkkey")
    r = E.arm("PATCH", W.reg_path(sub, w.rg, w.reg), { properties = { encryption = { keyVaultProperties = {
      keyIdentifier = kid2, identity = w.uai.properties.clientId } } } }, { api_version = W.ACR_API })
    assert.equal(201, r.status, r.body)
    assert.equal("Succeeded", W.wait(r).status)
    local ck = E.control("GET", "registries/content-key?id=" .. W.reg_path(sub, w.rg, w.reg)).json
    assert.equal(kid2, ck.kid)
    -- the old version can go: the content is wrapped by the new one
    W.set_key_enabled(w.kid, false)
    r = req(w.reg, "GET", path, { headers = bearer(tok) })
    assert.equal(200, r.status, r.body)
    assert.equal("secret layer", r.body)
    assert.equal(kid2, r.headers["x-emulator-content-key"])
    -- the new version disabled: denied, naming it
    W.set_key_enabled(kid2, false)
    r = req(w.reg, "GET", path, { headers = bearer(tok) })
    assert.equal(403, r.status)
    assert.matches(kid2, r.json.errors[1].message, 1, true)
  end)

  it("an explicit rotation re-wraps even when the old version was disabled first; the pickup does not", function()
    local w = W.world({ versionless = true })
    local tok = login(w.reg, "repository:hello:pull,push")
    local img = push_image(w.reg, tok, "hello", "v1", "stuck then moved")
    local kid2 = W.create_key(w.vault, "cmkkey")
    W.set_key_enabled(w.kid, false)
    E.control("POST", "clock", { advance = 7200 })
    W.reset_tokens()
    tok = login(w.reg, "repository:hello:pull")
    local r = req(w.reg, "GET", "/v2/hello/blobs/" .. img.layer, { headers = bearer(tok) })
    assert.equal(403, r.status) -- stuck on the disabled version: the pickup needs both enabled
    r = E.arm("PATCH", W.reg_path(sub, w.rg, w.reg), { properties = { encryption = { keyVaultProperties = {
      keyIdentifier = W.versionless(w.kid), identity = w.uai.properties.clientId } } } }, { api_version = W.ACR_API })
    assert.equal("Succeeded", W.wait(r).status)
    r = req(w.reg, "GET", "/v2/hello/blobs/" .. img.layer, { headers = bearer(tok) })
    assert.equal(200, r.status, r.body)
    assert.equal("stuck then moved", r.body)
    assert.equal(kid2, r.headers["x-emulator-content-key"])
  end)

  it("follows a versionless key to its new version within the hour and re-wraps the content key", function()
    local w = W.world({ versionless = true })
    local tok = login(w.reg, "repository:hello:pull,push")
    local img = push_image(w.reg, tok, "hello", "v1", "auto rotated")
    local kid2 = W.create_key(w.vault, "cmkkey")
    local r = req(w.reg, "GET", "/v2/hello/blobs/" .. img.layer, { headers = bearer(tok) })
    assert.equal(w.kid, r.headers["x-emulator-content-key"]) -- not yet picked up
    E.control("POST", "clock", { advance = 3600 })
    W.reset_tokens()
    tok = login(w.reg, "repository:hello:pull")
    r = req(w.reg, "GET", "/v2/hello/blobs/" .. img.layer, { headers = bearer(tok) })
    assert.equal(200, r.status, r.body)
    assert.equal("auto rotated", r.body)
    assert.equal(kid2, r.headers["x-emulator-content-key"])
  end)

  it("serves the admin user (listCredentials) and anonymous pull when the registry allows them", function()
    local w = W.world()
    local host = w.reg:lower() .. ".azurecr.io"
    local rid = W.reg_path(sub, w.rg, w.reg)
    local r = E.arm("POST", rid .. "/listCredentials", nil, { api_version = W.ACR_API })
    assert.equal(400, r.status)
    assert.equal("AdminUserDisabled", r.json.error.code)
    r = E.arm("PATCH", rid, { properties = { adminUserEnabled = true, anonymousPullEnabled = true } },
      { api_version = W.ACR_API })
    W.wait(r)
    r = E.arm("POST", rid .. "/listCredentials", nil, { api_version = W.ACR_API })
    assert.equal(200, r.status, r.body)
    assert.equal(w.reg, r.json.username)
    assert.equal("password", r.json.passwords[1].name)
    local basic = "Basic " .. core.b64_encode(w.reg .. ":" .. r.json.passwords[2].value)
    local t = req(w.reg, "GET", "/oauth2/token?service=" .. host .. "&scope=repository:pub:pull,push",
      { headers = { Authorization = basic } })
    assert.equal(200, t.status, t.body)
    local img = push_image(w.reg, t.json.access_token, "pub", "latest", "public layer")
    -- a wrong password: 401
    r = req(w.reg, "GET", "/oauth2/token?service=" .. host .. "&scope=repository:pub:pull",
      { headers = { Authorization = "Basic " .. core.b64_encode(w.reg .. ":wrong") } })
    assert.equal(401, r.status)
    -- anonymous (the SDK's anonymous client: grant_type=password without credentials): pull, not push
    r = req(w.reg, "POST", "/oauth2/token", { form = { grant_type = "password", service = host,
      scope = "repository:pub:pull,push" } })
    assert.equal(200, r.status, r.body)
    assert.same({ "pull" }, claims(r.json.access_token).access[1].actions)
    r = req(w.reg, "GET", "/v2/pub/manifests/latest", { headers = bearer(r.json.access_token) })
    assert.equal(img.manifest, r.body)
    -- anonymous pull off again: the token service refuses anonymous callers
    W.wait(E.arm("PATCH", rid, { properties = { anonymousPullEnabled = false } }, { api_version = W.ACR_API }))
    r = req(w.reg, "GET", "/oauth2/token?service=" .. host .. "&scope=repository:pub:pull")
    assert.equal(401, r.status)
  end)
end)
