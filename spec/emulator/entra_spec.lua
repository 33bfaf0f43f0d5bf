-- Entra ID v2 token endpoint: client secret, certificate assertions, federated assertions, and
-- each error in Entra's AADSTS envelope.
local E = require("support.emulator")
local core = require("azcmk.core")
local cjson = require("cjson")

describe("Entra ID token endpoint", function()
  local seed, url, bundle
  setup(function()
    E.ensure()
    E.reset()
    seed = E.seed()
    url = "https://login.microsoftonline.com/" .. seed.tenant_id .. "/oauth2/v2.0/token"
    bundle = assert(core.load_pem(io.open(seed.owner.certificate_file):read("*a")))
  end)
  teardown(function()
    E.reset()
    E.assert_no_internal_errors()
  end)

  local function post(form, u)
    return assert(E.request({ method = "POST", url = u or url, form = form }))
  end

  local function secret_form(extra)
    local f = { grant_type = "client_credentials", client_id = seed.owner.app_id,
      client_secret = seed.owner.client_secret, scope = "https://management.azure.com/.default" }
    for k, v in pairs(extra or {}) do if v == false then f[k] = nil else f[k] = v end end
    return f
  end

  local function claims_of(tok)
    local h, p = core.jwt_decode(tok)
    return cjson.decode(h), cjson.decode(p)
  end

  local function assert_aad(res, status, err, code)
    assert.equal(status, res.status, res.body)
    local j = res.json
    assert.equal(err, j.error, res.body)
    assert.same({ code }, j.error_codes)
    assert.truthy(j.error_description:find("^AADSTS" .. code .. ": "), j.error_description)
    assert.truthy(j.error_description:find("Trace ID: ", 1, true))
    assert.truthy(j.timestamp:match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ$"), j.timestamp)
    assert.truthy(j.trace_id and j.correlation_id)
  end

  it("client secret: Bearer token for ARM, numeric expires_in, RS256 with kid, the documented claims", function()
    local res = post(secret_form())
    assert.equal(200, res.status, res.body)
    assert.equal("Bearer", res.json.token_type)
    assert.equal("number", type(res.json.expires_in))
    assert.equal(3599, res.json.expires_in)
    assert.equal(3599, res.json.ext_expires_in)
    local h, c = claims_of(res.json.access_token)
    assert.equal("RS256", h.alg)
    assert.truthy(h.kid)
    assert.equal("https://management.azure.com", c.aud)
    assert.equal(seed.tenant_id, c.tid)
    assert.equal(seed.owner.object_id, c.oid)
    assert.equal(seed.owner.app_id, c.appid)
    assert.equal("https://sts.windows.net/" .. seed.tenant_id .. "/", c.iss)
    assert.truthy(c.exp - c.iat == 3600 and c.nbf <= c.iat)
    -- the signature checks out against the published keys
    local jwks = assert(E.request({ url = "https://login.microsoftonline.com/" .. seed.tenant_id ..
      "/discovery/v2.0/keys" })).json
    local pk = assert(core.pkey_from_jwk(jwks.keys[1]))
    assert.truthy(core.jwt_verify(res.json.access_token, pk, "RS256"))
  end)

  it("echoes client-request-id and has its own request id", function()
    local res = assert(E.request({ method = "POST", url = url, form = secret_form(),
      headers = { ["client-request-id"] = "11111111-2222-3333-4444-555555555555" } }))
    assert.equal("11111111-2222-3333-4444-555555555555", res.headers["client-request-id"])
    assert.truthy(res.headers["x-ms-request-id"])
  end)

  it("Key Vault scope gives an https://vault.azure.net token; other clouds' authorities work", function()
    local res = post(secret_form({ scope = "https://vault.azure.net/.default" }))
    assert.equal(200, res.status)
    assert.equal("https://vault.azure.net", select(2, claims_of(res.json.access_token)).aud)
    for _, host in ipairs({ "login.windows.net", "login.microsoftonline.us", "login.chinacloudapi.cn",
      "login.partner.microsoftonline.cn" }) do
      local scope = host:find("%.us$") and "https://management.usgovcloudapi.net/.default"
        or host:find("%.cn$") and "https://management.chinacloudapi.cn/.default"
        or "https://management.core.windows.net//.default"
      local r = post(secret_form({ scope = scope }),
        "https://" .. host .. "/" .. seed.tenant_id .. "/oauth2/v2.0/token")
      assert.equal(200, r.status, host .. ": " .. r.body)
    end
  end)

  it("v1 endpoint: resource=, string values, expires_on and resource in the answer", function()
    local f = secret_form({ scope = false, resource = "https://management.core.windows.net/" })
    local r = post(f, "https://login.microsoftonline.com/" .. seed.tenant_id .. "/oauth2/token")
    assert.equal(200, r.status, r.body)
    assert.equal("3599", r.json.expires_in)
    assert.equal("https://management.core.windows.net/", r.json.resource)
    assert.equal("string", type(r.json.expires_on))
    assert.equal("https://management.core.windows.net/", select(2, claims_of(r.json.access_token)).aud)
    f.resource = nil
    assert_aad(post(f, "https://login.microsoftonline.com/" .. seed.tenant_id .. "/oauth2/token"), 400,
      "invalid_request", 900144)
  end)

  it("tenant by domain name works", function()
    assert.equal(200, post(secret_form(), "https://login.microsoftonline.com/azcmkemulator.onmicrosoft.com/" ..
      "oauth2/v2.0/token").status)
  end)

  describe("errors", function()
    it("wrong secret: 401 invalid_client AADSTS7000215", function()
      assert_aad(post(secret_form({ client_secret = "nope" })), 401, "invalid_client", 7000215)
    end)
    it("unknown application: 400 unauthorized_client AADSTS700016", function()
      assert_aad(post(secret_form({ client_id = "00000000-1111-2222-3333-444444444444" })), 400,
        "unauthorized_client", 700016)
    end)
    it("unknown tenant: 400 invalid_request AADSTS90002; malformed tenant AADSTS900023", function()
      assert_aad(post(secret_form(), "https://login.microsoftonline.com/00000000-1111-2222-3333-444444444444/" ..
        "oauth2/v2.0/token"), 400, "invalid_request", 90002)
      assert_aad(post(secret_form(), "https://login.microsoftonline.com/nope/oauth2/v2.0/token"), 400,
        "invalid_request", 900023)
    end)
    it("scope: missing AADSTS900144, without /.default AADSTS1002012, two scopes AADSTS70011, unknown resource " ..
      "AADSTS500011", function()
      assert_aad(post(secret_form({ scope = false })), 400, "invalid_request", 900144)
      assert_aad(post(secret_form({ scope = "https://management.azure.com/user_impersonation" })), 400,
        "invalid_scope", 1002012)
      assert_aad(post(secret_form({
        scope = "https://management.azure.com/.default https://vault.azure.net/.default" })),
        400, "invalid_scope", 70011)
      assert_aad(post(secret_form({ scope = "https://example.com/.default" })), 400, "invalid_resource", 500011)
    end)
    it("grant_type missing AADSTS900144, unsupported AADSTS70003; no credential AADSTS7000218", function()
      assert_aad(post(secret_form({ grant_type = false })), 400, "invalid_request", 900144)
      assert_aad(post(secret_form({ grant_type = "password" })), 400, "unsupported_grant_type", 70003)
      assert_aad(post(secret_form({ client_secret = false })), 401, "invalid_client", 7000218)
    end)
    it("GET on the token endpoint: AADSTS900561", function()
      local r = assert(E.request({ url = url }))
      assert_aad(r, 400, "invalid_request", 900561)
    end)
    it("JSON instead of a form is refused", function()
      local r = assert(E.request({ method = "POST", url = url, body = { grant_type = "client_credentials" } }))
      assert_aad(r, 400, "invalid_request", 900144)
    end)
  end)

  describe("certificate assertion", function()
    local function assertion(o)
      o = o or {}
      local now = E.control("GET", "clock").json.now
      now = math.floor(now)
      local header = { alg = o.alg or "PS256", typ = "JWT" }
      if o.x5t ~= false then
        if o.legacy then header.x5t = o.x5t or bundle.cert:x5t()
        else header["x5t#S256"] = o.x5t or bundle.cert:x5t_s256() end
      end
      local claims = { aud = o.aud or url, iss = o.iss or seed.owner.app_id, sub = o.sub or seed.owner.app_id,
        jti = o.jti or core.uuid4(), nbf = o.nbf or now, iat = now, exp = o.exp or (now + 600) }
      return core.jwt_sign(cjson.encode(header), cjson.encode(claims), o.key or bundle.key, header.alg)
    end
    local function form(tok)
      return { grant_type = "client_credentials", client_id = seed.owner.app_id,
        client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion = tok,
        scope = "https://management.azure.com/.default" }
    end

    it("PS256 + x5t#S256 and RS256 + x5t (legacy) both work; appidacr is 2", function()
      local r = post(form(assertion()))
      assert.equal(200, r.status, r.body)
      assert.equal("2", select(2, claims_of(r.json.access_token)).appidacr)
      r = post(form(assertion({ alg = "RS256", legacy = true })))
      assert.equal(200, r.status, r.body)
      -- padded thumbprints (old MSAL) are accepted too
      r = post(form(assertion({ alg = "RS256", legacy = true, x5t = bundle.cert:x5t() .. "=" })))
      assert.equal(200, r.status, r.body)
    end)

    it("a replayed jti is refused", function()
      local tok = assertion({ jti = core.uuid4() })
      assert.equal(200, post(form(tok)).status)
      assert_aad(post(form(tok)), 401, "invalid_client", 50013)
    end)

    it("signature by another key: AADSTS700027; unknown certificate: AADSTS700027", function()
      local other = core.rsa_generate(2048)
      assert_aad(post(form(assertion({ key = other }))), 401, "invalid_client", 700027)
      assert_aad(post(form(assertion({ x5t = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }))), 401, "invalid_client",
        700027)
      assert_aad(post(form(assertion({ x5t = false }))), 401, "invalid_client", 700027)
    end)

    it("expired, not yet valid, or too long-lived: AADSTS700024", function()
      local now = math.floor(E.control("GET", "clock").json.now)
      assert_aad(post(form(assertion({ nbf = now - 2000, exp = now - 1000 }))), 400, "invalid_client", 700024)
      assert_aad(post(form(assertion({ nbf = now + 1000, exp = now + 1500 }))), 400, "invalid_client", 700024)
      assert_aad(post(form(assertion({ exp = now + 86400 }))), 400, "invalid_client", 700024)
      -- simulated clock: a fresh assertion made with real time is "expired" after an advance of 2 h
      local tok = assertion()
      E.control("POST", "clock", { advance = 7200 })
      assert_aad(post(form(tok)), 400, "invalid_client", 700024)
      E.reset()
    end)

    it("wrong audience AADSTS700023; iss/sub not the client AADSTS700021 or no federation match", function()
      assert_aad(post(form(assertion({ aud = "https://login.microsoftonline.com/common/oauth2/v2.0/token" }))), 400,
        "invalid_client", 700023)
      assert_aad(post(form(assertion({ sub = "someone-else" }))), 400, "invalid_client", 700021)
      -- the v1 token URL and the tenant domain are accepted as audience
      assert.equal(200, post(form(assertion({ aud = "https://login.microsoftonline.com/" .. seed.tenant_id ..
        "/oauth2/token" }))).status)
    end)

    it("unsupported alg, malformed JWT, wrong assertion type, secret + assertion", function()
      local hs = core.b64url_encode('{"alg":"HS256","typ":"JWT"}') .. "." .. core.b64url_encode("{}") .. ".sig"
      assert_aad(post(form(hs)), 400, "invalid_client", 5002738)
      assert_aad(post(form("not-a-jwt")), 400, "invalid_client", 50027)
      local f = form(assertion())
      f.client_assertion_type = "urn:something-else"
      assert_aad(post(f), 400, "invalid_request", 90014)
      f = form(assertion())
      f.client_secret = seed.owner.client_secret
      assert_aad(post(f), 401, "invalid_client", 7000218)
    end)
  end)

  describe("federated assertion (workload identity)", function()
    local function form(tok)
      return { grant_type = "client_credentials", client_id = seed.workload.app_id,
        client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion = tok,
        scope = "https://management.azure.com/.default" }
    end

    it("the emulator's token file and POST /_emulator/federated-token both work", function()
      local file_tok = io.open(seed.workload.token_file):read("*a")
      local r = post(form(file_tok))
      assert.equal(200, r.status, r.body)
      local tok = E.control("POST", "federated-token", {}).json.token
      r = post(form(tok))
      assert.equal(200, r.status, r.body)
      assert.equal(seed.owner.object_id, select(2, claims_of(r.json.access_token)).oid)
    end)

    it("subject or audience without a federated credential: AADSTS70021", function()
      local tok = E.control("POST", "federated-token",
        { sub = "system:serviceaccount:other:sa", write = false }).json.token
      assert_aad(post(form(tok)), 400, "invalid_request", 70021)
      tok = E.control("POST", "federated-token", { aud = "api://other", write = false }).json.token
      assert_aad(post(form(tok)), 400, "invalid_request", 70021)
    end)

    it("forged signature: AADSTS700027; expired: AADSTS700024", function()
      local tok = E.control("POST", "federated-token", { write = false }).json.token
      local h, p = core.jwt_decode(tok)
      local forged = core.jwt_sign(h, p, core.rsa_generate(2048), "RS256")
      assert_aad(post(form(forged)), 401, "invalid_client", 700027)
      tok = E.control("POST", "federated-token", { lifetime = 60, write = false }).json.token
      E.control("POST", "clock", { advance = 1000 })
      assert_aad(post(form(tok)), 400, "invalid_client", 700024)
      E.reset()
    end)
  end)
end)
