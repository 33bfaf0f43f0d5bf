-- Resource Manager resource types: resource groups, user-assigned identities, role
-- definitions and assignments, the generic resource list, subscriptions; api-versions,
-- malformed and oversized bodies. Azure's status and envelope each time, never a 500.
local E = require("support.emulator")
local core = require("azcmk.core")

describe("ARM resources", function()
  local seed, sub, S
  setup(function()
    E.ensure()
    E.reset()
    seed = E.seed()
    sub = seed.subscription_id
    S = "/subscriptions/" .. sub
    E.control("POST", "config", { lro = { retry_after = 0 } })
  end)
  teardown(function()
    E.reset()
    E.assert_no_internal_errors()
  end)

  local RG_API, MI_API, RA_API = "2024-11-01", "2024-11-30", "2022-04-01"
  local function rg(method, name, body, api)
    return E.arm(method, S .. "/resourcegroups/" .. name, body, { api_version = api or RG_API })
  end
  local function mi_path(rgname, name)
    return S .. "/resourceGroups/" .. rgname .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" .. name
  end

  describe("resource groups", function()
    it("PUT 201 then 200, GET, HEAD, PATCH tags, list", function()
      local r = rg("PUT", "rg-a", { location = "West US", tags = { env = "test" } })
      assert.equal(201, r.status, r.body)
      assert.same({ id = S .. "/resourceGroups/rg-a", name = "rg-a", type = "Microsoft.Resources/resourceGroups",
        location = "westus", tags = { env = "test" }, properties = { provisioningState = "Succeeded" } }, r.json)
      assert.truthy(r.headers["x-ms-request-id"])
      assert.truthy(r.headers["x-ms-correlation-request-id"])
      assert.truthy(r.headers["x-ms-ratelimit-remaining-subscription-writes"])
      assert.equal(200, rg("PUT", "rg-a", { location = "westus" }).status)
      r = E.arm("GET", S .. "/RESOURCEGROUPS/RG-A", nil, { api_version = RG_API }) -- ARM ignores path case
      assert.equal(200, r.status)
      assert.equal("rg-a", r.json.name)
      assert.equal(204, rg("HEAD", "rg-a").status)
      assert.equal(404, rg("HEAD", "rg-none").status)
      r = rg("PATCH", "rg-a", { tags = { env = "prod" } })
      assert.equal(200, r.status)
      assert.same({ env = "prod" }, r.json.tags)
      r = E.arm("GET", S .. "/resourcegroups", nil, { api_version = RG_API })
      assert.equal(200, r.status)
      local names = {}
      for _, g in ipairs(r.json.value) do names[g.name] = true end
      assert.truthy(names["rg-a"])
    end)

    it("echoes x-ms-client-request-id as the correlation id", function()
      local r = E.arm("GET", S .. "/resourcegroups/rg-a", nil, { api_version = RG_API,
        headers = { ["x-ms-client-request-id"] = "abcdef01-2345-6789-abcd-ef0123456789" } })
      assert.equal("abcdef01-2345-6789-abcd-ef0123456789", r.headers["x-ms-correlation-request-id"])
      assert.equal("abcdef01-2345-6789-abcd-ef0123456789", r.headers["x-ms-client-request-id"])
    end)

    it("errors: not found, name rules, location required / unknown / changed", function()
      E.assert_arm_error(rg("GET", "rg-missing"), 404, "ResourceGroupNotFound")
      E.assert_arm_error(rg("PUT", "bad*name", { location = "westus" }), 400, "InvalidResourceGroup")
      E.assert_arm_error(rg("PUT", "ends-with-dot.", { location = "westus" }), 400, "InvalidResourceGroup")
      E.assert_arm_error(rg("PUT", string.rep("a", 91), { location = "westus" }), 400, "InvalidResourceGroup")
      assert.equal(201, rg("PUT", "ok_(name).x-" .. string.rep("a", 70), { location = "westus" }).status)
      E.assert_arm_error(rg("PUT", "rg-b", { tags = {} }), 400, "LocationRequired")
      E.assert_arm_error(rg("PUT", "rg-b", { location = "atlantis" }), 400, "LocationNotAvailableForResourceType")
      E.assert_arm_error(rg("PUT", "rg-a", { location = "eastus" }), 409, "InvalidResourceGroupLocation")
    end)

    it("DELETE: 202 + Location, polled until 200, takes its resources along", function()
      assert.equal(201, rg("PUT", "rg-del", { location = "westus" }).status)
      assert.equal(201, E.arm("PUT", mi_path("rg-del", "inside"), { location = "westus" },
        { api_version = MI_API }).status)
      E.control("POST", "config", { lro = { polls = 2, retry_after = 0 } })
      local r = rg("DELETE", "rg-del")
      assert.equal(202, r.status)
      local loc = r.headers["location"]
      local want = "https://management.azure.com/subscriptions/" .. sub .. "/operationresults/"
      assert.equal(want, loc:sub(1, #want))
      assert.equal("0", r.headers["retry-after"])
      assert.equal("Deleting", rg("GET", "rg-del").json.properties.provisioningState)
      E.assert_arm_error(rg("PUT", "rg-del", { location = "westus" }), 409, "ResourceGroupBeingDeleted")
      local p1 = assert(E.request({ url = loc, headers = { Authorization = "Bearer " .. E.arm_token() } }))
      assert.equal(202, p1.status)
      local p2 = assert(E.request({ url = loc, headers = { Authorization = "Bearer " .. E.arm_token() } }))
      assert.equal(200, p2.status)
      E.assert_arm_error(rg("GET", "rg-del"), 404, "ResourceGroupNotFound")
      assert.equal(404, E.arm("GET", mi_path("rg-del", "inside"), nil, { api_version = MI_API }).status)
      E.assert_arm_error(rg("DELETE", "rg-del"), 404, "ResourceGroupNotFound")
      E.control("POST", "config", { lro = { polls = 1, retry_after = 0 } })
    end)

    it("LRO: completion can also wait for simulated seconds", function()
      E.control("POST", "config", { lro = { polls = 1, seconds = 60 } })
      assert.equal(201, rg("PUT", "rg-slow", { location = "westus" }).status)
      local loc = rg("DELETE", "rg-slow").headers["location"]
      local auth = { Authorization = "Bearer " .. E.arm_token() }
      assert.equal(202, E.request({ url = loc, headers = auth }).status)
      E.control("POST", "clock", { advance = 61 })
      auth = { Authorization = "Bearer " .. E.arm_token() }
      assert.equal(200, E.request({ url = loc, headers = auth }).status)
      E.control("POST", "config", { lro = { seconds = 0 } })
    end)

    it("api-version: missing -> MissingApiVersionParameter, unknown -> InvalidApiVersionParameter", function()
      local r = E.arm("GET", S .. "/resourcegroups/rg-a", nil, {})
      E.assert_arm_error(r, 400, "MissingApiVersionParameter")
      assert.equal("The api-version query parameter (?api-version=) is required for all requests.",
        r.json.error.message)
      local err = E.assert_arm_error(rg("GET", "rg-a", nil, "2099-01-01"), 400, "InvalidApiVersionParameter")
      assert.truthy(err.message:find("The api-version '2099-01-01' is invalid. The supported versions are '", 1, true))
      assert.equal(200, rg("GET", "rg-a", nil, "2021-04-01").status)
    end)
  end)

  describe("user-assigned identities", function()
    setup(function() rg("PUT", "rg-mi", { location = "westus" }) end)

    it("PUT 201 with GUIDs and a lower-case resourcegroups id, then 200; GET; PATCH; DELETE 200 then 204", function()
      local r = E.arm("PUT", mi_path("rg-mi", "cmk-id"), { location = "westus", tags = { a = "b" } },
        { api_version = MI_API })
      assert.equal(201, r.status, r.body)
      local j = r.json
      assert.equal(S .. "/resourcegroups/rg-mi/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cmk-id",
        j.id)
      assert.equal("Microsoft.ManagedIdentity/userAssignedIdentities", j.type)
      assert.equal(seed.tenant_id, j.properties.tenantId)
      for _, k in ipairs({ "principalId", "clientId" }) do
        assert.truthy(j.properties[k]:match("^%x+%-%x+%-4%x+%-%x+%-%x+$"), k)
      end
      assert.equal(j.id, r.headers["location"])
      local again = E.arm("PUT", mi_path("rg-mi", "cmk-id"), { location = "westus" }, { api_version = MI_API })
      assert.equal(200, again.status)
      assert.equal(j.properties.principalId, again.json.properties.principalId)
      local g = E.arm("GET", j.id, nil, { api_version = MI_API })
      assert.equal(200, g.status)
      assert.same(j.properties, g.json.properties)
      local new = E.arm("GET", j.id, nil, { api_version = "2026-05-31" })
      assert.equal("None", new.json.properties.isolationScope)
      local p = E.arm("PATCH", j.id, { tags = { c = "d" } }, { api_version = MI_API })
      assert.equal(200, p.status)
      assert.same({ c = "d" }, p.json.tags)
      assert.equal(200, E.arm("DELETE", j.id, nil, { api_version = MI_API }).status)
      assert.equal(204, E.arm("DELETE", j.id, nil, { api_version = MI_API }).status)
      local err = E.assert_arm_error(E.arm("GET", j.id, nil, { api_version = MI_API }), 404, "ResourceNotFound")
      assert.truthy(err.message:find("Microsoft.ManagedIdentity/userAssignedIdentities/cmk-id", 1, true))
    end)

    it("errors: name rules, missing location, unknown resource group, api-version, PATCH of a missing one", function()
      E.assert_arm_error(E.arm("PUT", mi_path("rg-mi", "x"), { location = "westus" }, { api_version = MI_API }), 400,
        "InvalidResourceName")
      E.assert_arm_error(E.arm("PUT", mi_path("rg-mi", "-bad"), { location = "westus" }, { api_version = MI_API }),
        400, "InvalidResourceName")
      E.assert_arm_error(E.arm("PUT", mi_path("rg-mi", "good"), {}, { api_version = MI_API }), 400,
        "LocationRequired")
      E.assert_arm_error(E.arm("PUT", mi_path("rg-nope", "good"), { location = "westus" },
        { api_version = MI_API }), 404, "ResourceGroupNotFound")
      local err = E.assert_arm_error(E.arm("GET", mi_path("rg-mi", "good"), nil, { api_version = "2019-01-01" }), 400,
        "NoRegisteredProviderFound")
      assert.truthy(err.message:find("for type 'userAssignedIdentities'", 1, true), err.message)
      E.assert_arm_error(E.arm("PATCH", mi_path("rg-mi", "ghost"), { tags = {} }, { api_version = MI_API }), 404,
        "ResourceNotFound")
    end)

    it("list by resource group and subscription", function()
      E.arm("PUT", mi_path("rg-mi", "listed"), { location = "westus" }, { api_version = MI_API })
      local r = E.arm("GET", S .. "/resourceGroups/rg-mi/providers/Microsoft.ManagedIdentity/userAssignedIdentities",
        nil, { api_version = MI_API })
      assert.equal(200, r.status)
      assert.truthy(#r.json.value >= 1)
      r = E.arm("GET", S .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities", nil,
        { api_version = MI_API })
      assert.equal(200, r.status)
      assert.truthy(#r.json.value >= 1)
    end)
  end)

  describe("role definitions and assignments", function()
    local KV_USER = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
    local uai
    setup(function()
      rg("PUT", "rg-ra", { location = "westus" })
      uai = E.arm("PUT", mi_path("rg-ra", "ra-id"), { location = "westus" }, { api_version = MI_API }).json
    end)

    local function ra_put(scope, name, props, api)
      return E.arm("PUT", scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. name,
        { properties = props }, { api_version = api or RA_API })
    end

    it("built-in role definitions: Key Vault Crypto Service Encryption User with its dataActions", function()
      local r = E.arm("GET", S .. "/providers/Microsoft.Authorization/roleDefinitions/" .. KV_USER, nil,
        { api_version = RA_API })
      assert.equal(200, r.status, r.body)
      assert.equal("Key Vault Crypto Service Encryption User", r.json.properties.roleName)
      assert.equal("BuiltInRole", r.json.properties.type)
      assert.same({ "Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action",
        "Microsoft.KeyVault/vaults/keys/unwrap/action" }, r.json.properties.permissions[1].dataActions)
      r = E.arm("GET", S .. "/providers/Microsoft.Authorization/roleDefinitions?$filter=" ..
        E.urlencode("roleName eq 'Key Vault Administrator'"), nil, { api_version = RA_API })
      assert.equal(1, #r.json.value)
      assert.equal("00482a5a-887f-4fb3-b363-3b7fe8e74483", r.json.value[1].name)
      for _, name in ipairs({ "Owner", "Contributor", "Reader", "Key Vault Crypto Officer" }) do
        r = E.arm("GET", S .. "/providers/Microsoft.Authorization/roleDefinitions?$filter=" ..
          E.urlencode("roleName eq '" .. name .. "'"), nil, { api_version = RA_API })
        assert.equal(1, #r.json.value, name)
      end
      E.assert_arm_error(E.arm("GET", S .. "/providers/Microsoft.Authorization/roleDefinitions/" .. core.uuid4(), nil,
        { api_version = RA_API }), 404, "RoleDefinitionDoesNotExist")
    end)

    it("PUT 201 at resource scope, normalised roleDefinitionId; same again 200; same triple elsewhere 409", function()
      local scope = uai.id
      local name = core.uuid4()
      local props = { roleDefinitionId = S .. "/providers/Microsoft.Authorization/roleDefinitions/" .. KV_USER,
        principalId = uai.properties.principalId, principalType = "ServicePrincipal" }
      local r = ra_put(scope, name, props)
      assert.equal(201, r.status, r.body)
      assert.equal("/providers/Microsoft.Authorization/roleDefinitions/" .. KV_USER, r.json.properties.roleDefinitionId)
      assert.equal(scope, r.json.properties.scope)
      assert.equal("Microsoft.Authorization/roleAssignments", r.json.type)
      assert.equal(name, r.json.name)
      assert.equal(200, ra_put(scope, name, props).status)
      local err = E.assert_arm_error(ra_put(scope, core.uuid4(), props), 409, "RoleAssignmentExists")
      assert.equal("The role assignment already exists.", err.message)
      -- GET, list with filters, DELETE
      local id = scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. name
      assert.equal(200, E.arm("GET", id, nil, { api_version = RA_API }).status)
      local l = E.arm("GET", S .. "/providers/Microsoft.Authorization/roleAssignments?$filter=" ..
        E.urlencode("assignedTo('" .. uai.properties.principalId .. "')"), nil, { api_version = RA_API })
      assert.equal(200, l.status)
      assert.equal(1, #l.json.value)
      l = E.arm("GET", S .. "/providers/Microsoft.Authorization/roleAssignments?$filter=atScope()", nil,
        { api_version = RA_API })
      for _, ra in ipairs(l.json.value) do assert.equal(S, ra.properties.scope) end
      l = E.arm("GET", scope .. "/providers/Microsoft.Authorization/roleAssignments?$filter=atScope()", nil,
        { api_version = RA_API })
      local at_res = 0
      for _, ra in ipairs(l.json.value) do if ra.properties.scope == scope then at_res = at_res + 1 end end
      assert.equal(1, at_res)
      assert.equal(200, E.arm("DELETE", id, nil, { api_version = RA_API }).status)
      assert.equal(204, E.arm("DELETE", id, nil, { api_version = RA_API }).status)
      E.assert_arm_error(E.arm("GET", id, nil, { api_version = RA_API }), 404, "RoleAssignmentNotFound")
    end)

    it("PrincipalNotFound without principalType, accepted with it; other validation errors", function()
      local scope = S .. "/resourceGroups/rg-ra"
      local ghost = core.uuid4()
      local role = "/providers/Microsoft.Authorization/roleDefinitions/" .. KV_USER
      local err = E.assert_arm_error(ra_put(scope, core.uuid4(), { roleDefinitionId = role, principalId = ghost }),
        400, "PrincipalNotFound")
      assert.truthy(err.message:find("does not exist in the directory " .. seed.tenant_id, 1, true), err.message)
      assert.equal(201, ra_put(scope, core.uuid4(), { roleDefinitionId = role, principalId = ghost,
        principalType = "ServicePrincipal" }).status)
      E.assert_arm_error(ra_put(scope, "not-a-guid", { roleDefinitionId = role, principalId = ghost }), 400,
        "InvalidRoleAssignmentId")
      E.assert_arm_error(ra_put(scope, core.uuid4(), { roleDefinitionId = "/providers/Microsoft.Authorization/" ..
        "roleDefinitions/" .. core.uuid4(), principalId = seed.noaccess.object_id }), 400, "RoleDefinitionDoesNotExist")
      E.assert_arm_error(ra_put(scope, core.uuid4(), { roleDefinitionId = role }), 400, "InvalidPrincipalId")
      E.assert_arm_error(ra_put(scope, core.uuid4(), { principalId = ghost }), 400, "InvalidRoleDefinitionId")
      E.assert_arm_error(ra_put(scope, core.uuid4(), { roleDefinitionId = role, principalId = seed.noaccess.object_id,
        principalType = "User" }), 400, "UnmatchedPrincipalType")
      E.assert_arm_error(ra_put(S .. "/resourceGroups/rg-none", core.uuid4(), { roleDefinitionId = role,
        principalId = ghost, principalType = "ServicePrincipal" }), 404, "ResourceGroupNotFound")
      E.assert_arm_error(ra_put(scope, core.uuid4(), { roleDefinitionId = role, principalId = ghost }, "2001-01-01"),
        400, "NoRegisteredProviderFound")
      local r = E.arm("PUT", scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. core.uuid4(),
        { nothing = true }, { api_version = RA_API })
      E.assert_arm_error(r, 400, "InvalidRequestContent")
    end)
  end)

  describe("generic resource list and subscriptions", function()
    it("$filter=resourceType eq ... and name eq ... finds identities in any group; role assignments never", function()
      rg("PUT", "rg-list", { location = "eastus" })
      E.arm("PUT", mi_path("rg-list", "findme"), { location = "eastus" }, { api_version = MI_API })
      local f = E.urlencode("resourceType eq 'Microsoft.ManagedIdentity/userAssignedIdentities' and name eq 'findme'")
      local r = E.arm("GET", S .. "/resources?$filter=" .. f, nil, { api_version = "2021-04-01" })
      assert.equal(200, r.status, r.body)
      assert.equal(1, #r.json.value)
      assert.equal("eastus", r.json.value[1].location)
      assert.truthy(r.json.value[1].id:find("/resourcegroups/rg-list/", 1, true))
      r = E.arm("GET", S .. "/resources?$filter=" .. E.urlencode("resourceType eq 'Microsoft.Authorization/" ..
        "roleAssignments'"), nil, { api_version = "2015-11-01" })
      assert.equal(0, #r.json.value)
      r = E.arm("GET", S .. "/resourceGroups/rg-list/resources", nil, { api_version = "2021-04-01" })
      assert.equal(1, #r.json.value)
      E.assert_arm_error(E.arm("GET", S .. "/resources?$filter=" .. E.urlencode("startswith(name,'x')"), nil,
        { api_version = "2021-04-01" }), 400, "InvalidFilterInQueryString")
      -- the no-access principal sees nothing
      r = E.arm("GET", S .. "/resources", nil, { api_version = "2021-04-01", token = E.token(nil, "noaccess") })
      assert.equal(200, r.status)
      assert.equal(0, #r.json.value)
    end)

    it("resource providers: registered, with their types and api-versions; unknown namespace 404", function()
      local r = E.arm("GET", S .. "/providers/microsoft.managedidentity", nil, { api_version = "2021-04-01" })
      assert.equal(200, r.status, r.body)
      assert.equal("Registered", r.json.registrationState)
      assert.equal("Microsoft.ManagedIdentity", r.json.namespace)
      local found
      for _, t in ipairs(r.json.resourceTypes) do
        if t.resourceType == "userAssignedIdentities" then found = t end
      end
      assert.truthy(found)
      assert.truthy(#found.apiVersions > 3)
      r = E.arm("GET", S .. "/providers", nil, { api_version = "2021-04-01" })
      assert.truthy(#r.json.value >= 2)
      assert.equal(200, E.arm("POST", S .. "/providers/Microsoft.ManagedIdentity/register", nil,
        { api_version = "2021-04-01" }).status)
      E.assert_arm_error(E.arm("GET", S .. "/providers/Microsoft.Nope", nil, { api_version = "2021-04-01" }), 404,
        "InvalidResourceNamespace")
    end)

    it("subscriptions: GET, list, unknown subscription", function()
      local r = E.arm("GET", S, nil, { api_version = "2022-12-01" })
      assert.equal(200, r.status)
      assert.equal(sub, r.json.subscriptionId)
      assert.equal(seed.tenant_id, r.json.tenantId)
      assert.equal("Enabled", r.json.state)
      r = E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01" })
      assert.equal(2, #r.json.value) -- the seeded one and the second subscription of the tenant
      assert.equal(sub, r.json.value[1].subscriptionId)
      r = E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01", token = E.token(nil, "noaccess") })
      assert.equal(0, #r.json.value)
      E.assert_arm_error(E.arm("GET", "/subscriptions/" .. core.uuid4() .. "/resourcegroups", nil,
        { api_version = RG_API }), 404, "SubscriptionNotFound")
    end)
  end)

  describe("bad input: Azure's 4xx, never a 500", function()
    it("malformed JSON and empty bodies: 400 InvalidRequestContent", function()
      local auth = { Authorization = "Bearer " .. E.arm_token(), ["Content-Type"] = "application/json" }
      for _, body in ipairs({ "{not json", "[1,2]", "42", '"str"', "" }) do
        for _, p in ipairs({ S .. "/resourcegroups/rg-bad", mi_path("rg-a", "bad-json") }) do
          local r = assert(E.request({ method = "PUT", url = "https://management.azure.com" .. p ..
            "?api-version=" .. (p:find("ManagedIdentity") and MI_API or RG_API), headers = auth, body = body }))
          E.assert_arm_error(r, 400, "InvalidRequestContent")
        end
      end
    end)

    it("wrong field types never crash the handlers", function()
      local bodies = { { location = 5 }, { location = { "westus" } }, { location = "westus", tags = { "x" } },
        { location = "westus", tags = { a = 1 } }, { location = "westus", tags = "x" }, { location = false },
        { properties = "x" }, { properties = { roleDefinitionId = 5, principalId = {} } },
        { properties = { roleDefinitionId = "/x/roleDefinitions/abc", principalId = "00000000-0000-0000-0000-0000" } } }
      local paths = { { S .. "/resourcegroups/rg-types", RG_API }, { mi_path("rg-a", "types"), MI_API },
        { S .. "/resourceGroups/rg-a/providers/Microsoft.Authorization/roleAssignments/" .. core.uuid4(), RA_API } }
      for _, b in ipairs(bodies) do
        for _, p in ipairs(paths) do
          for _, m in ipairs({ "PUT", "PATCH" }) do
            local r = E.arm(m, p[1], b, { api_version = p[2] })
            assert.truthy(r.status < 500, m .. " " .. p[1] .. " -> " .. r.status .. " " .. r.body)
            if r.status >= 400 then assert.truthy(r.json and r.json.error and r.json.error.code, r.body) end
          end
        end
      end
      E.assert_no_internal_errors()
    end)

    it("oversized body: 413 with an ARM envelope", function()
      local big = '{"location":"westus","tags":{"x":"' .. string.rep("a", 5 * 1024 * 1024) .. '"}}'
      local r = assert(E.request({ method = "PUT", url = "https://management.azure.com" .. S ..
        "/resourcegroups/rg-big?api-version=" .. RG_API, body = big, headers = {
        Authorization = "Bearer " .. E.arm_token(), ["Content-Type"] = "application/json" } }))
      E.assert_arm_error(r, 413, "RequestContentTooLarge")
      r = assert(E.request({ method = "PUT", url = "https://kv1.vault.azure.net/keys/k?api-version=7.4", body = big }))
      assert.equal(413, r.status)
      assert.truthy(r.json.error.code)
    end)

    it("unknown methods: 405 in ARM's envelope", function()
      local r = E.arm("POST", S .. "/resourcegroups/rg-a", {}, { api_version = RG_API })
      E.assert_arm_error(r, 405, "MethodNotAllowed")
    end)
  end)
end)
