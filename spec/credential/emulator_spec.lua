-- Each credential kind end to end against the emulator (real HTTPS / IMDS over http).
local H = require("support.pipeline_helper")
local credential = require("azcmk.credential")
local errors = require("azcmk.errors")

local ARM = "https://management.azure.com/.default"

describe("credentials against the emulator", function()
  local seed, lines
  setup(function()
    local _
    _, seed = H.env()
  end)
  teardown(function() H.reset() end)   -- leave the shared emulator as seeded
  before_each(function()
    H.reset()
    lines = {}
  end)
  after_each(function() H.assert_no_secrets(lines) end)

  local function list_subscriptions(cred)
    local p = H.pipeline({ credential = cred, lines = lines })
    local res, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
    return res, err, p
  end

  it("building credentials and pipelines does no network I/O", function()
    local seq = H.log_seq()
    local getenv = H.getenv({ IDENTITY_ENDPOINT = seed.appservice.identity_endpoint,
                              IDENTITY_HEADER = seed.appservice.identity_header })
    local creds = { credential.default({ getenv = H.getenv({}) }),
      credential.managed_identity({ getenv = getenv }),
      credential.imds({}), credential.client_certificate({ tenant_id = seed.tenant_id, client_id = "x",
        certificate_path = seed.owner.certificate_file }),
      credential.workload_identity({ getenv = H.getenv({}) }) }
    for _, c in ipairs(creds) do
      H.pipeline({ credential = c, lines = lines })
      c:available()
    end
    for _, e in ipairs(H.log_entries(seq)) do
      assert.equal("/_emulator/", (e.path or ""):sub(1, 11))
    end
  end)

  it("client secret", function()
    local cred = H.client_secret(seed)
    local res, err = list_subscriptions(cred)
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.equal(seed.subscription_id, res.json.value[1].subscriptionId)
  end)

  it("client secret: a wrong secret is an auth error with the AADSTS code and a hint", function()
    local cred = credential.client_secret({ tenant_id = seed.tenant_id, client_id = seed.owner.app_id,
                                            client_secret = "wrong-secret-value" })
    local res, err = list_subscriptions(cred)
    assert.is_nil(res)
    assert.equal("auth", err.kind)
    assert.equal("AADSTS7000215", err.code)
    assert.truthy(err.hint)
    assert.truthy(err.request_id)
    assert.falsy(tostring(err):find("wrong-secret-value", 1, true))
  end)

  for _, case in ipairs({
    { what = "PEM, PS256 (x5t#S256)", file = "certificate_file", alg = "PS256" },
    { what = "PEM, RS256 (x5t)", file = "certificate_file", alg = "RS256" },
    { what = "PKCS#12 with password, PS256", file = "pkcs12_file", alg = "PS256", password = true },
    { what = "PKCS#12 with password, RS256", file = "pkcs12_file", alg = "RS256", password = true },
  }) do
    it("client certificate: " .. case.what, function()
      local cred = credential.client_certificate({ tenant_id = seed.tenant_id, client_id = seed.owner.app_id,
        certificate_path = seed.owner[case.file], alg = case.alg,
        password = case.password and seed.owner.pkcs12_password or nil })
      local res, err = list_subscriptions(cred)
      assert.is_nil(err)
      assert.equal(200, res.status)
    end)
  end

  it("client certificate: a wrong PKCS#12 password is an input error, nothing sent", function()
    local seq = H.log_seq()
    local cred = credential.client_certificate({ tenant_id = seed.tenant_id, client_id = seed.owner.app_id,
      certificate_path = seed.owner.pkcs12_file, password = "not-the-password" })
    local res, err = list_subscriptions(cred)
    assert.is_nil(res)
    assert.equal("input", err.kind)
    assert.equal(0, H.count(H.log_entries(seq), "login.microsoftonline.com"))
  end)

  it("workload identity, re-reading the token file when it changes", function()
    local path = os.tmpname()
    local function write_token()
      local r = H.control("POST", "federated-token", { sub = seed.workload.subject,
        aud = seed.workload.audience })
      local f = assert(io.open(path, "w")); f:write(r.json.token); f:close()
      H.add_secret(r.json.token)
    end
    -- first an assertion the issuer never signed: rejected
    local f = assert(io.open(path, "w")); f:write("not-a-jwt"); f:close()
    local cred = credential.workload_identity({ tenant_id = seed.tenant_id, client_id = seed.workload.app_id,
      token_file_path = path, getenv = H.getenv({ AZURE_FEDERATED_TOKEN_FILE = false }) })
    local p = H.pipeline({ credential = cred, lines = lines })
    local res, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
    assert.is_nil(res)
    assert.equal("auth", err.kind)
    -- the file changes: the next attempt reads it again and succeeds
    write_token()
    res, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
    assert.is_nil(err)
    assert.equal(200, res.status)
    os.remove(path)
  end)

  it("managed identity via IMDS (system-assigned)", function()
    local cred = credential.managed_identity({ getenv = H.getenv({}) })
    local res, err = list_subscriptions(cred)
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.equal("imds", cred.source_name)
  end)

  it("IMDS: user-assigned selection by client_id, object_id and resource id", function()
    -- create a user-assigned identity and attach it to the emulated VM
    local owner = H.pipeline({ credential = H.client_secret(seed), lines = lines })
    local sub = seed.subscription_id
    assert(owner:arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/mi-rg",
      { api_version = "2021-04-01", body = { location = "westeurope" } }))
    local uai = assert(owner:arm("PUT", "/subscriptions/" .. sub
      .. "/resourceGroups/mi-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai1",
      { api_version = "2023-01-31", body = { location = "westeurope" } }))
    local id, client_id, principal_id = uai.json.id, uai.json.properties.clientId,
      uai.json.properties.principalId
    -- not attached yet: IMDS answers 400, the credential is unavailable (not retried)
    local seq = H.log_seq()
    local cred = credential.imds({ client_id = client_id })
    local tok, err = H.pipeline({ credential = cred, lines = lines }):token(ARM)
    assert.is_nil(tok)
    assert.is_true(err.unavailable)
    assert.equal(2, H.count(H.log_entries(seq), "169.254.169.254"))   -- probe + one request, no retry
    H.control("POST", "vm/identities", { id = id })
    for _, sel in ipairs({ { client_id = client_id }, { object_id = principal_id }, { resource_id = id } }) do
      local c = credential.imds(sel)
      local p = H.pipeline({ credential = c, lines = lines })
      local t, terr = p:token(ARM)
      assert.is_nil(terr)
      assert.truthy(t.token)
      local claims = select(2, require("azcmk.crypto").jwt_decode_unverified(t.token))
      assert.equal(principal_id, claims.oid)
    end
  end)

  it("IMDS: retries 410 'updating' linearly and 5xx exponentially", function()
    H.control("POST", "faults", { rules = {
      { host = "169.254.169.254", path = "/metadata/identity", status = 410, count = 3 },
      { host = "169.254.169.254", path = "/metadata/identity", status = 503, count = 1 },
    } })
    local cred = credential.imds({ gone_delay = 0.01, gone_budget = 1 })
    local seq = H.log_seq()
    local p = H.pipeline({ credential = cred, lines = lines })
    local t, err = p:token(ARM)
    assert.is_nil(err)
    assert.truthy(t.token)
    -- probe (faulted 410, which proves IMDS is there) + 410, 410 + 503 + success
    assert.equal(5, H.count(H.log_entries(seq), "169.254.169.254"))
  end)

  it("IMDS: an unreachable endpoint makes the credential unavailable after one short probe", function()
    local cred = credential.imds({ endpoint = "http://127.0.0.1:9", probe_timeout_ms = 300 })
    local p = H.pipeline({ credential = cred, lines = lines })
    local t, err = p:token(ARM)
    assert.is_nil(t)
    assert.is_true(err.unavailable)
    assert.truthy(tostring(err):find("not reachable", 1, true))
  end)

  it("App Service identity endpoint", function()
    local cred = credential.managed_identity({ getenv = H.getenv({
      IDENTITY_ENDPOINT = seed.appservice.identity_endpoint,
        IDENTITY_HEADER = seed.appservice.identity_header }) })
    local res, err = list_subscriptions(cred)
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.equal("app_service", cred.source_name)
    local bad = credential.app_service({ endpoint = seed.appservice.identity_endpoint,
      header = "wrong-header-value" })
    local t, e2 = H.pipeline({ credential = bad, lines = lines }):token(ARM)
    assert.is_nil(t)
    assert.equal("auth", e2.kind)
  end)

  it("static token", function()
    -- any valid token: get one with the owner's secret first
    local getter = H.client_secret(seed)
    getter:attach({ transport = H.transport(), log = H.logger(lines) })
    local tok = assert(getter:get_token(ARM))
    local res, err = list_subscriptions(credential.static({ token = tok.token, expires_on = tok.expires_on }))
    assert.is_nil(err)
    assert.equal(200, res.status)
  end)

  it("default(): a chain failure names every provider and its own reason", function()
    local cred = credential.default({ getenv = H.getenv({
      AZURE_CLIENT_SECRET = false, AZURE_CLIENT_ID = false, AZURE_FEDERATED_TOKEN_FILE = false,
      AZURE_POD_IDENTITY_AUTHORITY_HOST = "http://127.0.0.1:9" }), imds = { probe_timeout_ms = 300 } })
    local p = H.pipeline({ credential = cred, lines = lines })
    local res, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
    assert.is_nil(res)
    assert.equal("auth", err.kind)
    assert.equal("CredentialUnavailable", err.code)
    local s = tostring(err)
    assert.truthy(s:find("EnvironmentCredential: environment variables not fully set", 1, true), s)
    assert.truthy(s:find("WorkloadIdentityCredential: AZURE_FEDERATED_TOKEN_FILE not set", 1, true), s)
    assert.truthy(s:find("ManagedIdentityCredential: IMDS endpoint http://127.0.0.1:9 not reachable", 1,
      true), s)
    assert.truthy(s:find("AzureCliCredential: Azure CLI (az) not found on PATH", 1, true), s)
    assert.equal(4, #err.attempts)
    assert.is_true(errors.is(err, "auth"))
  end)

  it("default(): environment service principal from the emulator's exports", function()
    local p = H.pipeline({ credential = credential.default({ getenv = H.getenv({}) }), lines = lines })
    local res, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
    assert.is_nil(err)
    assert.equal(200, res.status)
  end)
end)
