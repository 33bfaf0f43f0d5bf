-- Microsoft Graph: the reads the Azure CLI makes for `az keyvault create` (/me, then the
-- service principal of the login's app id) and `az role assignment create --assignee <object
-- id>` (the servicePrincipalNames filter, then directoryObjects/getByIds), in Graph's shapes.
local E = require("support.emulator")

local G = "https://graph.microsoft.com"

local function graph(method, path, body, token)
  return E.request({ method = method, url = G .. path, body = body,
    headers = { Authorization = "Bearer " .. (token or E.token(G)), ["client-request-id"] = "graph-spec-1" } })
end

local function enc(s) return E.urlencode(s) end

local function assert_graph_error(res, status, code)
  assert.equal(status, res.status, res.body)
  assert.equal(code, res.json.error.code, res.body)
  assert.is_string(res.json.error.message)
  local inner = res.json.error.innerError
  assert.is_string(inner["request-id"])
  assert.is_string(inner.date)
end

describe("emulator Microsoft Graph", function()
  local seed
  setup(function()
    E.ensure()
    seed = E.seed()
  end)

  it("refuses /me for app-only tokens with Graph's 400, and missing tokens with its 401", function()
    local res = graph("GET", "/v1.0/me")
    assert_graph_error(res, 400, "BadRequest")
    assert.equal("/me request is only valid with delegated authentication flow.", res.json.error.message)
    assert.equal("graph-spec-1", res.json.error.innerError["client-request-id"])
    res = E.request({ method = "GET", url = G .. "/v1.0/me" })
    assert_graph_error(res, 401, "InvalidAuthenticationToken")
    assert.equal("Access token is empty.", res.json.error.message)
    -- an ARM token is not a Graph token
    res = graph("GET", "/v1.0/servicePrincipals", nil, E.arm_token())
    assert_graph_error(res, 401, "InvalidAuthenticationToken")
  end)

  it("finds the login's service principal by servicePrincipalNames (az keyvault create's fallback)", function()
    local res = graph("GET", "/v1.0/servicePrincipals?$filter=" ..
      enc("servicePrincipalNames/any(c:c eq '" .. seed.owner.app_id .. "')"))
    assert.equal(200, res.status, res.body)
    assert.equal(G .. "/v1.0/$metadata#servicePrincipals", res.json["@odata.context"])
    assert.equal(1, #res.json.value)
    local sp = res.json.value[1]
    assert.equal(seed.owner.object_id, sp.id)
    assert.equal(seed.owner.app_id, sp.appId)
    assert.equal("Application", sp.servicePrincipalType)
    assert.same({ seed.owner.app_id }, sp.servicePrincipalNames)
    -- an object id is not a service principal name: empty, not an error
    res = graph("GET", "/v1.0/servicePrincipals?$filter=" ..
      enc("servicePrincipalNames/any(c:c eq '" .. seed.owner.object_id .. "')"))
    assert.equal(200, res.status)
    assert.equal(0, #res.json.value)
    assert.equal("[]", res.body:match('"value":(%[%])'))
    -- appId eq / displayName filters; unknown filters refused
    res = graph("GET", "/v1.0/servicePrincipals?$filter=" .. enc("appId eq '" .. seed.noaccess.app_id .. "'"))
    assert.equal(seed.noaccess.object_id, res.json.value[1].id)
    res = graph("GET", "/v1.0/servicePrincipals?$filter=" .. enc("accountEnabled eq true"))
    assert_graph_error(res, 400, "BadRequest")
  end)

  it("resolves a managed identity's object id through getByIds, typed (az role assignment --assignee)", function()
    local rg = "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/graph-spec"
    assert.equal(201, E.arm("PUT", rg, { location = "westus" }, { api_version = "2021-04-01" }).status)
    local idn = E.arm("PUT", rg .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/graph-id",
      { location = "westus" }, { api_version = "2023-01-31" })
    assert.equal(201, idn.status, idn.body)
    local oid, cid = idn.json.properties.principalId, idn.json.properties.clientId
    local res = graph("POST", "/v1.0/directoryObjects/getByIds",
      { ids = { oid, "00000000-0000-4000-8000-000000000000" },
        types = { "user", "group", "servicePrincipal", "directoryObjectPartnerReference" } })
    assert.equal(200, res.status, res.body)
    assert.equal(1, #res.json.value)
    local sp = res.json.value[1]
    assert.equal("#microsoft.graph.servicePrincipal", sp["@odata.type"])
    assert.equal(oid, sp.id)
    assert.equal(cid, sp.appId)
    assert.equal("ManagedIdentity", sp.servicePrincipalType)
    assert.equal("isExplicit=True", sp.alternativeNames[1])
    assert.equal(cid, sp.servicePrincipalNames[1])
    -- by id, and the 404 / bad id shapes
    res = graph("GET", "/v1.0/servicePrincipals/" .. oid)
    assert.equal(200, res.status)
    assert.equal("graph-id", res.json.displayName)
    res = graph("GET", "/v1.0/servicePrincipals/00000000-0000-4000-8000-000000000000")
    assert_graph_error(res, 404, "Request_ResourceNotFound")
    res = graph("POST", "/v1.0/directoryObjects/getByIds", { ids = { "not-a-guid" } })
    assert_graph_error(res, 400, "Request_BadRequest")
    -- users: the emulated tenant has none
    res = graph("GET", "/v1.0/users?$filter=" .. enc("userPrincipalName eq 'someone@example.com'"))
    assert.equal(200, res.status)
    assert.equal(0, #res.json.value)
  end)

  it("answers Graph's errors for unknown paths and missing directory permissions", function()
    local res = graph("GET", "/v1.0/frobnicate")
    assert_graph_error(res, 400, "BadRequest")
    assert.equal("Resource not found for the segment 'frobnicate'.", res.json.error.message)
    res = graph("GET", "/v1.0/servicePrincipals", nil, E.token(G, "noaccess"))
    assert_graph_error(res, 403, "Authorization_RequestDenied")
    E.assert_no_internal_errors()
  end)
end)
