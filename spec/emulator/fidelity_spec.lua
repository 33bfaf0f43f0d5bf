-- Wire fidelity (Azure's documented and recorded answers) where the other specs assert less: ARM's
-- standard response headers, the exact WWW-Authenticate of every ARM 401 (incl. the wrong
-- tenant), Retry-After on every long-running answer, role-assignment conflicts, the
-- identity api-version differences, the discovery documents and IMDS instance metadata.
local E = require("support.emulator")
local W = require("support.cmk_world")
local core = require("azcmk.core")
local cjson = require("cjson")

describe("emulator: wire fidelity", function()
  local seed, sub

  setup(function()
    seed = W.fresh()
    sub = seed.subscription_id
  end)

  teardown(function()
    E.assert_no_internal_errors()
    E.reset()
  end)

  local function readfile(p)
    local f = assert(io.open(p, "rb"))
    local s = f:read("*a")
    f:close()
    return s
  end

  it("ARM answers carry request, correlation, routing and rate-limit headers per verb", function()
    local rg = W.uniq("hdrrg")
    local r = E.arm("PUT", W.rg_path(sub, rg), { location = "westus" },
      { api_version = W.RG_API, headers = { ["x-ms-client-request-id"] = "client-req-1" } })
    assert.equal(201, r.status)
    assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", r.headers["x-ms-request-id"])
    assert.equal("client-req-1", r.headers["x-ms-correlation-request-id"])
    assert.equal("client-req-1", r.headers["x-ms-client-request-id"])
    assert.equal("WESTUS:", r.headers["x-ms-routing-request-id"]:sub(1, 7))
    assert.truthy(tonumber(r.headers["x-ms-ratelimit-remaining-subscription-writes"]))
    r = E.arm("GET", W.rg_path(sub, rg), nil, { api_version = W.RG_API })
    assert.truthy(tonumber(r.headers["x-ms-ratelimit-remaining-subscription-reads"]))
    -- without a client id the correlation id is the request id
    assert.equal(r.headers["x-ms-request-id"], r.headers["x-ms-correlation-request-id"])
    r = E.arm("DELETE", W.rg_path(sub, rg), nil, { api_version = W.RG_API })
    assert.equal(202, r.status)
    assert.truthy(tonumber(r.headers["x-ms-ratelimit-remaining-subscription-deletes"]))
  end)

  it("every ARM 401 carries the exact WWW-Authenticate challenge, also for a token of another tenant", function()
    local p = "/subscriptions/" .. sub .. "/resourcegroups"
    local function challenge(desc)
      return 'Bearer authorization_uri="https://login.windows.net/' .. seed.tenant_id ..
        '", error="invalid_token", error_description="' .. desc .. '"'
    end
    local r = E.arm("GET", p, nil, { api_version = W.RG_API, token = false })
    assert.equal(challenge("The authentication failed because of missing 'Authorization' header."),
      r.headers["www-authenticate"])
    r = E.arm("GET", p, nil, { api_version = W.RG_API, token = false, headers = { Authorization = "Basic x" } })
    assert.equal(challenge("The authentication failed because of invalid 'Authorization' header."),
      r.headers["www-authenticate"])
    r = E.arm("GET", p, nil, { api_version = W.RG_API, token = "a.b.c" })
    assert.equal(challenge("The access token is invalid."), r.headers["www-authenticate"])
    -- a token signed by the emulator's own key, issued for another tenant
    local other = "0a0b0c0d-1111-4222-8333-444455556666"
    local h, body = core.jwt_decode(E.arm_token())
    local claims = cjson.decode(body)
    claims.tid = other
    claims.iss = "https://sts.windows.net/" .. other .. "/"
    local key = assert(core.pkey_from_pem(readfile(E.ensure().AZCMK_EMULATOR_DIR .. "/signing.key")))
    local tok = core.jwt_sign(h, cjson.encode(claims), key, "RS256")
    r = E.arm("GET", p, nil, { api_version = W.RG_API, token = tok })
    local err = E.assert_arm_error(r, 401, "InvalidAuthenticationTokenTenant")
    assert.equal("The access token is from the wrong issuer 'https://sts.windows.net/" .. other .. "/'. It must " ..
      "match the tenant 'https://sts.windows.net/" .. seed.tenant_id .. "/' associated with this subscription. " ..
      "Please use the authority (URL) 'https://login.windows.net/" .. seed.tenant_id .. "' to get the token. " ..
      "Note, if the subscription is transferred to another tenant there is no impact to the services, but " ..
      "information about new tenant could take time to propagate (up to an hour). If you just transferred your " ..
      "subscription and see this error message, please try back later.", err.message)
    assert.equal(challenge(err.message), r.headers["www-authenticate"])
    -- and the second subscription answers the same way (same tenant)
    r = E.arm("GET", "/subscriptions/" .. seed.subscription2_id .. "/resourcegroups", nil,
      { api_version = W.RG_API, token = tok })
    E.assert_arm_error(r, 401, "InvalidAuthenticationTokenTenant")
  end)

  it("long-running answers carry Retry-After (registry, deployment, resource group, vault purge)", function()
    E.control("POST", "config", { lro = { polls = 2, seconds = 0, retry_after = 3 } })
    local w = W.world({ registry = false })
    local reg = W.uniq("rareg")
    local r = E.arm("PUT", W.reg_path(sub, w.rg, reg), W.cmk_body(w.uai, w.kid), { api_version = W.ACR_API })
    assert.equal(201, r.status)
    assert.equal("3", r.headers["retry-after"])
    assert.matches("/operationStatuses/registries%-", r.headers["azure-asyncoperation"])
    local st = E.request({ url = r.headers["azure-asyncoperation"],
      headers = { Authorization = "Bearer " .. E.arm_token() } })
    assert.equal("InProgress", st.json.status)
    assert.equal("3", st.headers["retry-after"])
    W.wait(r)
    -- a deployment
    r = E.arm("PUT", W.rg_path(sub, w.rg) .. "/providers/Microsoft.Resources/deployments/ra1",
      { properties = { mode = "Incremental", template = { ["$schema"] = "x", contentVersion = "1.0.0.0",
        resources = {} } } }, { api_version = "2025-04-01" })
    assert.equal(201, r.status, r.body)
    assert.truthy(r.headers["retry-after"])
    assert.matches("/deployments/ra1/operationStatuses/08584", r.headers["azure-asyncoperation"])
    -- a vault purge (no purge protection)
    local v = W.uniq("kvp")
    local body = { location = "westus", properties = { tenantId = seed.tenant_id,
      sku = { family = "A", name = "standard" }, accessPolicies = {} } }
    assert.equal(200, E.arm("PUT", W.vault_path(sub, w.rg, v), body, { api_version = W.KV_API }).status)
    assert.equal(200, E.arm("DELETE", W.vault_path(sub, w.rg, v), nil, { api_version = W.KV_API }).status)
    r = E.arm("POST", "/subscriptions/" .. sub .. "/providers/Microsoft.KeyVault/locations/westus/deletedVaults/" ..
      v .. "/purge", nil, { api_version = W.KV_API })
    assert.equal(202, r.status, r.body)
    assert.equal("3", r.headers["retry-after"])
    assert.truthy(r.headers["location"])
    -- the resource group delete
    r = E.arm("DELETE", W.rg_path(sub, w.rg), nil, { api_version = W.RG_API })
    assert.equal(202, r.status)
    assert.equal("3", r.headers["retry-after"])
    assert.matches("/operationresults/", r.headers["location"])
    E.control("POST", "config", { lro = { polls = 1, seconds = 0, retry_after = 1 } })
  end)

  it("role assignments: RoleAssignmentExists, RoleAssignmentUpdateNotPermitted, PrincipalNotFound texts", function()
    local w = W.world({ registry = false })
    local scope = W.vault_path(sub, w.rg, w.vault)
    local role = "/subscriptions/" .. sub .. "/providers/Microsoft.Authorization/roleDefinitions/" ..
      W.KV_CRYPTO_SERVICE_ENCRYPTION_USER
    local name = core.uuid4()
    local id = scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. name
    local props = { roleDefinitionId = role, principalId = w.uai.properties.principalId,
      principalType = "ServicePrincipal" }
    local r = E.arm("PUT", id, { properties = props }, { api_version = W.AUTH_API })
    assert.equal(201, r.status, r.body)
    assert.equal("/providers/Microsoft.Authorization/roleDefinitions/" .. W.KV_CRYPTO_SERVICE_ENCRYPTION_USER,
      r.json.properties.roleDefinitionId)
    assert.equal(200, E.arm("PUT", id, { properties = props }, { api_version = W.AUTH_API }).status)
    r = E.arm("PUT", scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. core.uuid4(),
      { properties = props }, { api_version = W.AUTH_API })
    assert.equal("The role assignment already exists.", E.assert_arm_error(r, 409, "RoleAssignmentExists").message)
    r = E.arm("PUT", id, { properties = { roleDefinitionId = role, principalId = seed.owner.object_id } },
      { api_version = W.AUTH_API })
    E.assert_arm_error(r, 400, "RoleAssignmentUpdateNotPermitted")
    local ghost = core.uuid4()
    r = E.arm("PUT", scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. core.uuid4(),
      { properties = { roleDefinitionId = role, principalId = ghost } }, { api_version = W.AUTH_API })
    local err = E.assert_arm_error(r, 400, "PrincipalNotFound")
    assert.equal("Principal " .. ghost:gsub("%-", "") .. " does not exist in the directory " .. seed.tenant_id ..
      ".", err.message:sub(1, #("Principal " .. ghost:gsub("%-", "") .. " does not exist in the directory " ..
      seed.tenant_id .. ".")))
  end)

  it("user-assigned identities: clientSecretUrl in PUTs to 2018-11-30, isolationScope from 2026-05-31", function()
    local rg = W.uniq("uairg")
    W.create_rg(sub, rg)
    local p = "/subscriptions/" .. sub .. "/resourceGroups/" .. rg ..
      "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ver-uai"
    local r = E.arm("PUT", p, { location = "westus" }, { api_version = "2018-11-30" })
    assert.equal(201, r.status)
    assert.equal(p:gsub("/resourceGroups/", "/resourcegroups/"), r.json.id)
    assert.equal(r.json.id, r.headers["location"]) -- the real service's location header: the resource id
    assert.truthy(r.json.properties.clientSecretUrl)
    -- a GET at the same version has none (recorded traffic)
    assert.is_nil(E.arm("GET", p, nil, { api_version = "2018-11-30" }).json.properties.clientSecretUrl)
    r = E.arm("GET", p, nil, { api_version = "2024-11-30" })
    assert.is_nil(r.json.properties.clientSecretUrl)
    assert.is_nil(r.json.properties.isolationScope)
    r = E.arm("GET", p, nil, { api_version = "2026-05-31" })
    assert.equal("None", r.json.properties.isolationScope)
    for _, k in ipairs({ "tenantId", "principalId", "clientId" }) do
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", r.json.properties[k])
    end
  end)

  it("Entra discovery documents and IMDS instance metadata", function()
    local r = E.request({ url = "https://login.microsoftonline.com/" .. seed.tenant_id ..
      "/v2.0/.well-known/openid-configuration" })
    assert.equal(200, r.status)
    assert.equal("https://login.microsoftonline.com/" .. seed.tenant_id .. "/oauth2/v2.0/token",
      r.json.token_endpoint)
    assert.equal("https://login.microsoftonline.com/" .. seed.tenant_id .. "/discovery/v2.0/keys", r.json.jwks_uri)
    r = E.request({ url = "https://login.microsoftonline.com/common/discovery/instance?api-version=1.1&" ..
      "authorization_endpoint=https://login.microsoftonline.com/common/oauth2/v2.0/authorize" })
    assert.equal(200, r.status)
    assert.truthy(r.json.tenant_discovery_endpoint)
    r = E.request({ url = "http://169.254.169.254/metadata/instance?api-version=2021-02-01",
      headers = { Metadata = "true" } })
    assert.equal(200, r.status)
    assert.equal(sub, r.json.compute.subscriptionId)
    assert.equal(seed.vm.resource_id, r.json.compute.resourceId)
    r = E.request({ url = "http://169.254.169.254/metadata/instance?api-version=2021-02-01" })
    assert.equal(400, r.status)
    assert.equal("Required metadata header not specified", r.json.error_description)
  end)
end)
