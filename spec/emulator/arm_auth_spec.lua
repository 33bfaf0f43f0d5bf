-- Resource Manager authentication and authorization: 401s with WWW-Authenticate, 403
-- AuthorizationFailed with Azure's message, on the simulated clock.
local E = require("support.emulator")
local core = require("azcmk.core")
local cjson = require("cjson")

describe("ARM authentication and authorization", function()
  local seed, path
  setup(function()
    E.ensure()
    E.reset()
    seed = E.seed()
    path = "/subscriptions/" .. seed.subscription_id .. "/resourcegroups"
  end)
  teardown(function()
    E.reset()
    E.assert_no_internal_errors()
  end)

  local function get(token, p)
    return E.arm("GET", p or path, nil, { api_version = "2024-11-01", token = token })
  end

  local function www(res)
    local h = res.headers["www-authenticate"]
    assert.truthy(h, "no WWW-Authenticate")
    assert.truthy(h:find('^Bearer authorization_uri="https://login.windows.net/'), h)
    assert.truthy(h:find('error="invalid_token"', 1, true), h)
    return h
  end

  it("no token: 401 AuthenticationFailed", function()
    local r = get(false)
    E.assert_arm_error(r, 401, "AuthenticationFailed")
    assert.equal("Authentication failed. The 'Authorization' header is missing.", r.json.error.message)
    www(r)
  end)

  it("malformed header: 401 AuthenticationFailed", function()
    local r = E.arm("GET", path, nil, { api_version = "2024-11-01", token = false,
      headers = { Authorization = "Basic abc" } })
    E.assert_arm_error(r, 401, "AuthenticationFailed")
  end)

  it("garbage and forged tokens: 401 InvalidAuthenticationToken", function()
    E.assert_arm_error(get("abc.def"), 401, "InvalidAuthenticationToken")
    local h, p = core.jwt_decode(E.arm_token())
    local forged = core.jwt_sign(h, p, core.rsa_generate(2048), "RS256")
    local r = get(forged)
    E.assert_arm_error(r, 401, "InvalidAuthenticationToken")
    www(r)
  end)

  it("wrong audience (a Key Vault token): 401 InvalidAuthenticationTokenAudience", function()
    local r = get(E.token("https://vault.azure.net"))
    local err = E.assert_arm_error(r, 401, "InvalidAuthenticationTokenAudience")
    assert.truthy(err.message:find("'https://vault.azure.net'", 1, true), err.message)
  end)

  it("the classic audience https://management.core.windows.net/ is accepted", function()
    local tok = E.token("https://management.core.windows.net/")
    assert.equal(200, get(tok).status)
  end)

  it("expired after a clock advance: 401 ExpiredAuthenticationToken; 5 minutes of skew tolerated", function()
    local tok = E.token()
    E.control("POST", "clock", { advance = 3600 + 200 })
    assert.equal(200, get(tok).status)
    E.control("POST", "clock", { advance = 200 })
    local r = get(tok)
    local err = E.assert_arm_error(r, 401, "ExpiredAuthenticationToken")
    assert.truthy(err.message:match("^The access token expiry UTC time '%d+/%d+/%d+ %d+:%d%d:%d%d [AP]M' is earlier " ..
      "than current UTC time '%d+/%d+/%d+ %d+:%d%d:%d%d [AP]M'%.$"), err.message)
    www(r)
    E.reset()
  end)

  it("a principal without a role: 403 AuthorizationFailed with Azure's message", function()
    local tok = E.token(nil, "noaccess")
    local r = get(tok)
    local err = E.assert_arm_error(r, 403, "AuthorizationFailed")
    assert.equal("gateway", r.headers["x-ms-failure-cause"])
    local want = string.format("The client '%s' with object id '%s' does not have authorization to perform action " ..
      "'Microsoft.Resources/subscriptions/resourceGroups/read' over scope '/subscriptions/%s' or the scope is " ..
      "invalid. If access was recently granted, please refresh your credentials.", seed.noaccess.app_id,
      seed.noaccess.object_id, seed.subscription_id)
    assert.equal(want, err.message)
    -- nor may it write
    r = E.arm("PUT", path .. "/denied", { location = "westus" }, { api_version = "2024-11-01", token = tok })
    E.assert_arm_error(r, 403, "AuthorizationFailed")
  end)

  it("a role assignment at resource-group scope grants access there only", function()
    local sub = seed.subscription_id
    assert.equal(201, E.arm("PUT", path .. "/scoped", { location = "westus" }, { api_version = "2024-11-01" }).status)
    local ra = "/subscriptions/" .. sub .. "/resourceGroups/scoped/providers/Microsoft.Authorization/" ..
      "roleAssignments/" .. core.uuid4()
    local r = E.arm("PUT", ra, { properties = {
      roleDefinitionId = "/subscriptions/" .. sub .. "/providers/Microsoft.Authorization/roleDefinitions/" ..
        "b24988ac-6180-42a0-ab88-20f7382dd24c", principalId = seed.noaccess.object_id,
      principalType = "ServicePrincipal" } }, { api_version = "2022-04-01" })
    assert.equal(201, r.status, r.body)
    local tok = E.token(nil, "noaccess")
    assert.equal(200, get(tok, path .. "/scoped").status)
    E.assert_arm_error(get(tok), 403, "AuthorizationFailed")
    -- Contributor may not write role assignments
    r = E.arm("PUT", "/subscriptions/" .. sub .. "/resourceGroups/scoped/providers/Microsoft.Authorization/" ..
      "roleAssignments/" .. core.uuid4(), { properties = {
      roleDefinitionId = "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
      principalId = seed.noaccess.object_id } }, { api_version = "2022-04-01", token = tok })
    local err = E.assert_arm_error(r, 403, "AuthorizationFailed")
    assert.truthy(err.message:find("Microsoft.Authorization/roleAssignments/write", 1, true))
  end)

  it("tokens of managed identities are accepted, with their own principal", function()
    local r = assert(E.request({ url = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01" ..
      "&resource=https://management.azure.com/", headers = { Metadata = "true" } }))
    local seq = E.log_seq()
    assert.equal(200, get(r.json.access_token).status)
    local found
    for _, e in ipairs(E.log(seq)) do if e.principal == seed.vm.principal_id then found = true end end
    assert.truthy(found)
  end)

  it("unknown paths are 401 before 404 when unauthenticated", function()
    local r = E.arm("GET", "/subscriptions/" .. seed.subscription_id .. "/providers/Microsoft.Nope/things/x", nil,
      { api_version = "2020-01-01", token = false })
    assert.equal(401, r.status)
    r = E.arm("GET", "/subscriptions/" .. seed.subscription_id .. "/providers/Microsoft.Nope/things/x", nil,
      { api_version = "2020-01-01" })
    E.assert_arm_error(r, 404, "InvalidResourceType")
    assert.truthy(cjson.decode(r.body))
  end)
end)
