-- Managed identity endpoints on the plain-http port: IMDS and App Service, with their errors.
local E = require("support.emulator")
local core = require("azcmk.core")
local cjson = require("cjson")

local IMDS = "http://169.254.169.254/metadata/identity/oauth2/token"

describe("managed identity endpoints", function()
  local seed, uai
  setup(function()
    E.ensure()
    E.reset()
    seed = E.seed()
    local sub = seed.subscription_id
    E.arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/mi-spec", { location = "westus" },
      { api_version = "2024-11-01" })
    uai = E.arm("PUT", "/subscriptions/" .. sub .. "/resourceGroups/mi-spec/providers/" ..
      "Microsoft.ManagedIdentity/userAssignedIdentities/app-identity", { location = "westus" },
      { api_version = "2024-11-30" }).json
  end)
  teardown(function()
    E.reset()
    E.assert_no_internal_errors()
  end)

  local function claims(tok)
    local _, p = core.jwt_decode(tok)
    return cjson.decode(p)
  end

  local function imds(query, headers)
    return assert(E.request({ url = IMDS .. "?" .. query, headers = headers or { Metadata = "true" } }))
  end

  describe("IMDS", function()
    it("system identity of the VM: every value a string, token for the resource", function()
      local r = imds("api-version=2018-02-01&resource=https://management.azure.com/")
      assert.equal(200, r.status, r.body)
      for _, k in ipairs({ "access_token", "expires_in", "expires_on", "not_before", "resource", "token_type",
        "client_id" }) do
        assert.equal("string", type(r.json[k]), k)
      end
      assert.equal("Bearer", r.json.token_type)
      assert.equal("https://management.azure.com/", r.json.resource)
      assert.equal(seed.vm.client_id, r.json.client_id)
      local c = claims(r.json.access_token)
      assert.equal(seed.vm.principal_id, c.oid)
      assert.equal("https://management.azure.com/", c.aud)
      assert.equal(string.format("%d", c.exp), r.json.expires_on)
      -- and ARM accepts it
      local s = E.arm("GET", "/subscriptions/" .. seed.subscription_id, nil,
        { api_version = "2022-12-01", token = r.json.access_token })
      assert.equal(200, s.status)
    end)

    it("user-assigned identity by client_id, object_id or msi_res_id once attached", function()
      local p = uai.properties
      local q = "api-version=2018-02-01&resource=https://vault.azure.net&client_id=" .. p.clientId
      local r = imds(q)
      assert.equal(400, r.status)
      assert.equal("invalid_request", r.json.error)
      assert.equal("Identity not found", r.json.error_description)
      assert.equal(200, E.control("POST", "vm/identities", { id = uai.id }).status)
      r = imds(q)
      assert.equal(200, r.status, r.body)
      assert.equal(p.principalId, claims(r.json.access_token).oid)
      assert.equal(uai.id, claims(r.json.access_token).xms_mirid)
      r = imds("api-version=2018-02-01&resource=https://vault.azure.net&object_id=" .. p.principalId)
      assert.equal(p.clientId, r.json.client_id)
      r = imds("api-version=2018-02-01&resource=https://vault.azure.net&msi_res_id=" .. E.urlencode(uai.id:upper()))
      assert.equal(200, r.status, r.body)
      assert.equal(p.clientId, r.json.client_id)
    end)

    it("errors: no Metadata header, missing api-version or resource, unknown resource, two selectors", function()
      local r = imds("api-version=2018-02-01&resource=https://management.azure.com/", {})
      assert.equal(400, r.status)
      assert.equal("invalid_request", r.json.error)
      assert.truthy(r.json.error_description:find("metadata header", 1, true))
      r = imds("api-version=2018-02-01&resource=https://management.azure.com/", { Metadata = "True" })
      assert.equal(400, r.status)
      r = imds("resource=https://management.azure.com/")
      assert.equal(400, r.status)
      r = imds("api-version=1999-01-01&resource=https://management.azure.com/")
      assert.equal(400, r.status)
      r = imds("api-version=2018-02-01")
      assert.equal(400, r.status)
      r = imds("api-version=2018-02-01&resource=https://example.com/")
      assert.equal(400, r.status)
      assert.equal("invalid_resource", r.json.error)
      r = imds("api-version=2018-02-01&resource=https://vault.azure.net&client_id=a&object_id=b")
      assert.equal(400, r.status)
      r = assert(E.request({ method = "POST", url = IMDS .. "?api-version=2018-02-01",
        headers = { Metadata = "true" } }))
      assert.equal(405, r.status)
    end)

    it("without a system identity: the only user-assigned one answers (Azure's quirk), none -> 400", function()
      E.control("DELETE", "vm/identities", {})
      local r = E.control("POST", "vm/identities", { system = false })
      assert.equal(200, r.status)
      local q = "api-version=2018-02-01&resource=https://vault.azure.net"
      assert.equal(400, imds(q).status)
      E.control("POST", "vm/identities", { id = uai.id })
      r = imds(q)
      assert.equal(200, r.status, r.body)
      assert.equal(uai.properties.clientId, r.json.client_id)
      E.control("POST", "vm/identities", { system = true })
      assert.equal(seed.vm.client_id, imds(q).json.client_id)
      assert.equal(400, E.control("POST", "vm/identities", { system = "yes" }).status)
    end)

    it("a deleted identity is no longer found", function()
      local sub = seed.subscription_id
      local tmp = E.arm("PUT", "/subscriptions/" .. sub .. "/resourceGroups/mi-spec/providers/" ..
        "Microsoft.ManagedIdentity/userAssignedIdentities/short-lived", { location = "westus" },
        { api_version = "2024-11-30" }).json
      E.control("POST", "vm/identities", { id = tmp.id })
      local q = "api-version=2018-02-01&resource=https://vault.azure.net&client_id=" .. tmp.properties.clientId
      assert.equal(200, imds(q).status)
      assert.equal(200, E.arm("DELETE", tmp.id, nil, { api_version = "2024-11-30" }).status)
      assert.equal(400, imds(q).status)
    end)
  end)

  describe("App Service identity endpoint", function()
    local function appsvc(query, header)
      local h = { ["X-IDENTITY-HEADER"] = header }
      if header == nil then h["X-IDENTITY-HEADER"] = seed.appservice.identity_header end
      if header == false then h = {} end
      return assert(E.request({ url = seed.appservice.identity_endpoint .. "?" .. query, headers = h }))
    end

    it("system identity: expires_on and no expires_in, client_id", function()
      local r = appsvc("api-version=2019-08-01&resource=https://vault.azure.net")
      assert.equal(200, r.status, r.body)
      assert.is_nil(r.json.expires_in)
      assert.equal("string", type(r.json.expires_on))
      assert.equal(seed.appservice.client_id, r.json.client_id)
      assert.equal("https://vault.azure.net", r.json.resource)
      assert.equal("Bearer", r.json.token_type)
      assert.equal(seed.appservice.principal_id, claims(r.json.access_token).oid)
    end)

    it("user-assigned by client_id / object_id / mi_res_id once attached", function()
      E.control("POST", "appservice/identities", { id = uai.id })
      local p = uai.properties
      for _, q in ipairs({ "client_id=" .. p.clientId, "object_id=" .. p.principalId,
        "principal_id=" .. p.principalId, "mi_res_id=" .. E.urlencode(uai.id) }) do
        local r = appsvc("api-version=2019-08-01&resource=https://management.azure.com&" .. q)
        assert.equal(200, r.status, q .. ": " .. r.body)
        assert.equal(p.clientId, r.json.client_id)
      end
    end)

    it("errors: missing or wrong header, api-version, resource, unknown identity", function()
      assert.equal(400, appsvc("api-version=2019-08-01&resource=https://vault.azure.net", false).status)
      local r = appsvc("api-version=2019-08-01&resource=https://vault.azure.net", "wrong")
      assert.equal(401, r.status)
      assert.equal(401, r.json.statusCode)
      assert.equal(400, appsvc("api-version=2018-02-01&resource=https://vault.azure.net").status)
      assert.equal(400, appsvc("api-version=2019-08-01").status)
      assert.equal(400, appsvc("api-version=2019-08-01&resource=https://vault.azure.net&client_id=" ..
        "00000000-0000-0000-0000-000000000000").status)
    end)
  end)
end)
