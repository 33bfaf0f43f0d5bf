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

  it("maps libcurl failures", function()
    local t = errors.from_transport("SSL peer certificate", "CURLE_PEER_FAILED_VERIFICATION", "h")
    assert.equal("network", t.kind); assert.is_true(t.tls); assert.is_false(t.retryable)
    assert.equal("TLSVerificationFailed", t.code)
    local to = errors.from_transport("timed out", "CURLE_OPERATION_TIMEDOUT")
    assert.equal("timeout", to.kind); assert.is_true(to.retryable)
    local c = errors.from_transport("refused", "CURLE_COULDNT_CONNECT")
    assert.equal("connect", c.phase); assert.is_true(c.retryable)
    local g = errors.from_transport("empty reply", "CURLE_GOT_NOTHING")
    assert.equal("io", g.phase)
    local r = errors.from_transport("refused http", "AZCMK_HTTP_REFUSED")
    assert.equal("input", r.kind)
  end)

  it("raises on unknown kinds", function()
    assert.has_error(function() errors.new("bogus", {}) end)
  end)
end)
