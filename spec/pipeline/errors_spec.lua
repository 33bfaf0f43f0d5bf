-- azcmk.errors: shaping error bodies (no network), then structured errors from the emulator's
-- real error bodies (ARM, Key Vault, Entra ID).
local H = require("support.pipeline_helper")
local credential = require("azcmk.credential")
local errors = require("azcmk.errors")
local cjson = require("cjson.safe")


describe("azcmk.errors", function()
  it("shapes an ARM error envelope", function()
    local e = errors.from_response({ status = 403, headers = { ["x-ms-request-id"] = "rid-1" },
      body = cjson.encode({ error = { code = "AuthorizationFailed",
        message = "The client does not have authorization" } }) })
    assert.equal("azure", e.kind)
    assert.equal(403, e.status)
    assert.equal("AuthorizationFailed", e.code)
    assert.equal("rid-1", e.request_id)
    assert.truthy(e.hint:find("RBAC"))
    assert.truthy(tostring(e):find("AuthorizationFailed", 1, true))
    assert.is_true(errors.is(e, "AuthorizationFailed"))
    assert.is_true(errors.is(e, 403))
    assert.is_true(errors.is(e, "azure"))
  end)

  it("takes the innermost Key Vault innererror code and keeps the outer one", function()
    local e = errors.from_response({ status = 403, headers = {}, body = cjson.encode({ error = {
      code = "Forbidden", message = "Caller is not authorized",
        innererror = { code = "ForbiddenByRbac" } } }) })
    assert.equal("ForbiddenByRbac", e.code)
    assert.is_true(errors.is(e, "Forbidden"))
    assert.truthy(e.hint:find("RBAC", 1, true))
  end)

  it("shapes Entra ID errors with the AADSTS code and trace id", function()
    local e = errors.from_response({ status = 401, headers = {}, body = cjson.encode({
      error = "invalid_client",
        error_description = "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x",
      error_codes = { 7000215 }, trace_id = "trace-1" }) })
    assert.equal("auth", e.kind)
    assert.equal("AADSTS7000215", e.code)
    assert.equal("AADSTS7000215: Invalid client secret provided.", e.message)
    assert.equal("trace-1", e.request_id)
    assert.truthy(e.hint:find("secret", 1, true))
    assert.is_true(errors.is(e, "invalid_client"))
  end)

  it("finds AADSTS codes in the description when error_codes is missing", function()
    local e = errors.from_response({ status = 400, headers = {}, body = cjson.encode({
      error = "unauthorized_client", error_description = "AADSTS700016: Application not found" }) })
    assert.equal("AADSTS700016", e.code)
    assert.truthy(e.hint)
  end)

  it("reads registry (ACR data plane) error lists", function()
    local e = errors.from_response({ status = 401, headers = {},
      body = '{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}' })
    assert.equal("UNAUTHORIZED", e.code)
    assert.equal("authentication required", e.message)
  end)

  it("gives hints by status for throttling", function()
    local e = errors.from_response({ status = 429, headers = {}, body = "" })
    assert.equal("http", e.kind)
    assert.truthy(e.hint:find("throttled", 1, true))
  end)

  it("never prints tokens or secrets", function()
    local jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    local e = errors.new("auth", { message = "bad token " .. jwt .. " client_secret=hunter2 Bearer abc.def" })
    local s = tostring(e)
    assert.falsy(s:find(jwt, 1, true))
    assert.falsy(s:find("hunter2", 1, true))
    assert.falsy(s:find("abc.def", 1, true))
  end)

  it("raises on unknown kinds", function()
    assert.has_error(function() errors.new("bogus", {}) end)
  end)
end)

describe("structured errors against the emulator", function()
  local seed, lines, owner, noaccess
  setup(function() local _; _, seed = H.env() end)
  teardown(function() H.reset() end)   -- leave the shared emulator as seeded
  before_each(function()
    H.reset(); lines = {}
    owner = H.pipeline({ lines = lines, credential = H.client_secret(seed) })
    noaccess = H.pipeline({ lines = lines, credential = H.client_secret(seed, "noaccess") })
  end)
  after_each(function() H.assert_no_secrets(lines) end)

  it("ARM 403 AuthorizationFailed with request id and hint", function()
    local res, err = noaccess:arm("GET", "/subscriptions/" .. seed.subscription_id .. "/resourcegroups",
      { api_version = "2021-04-01" })
    assert.is_nil(res)
    assert.equal("azure", err.kind)
    assert.equal(403, err.status)
    assert.equal("AuthorizationFailed", err.code)
    assert.truthy(err.request_id)
    assert.truthy(err.hint:find("RBAC", 1, true))
  end)

  it("ARM 404 ResourceGroupNotFound", function()
    local _, err = owner:arm("GET", "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/nope-rg",
      { api_version = "2021-04-01" })
    assert.equal("ResourceGroupNotFound", err.code)
    assert.is_true(errors.is(err, 404))
    assert.truthy(err.hint)
  end)

  it("Entra ID: unknown client is AADSTS700016", function()
    local p = H.pipeline({ lines = lines, credential = credential.client_secret({ tenant_id = seed.tenant_id,
      client_id = "00000000-0000-4000-8000-000000000001", client_secret = "some-secret-value" }) })
    local _, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
    assert.equal("auth", err.kind)
    assert.equal("AADSTS700016", err.code)
    assert.truthy(err.hint)
  end)

  it("Key Vault: a missing key is KeyNotFound, a denied caller ForbiddenByPolicy", function()
    local vault = H.vault(owner, seed)
    local _, err = owner:vault("GET", vault, "/keys/nokey")
    assert.equal("azure", err.kind)
    assert.equal("KeyNotFound", err.code)
    assert.truthy(err.hint:find("recover", 1, true))
    local _, e2 = noaccess:vault("GET", vault, "/keys")
    assert.equal(403, e2.status)
    assert.equal("ForbiddenByPolicy", e2.code)
    assert.is_true(errors.is(e2, "Forbidden"))
    assert.truthy(e2.hint:find("access policy", 1, true))
  end)
end)
