-- Microsoft.ContainerRegistry/registries in the emulator: create / get / patch / delete, the LRO
-- protocol, names, SKUs, lists with paging, checkNameAvailability, bad input (never a 500).
local E = require("support.emulator")

local API = "2025-04-01"

describe("emulator: container registries (ARM)", function()
  local sub, rg, base

  local function reg_path(name, r)
    return "/subscriptions/" .. sub .. "/resourceGroups/" .. (r or rg) ..
      "/providers/Microsoft.ContainerRegistry/registries/" .. name
  end

  local function wait(res)
    local url = res.headers["azure-asyncoperation"]
    assert.truthy(url, "no Azure-AsyncOperation header")
    for _ = 1, 20 do
      local r = E.request({ method = "GET", url = url, headers = { Authorization = "Bearer " .. E.arm_token() } })
      assert.equal(200, r.status, r.body)
      if r.json.status ~= "InProgress" then return r.json end
    end
    error("operation did not finish")
  end

  setup(function()
    sub = E.fresh().subscription_id
    rg = "acr-basics"
    base = "/subscriptions/" .. sub .. "/resourcegroups/" .. rg
    local r = E.arm("PUT", base, { location = "westus" }, { api_version = "2024-11-01" })
    assert.truthy(r.status == 201 or r.status == 200, r.body)
  end)

  teardown(function()
    E.assert_no_internal_errors()
    E.reset() -- the clock moved; leave the seeded world to the next spec
  end)

  it("creates a Basic registry as a long-running operation and shows it", function()
    local r = E.arm("PUT", reg_path("basicreg01"), { location = "West US", sku = { name = "Basic" } },
      { api_version = API })
    assert.equal(201, r.status, r.body)
    local pat = "/registries/basicreg01/operationStatuses/registries%-[%x%-]+%?api%-version=" .. API:gsub("%-", "%%-")
    assert.matches(pat, r.headers["azure-asyncoperation"])
    assert.equal("Creating", r.json.properties.provisioningState)
    assert.same({ status = "disabled" }, r.json.properties.encryption)
    assert.is_nil(r.json.identity)
    local st = wait(r)
    assert.equal("Succeeded", st.status)
    local g = E.arm("GET", reg_path("basicreg01"), nil, { api_version = API })
    assert.equal(200, g.status, g.body)
    assert.equal("basicreg01.azurecr.io", g.json.properties.loginServer)
    assert.equal("Succeeded", g.json.properties.provisioningState)
    assert.same({ name = "Basic", tier = "Basic" }, g.json.sku)
    assert.equal("westus", g.json.location)
    assert.equal("Microsoft.ContainerRegistry/registries", g.json.type)
    assert.equal(false, g.json.properties.adminUserEnabled)
    assert.equal("Enabled", g.json.properties.publicNetworkAccess)
  end)

  it("answers the pre-operation body while the operation runs (lro seconds)", function()
    E.control("POST", "config", { lro = { seconds = 30 } })
    local r = E.arm("PUT", reg_path("slowreg01"), { location = "westus", sku = { name = "Standard" } },
      { api_version = API })
    assert.equal(201, r.status, r.body)
    local g = E.arm("GET", reg_path("slowreg01"), nil, { api_version = API })
    assert.equal("Creating", g.json.properties.provisioningState)
    E.control("POST", "clock", { advance = 31 })
    assert.equal("Succeeded", wait(r).status)
    g = E.arm("GET", reg_path("slowreg01"), nil, { api_version = API })
    assert.equal("Succeeded", g.json.properties.provisioningState)
    E.control("POST", "config", { lro = { seconds = 0 } })
  end)

  it("patches tags and admin user (201 + Updating, then the new state)", function()
    local r = E.arm("PATCH", reg_path("basicreg01"),
      { tags = { env = "test" }, properties = { adminUserEnabled = true } }, { api_version = API })
    assert.equal(201, r.status, r.body)
    assert.equal("Updating", r.json.properties.provisioningState)
    assert.equal(false, r.json.properties.adminUserEnabled)
    wait(r)
    local g = E.arm("GET", reg_path("basicreg01"), nil, { api_version = API })
    assert.equal(true, g.json.properties.adminUserEnabled)
    assert.same({ env = "test" }, g.json.tags)
  end)

  it("refuses bad names, SKUs and bodies with Azure's envelope", function()
    for _, name in ipairs({ "abc", "has-dash1", string.rep("a", 51) }) do
      local r = E.arm("PUT", reg_path(name), { location = "westus", sku = { name = "Basic" } }, { api_version = API })
      E.assert_arm_error(r, 400, "InvalidResourceName")
    end
    local r = E.arm("PUT", reg_path("classicreg1"), { location = "westus", sku = { name = "Classic" } },
      { api_version = API })
    local e = E.assert_arm_error(r, 400, "ClassicSkuNotSupported")
    assert.matches("Classic SKU is no longer supported", e.message, 1, true)
    r = E.arm("PUT", reg_path("noskureg1"), { location = "westus" }, { api_version = API })
    E.assert_arm_error(r, 400, "InvalidRequestContent")
    r = E.arm("PUT", reg_path("nolocreg1"), { sku = { name = "Basic" } }, { api_version = API })
    E.assert_arm_error(r, 400, "LocationRequired")
    r = E.arm("PUT", reg_path("badjson01"), "{not json", { api_version = API })
    E.assert_arm_error(r, 400, "InvalidRequestContent")
    r = E.arm("PUT", reg_path("badsku001"), { location = "westus", sku = { name = "Gold" } }, { api_version = API })
    E.assert_arm_error(r, 400, "InvalidSku")
    r = E.arm("PUT", reg_path("okname001"), { location = "westus", sku = { name = "Basic" } },
      { api_version = "2011-01-01" })
    E.assert_arm_error(r, 400, "NoRegisteredProviderFound")
    r = E.arm("PUT", reg_path("okname001"), { location = "westus", sku = { name = "Basic" } })
    E.assert_arm_error(r, 400, "MissingApiVersionParameter")
    r = E.arm("PUT", reg_path("okname001", "nosuchrg"), { location = "westus", sku = { name = "Basic" } },
      { api_version = API })
    E.assert_arm_error(r, 404, "ResourceGroupNotFound")
    r = E.arm("PUT", reg_path("basicpna1"), { location = "westus", sku = { name = "Basic" },
      properties = { publicNetworkAccess = "Disabled" } }, { api_version = API })
    e = E.assert_arm_error(r, 400, "DisablingPublicNetworkAccessNotSupported")
    assert.equal("Disabling public network access is not supported for the SKU Basic. For more information, " ..
      "please visit https://aka.ms/acr/private-link.", e.message)
    r = E.arm("PUT", reg_path("badid0001"), { location = "westus", sku = { name = "Basic" },
      identity = { type = "Weird" } }, { api_version = API })
    E.assert_arm_error(r, 400, "InvalidRequestContent")
    r = E.arm("PUT", reg_path("badid0002"), { location = "westus", sku = { name = "Basic" },
      identity = { type = "UserAssigned", userAssignedIdentities = {
        ["/subscriptions/" .. sub .. "/resourcegroups/" .. rg ..
          "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nope"] = {} } } }, { api_version = API })
    E.assert_arm_error(r, 400, "FailedIdentityOperation")
    r = E.arm("GET", reg_path("missing01"), nil, { api_version = API })
    E.assert_arm_error(r, 404, "ResourceNotFound")
    r = E.arm("PATCH", reg_path("missing01"), { tags = {} }, { api_version = API })
    E.assert_arm_error(r, 404, "ResourceNotFound")
    -- nothing was written
    for _, n in ipairs({ "classicreg1", "noskureg1", "badsku001", "basicpna1", "badid0001", "badid0002" }) do
      assert.equal(404, E.arm("GET", reg_path(n), nil, { api_version = API }).status)
    end
  end)

  it("keeps login server names globally unique; checkNameAvailability", function()
    local other = "acr-basics-2"
    E.arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/" .. other, { location = "westus" },
      { api_version = "2024-11-01" })
    local r = E.arm("PUT", reg_path("BasicReg01", other), { location = "westus", sku = { name = "Basic" } },
      { api_version = API })
    E.assert_arm_error(r, 409, "AlreadyInUse")
    local url = "/subscriptions/" .. sub .. "/providers/Microsoft.ContainerRegistry/checkNameAvailability"
    r = E.arm("POST", url, { name = "basicreg01", type = "Microsoft.ContainerRegistry/registries" },
      { api_version = API })
    assert.equal(200, r.status, r.body)
    assert.equal(false, r.json.nameAvailable)
    assert.equal("AlreadyExists", r.json.reason)
    r = E.arm("POST", url, { name = "freename01", type = "Microsoft.ContainerRegistry/registries" },
      { api_version = API })
    assert.equal(true, r.json.nameAvailable)
    r = E.arm("POST", url, { name = "a-b", type = "Microsoft.ContainerRegistry/registries" }, { api_version = API })
    assert.equal("Invalid", r.json.reason)
  end)

  it("serves China and US Gov login servers by the cloud of the ARM host", function()
    local r = E.request({ method = "GET", url = "https://basicreg01.azurecr.cn/v2/" })
    assert.equal(404, r.status)
    r = E.request({ method = "GET", url = "https://basicreg01.azurecr.io/v2/" })
    assert.equal(401, r.status)
    local s = E.seed()
    local crg = "acr-clouds"
    E.arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/" .. crg, { location = "westus" },
      { api_version = "2024-11-01" })
    local uai = E.arm("PUT", "/subscriptions/" .. sub .. "/resourceGroups/" .. crg ..
      "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cloud-uai", { location = "westus" },
      { api_version = "2024-11-30" }).json
    for _, c in ipairs({ { arm = "management.chinacloudapi.cn", acr = ".azurecr.cn", name = "chinareg01",
      kv = ".vault.azure.net", login = "login.chinacloudapi.cn" }, { arm = "management.usgovcloudapi.net",
      acr = ".azurecr.us", name = "govreg001", kv = ".vault.azure.cn", login = "login.microsoftonline.us" } }) do
      local t = E.request({ method = "POST", url = "https://" .. c.login .. "/" .. s.tenant_id ..
        "/oauth2/v2.0/token", form = { grant_type = "client_credentials", client_id = s.owner.app_id,
        client_secret = s.owner.client_secret, scope = "https://" .. c.arm .. "/.default" } })
      assert.equal(200, t.status, t.body)
      local opts = { api_version = API, host = c.arm, token = t.json.access_token }
      local x = E.arm("PUT", reg_path(c.name, crg), { location = "westus", sku = { name = "Premium" } }, opts)
      assert.equal(201, x.status, x.body)
      local g = E.arm("GET", reg_path(c.name, crg), nil, opts)
      assert.equal(c.name .. c.acr, g.json.properties.loginServer)
      assert.equal(401, E.request({ method = "GET", url = "https://" .. c.name .. c.acr .. "/v2/" }).status)
      assert.equal(404, E.request({ method = "GET", url = "https://" .. c.name .. ".azurecr.io/v2/" }).status)
      -- a key id with another cloud's vault suffix is refused
      x = E.arm("PUT", reg_path(c.name .. "cmk", crg), { location = "westus", sku = { name = "Premium" },
        identity = { type = "UserAssigned", userAssignedIdentities = { [uai.id] = {} } },
        properties = { encryption = { status = "enabled", keyVaultProperties = {
          keyIdentifier = "https://somevault" .. c.kv .. "/keys/k", identity = uai.properties.clientId } } } }, opts)
      local e = E.assert_arm_error(x, 400, "InvalidKeyIdentifier")
      assert.matches(c.arm == "management.chinacloudapi.cn" and ".vault.azure.cn" or ".vault.usgovcloudapi.net",
        e.message, 1, true)
    end
  end)

  it("lists registries per resource group and per subscription, with nextLink paging", function()
    local r = E.arm("GET", "/subscriptions/" .. sub .. "/resourceGroups/" .. rg ..
      "/providers/Microsoft.ContainerRegistry/registries", nil, { api_version = API })
    assert.equal(200, r.status, r.body)
    assert.equal(2, #r.json.value)
    assert.is_nil(r.json.nextLink)
    -- many registries: 230 -> three pages
    local bulk = "acr-bulk"
    E.arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/" .. bulk, { location = "westus" },
      { api_version = "2024-11-01" })
    for i = 1, 230 do
      local x = E.arm("PUT", reg_path(string.format("bulkreg%04d", i), bulk), { location = "westus",
        sku = { name = "Basic" } }, { api_version = API })
      assert.equal(201, x.status, x.body)
    end
    local seen, pages = 0, 0
    local url = "https://management.azure.com/subscriptions/" .. sub ..
      "/providers/Microsoft.ContainerRegistry/registries?api-version=" .. API
    while url do
      local p = E.request({ method = "GET", url = url, headers = { Authorization = "Bearer " .. E.arm_token() } })
      assert.equal(200, p.status, p.body)
      seen = seen + #p.json.value
      pages = pages + 1
      url = p.json.nextLink
    end
    assert.equal(234, seen)
    assert.equal(3, pages)
    -- the generic resources list shows registries (tracked type)
    r = E.arm("GET", "/subscriptions/" .. sub .. "/resources?$filter=" ..
      E.urlencode("resourceType eq 'Microsoft.ContainerRegistry/registries' and name eq 'basicreg01'"), nil,
      { api_version = "2021-04-01" })
    assert.equal(200, r.status, r.body)
    assert.equal(1, #r.json.value)
  end)

  it("deletes (200, then 204) and frees the name", function()
    local r = E.arm("DELETE", reg_path("slowreg01"), nil, { api_version = API })
    assert.equal(200, r.status, r.body)
    r = E.arm("DELETE", reg_path("slowreg01"), nil, { api_version = API })
    assert.equal(204, r.status)
    assert.equal(404, E.arm("GET", reg_path("slowreg01"), nil, { api_version = API }).status)
    r = E.arm("PUT", reg_path("slowreg01", "acr-basics-2"), { location = "westus", sku = { name = "Basic" } },
      { api_version = API })
    assert.equal(201, r.status, r.body)
  end)

  it("answers malformed bodies with 4xx, never a 500", function()
    local uai = "/subscriptions/" .. sub .. "/resourcegroups/" .. rg ..
      "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x"
    local bodies = {
      "[]", "null", "42", '"str"', "{", { location = 5, sku = { name = "Basic" } },
      { location = "westus", sku = "Basic" }, { location = "westus", sku = { name = 5 } },
      { location = "westus", sku = {} }, { location = "westus", sku = { name = "Basic" }, tags = { 1, 2 } },
      { location = "westus", sku = { name = "Basic" }, tags = { a = 1 } },
      { location = "westus", sku = { name = "Basic" }, properties = { 1, 2 } },
      { location = "westus", sku = { name = "Basic" }, properties = "x" },
      { location = "westus", sku = { name = "Basic" }, identity = "SystemAssigned" },
      { location = "westus", sku = { name = "Basic" }, identity = { type = 5 } },
      { location = "westus", sku = { name = "Basic" }, identity = { type = "UserAssigned" } },
      { location = "westus", sku = { name = "Basic" }, identity = { type = "UserAssigned",
        userAssignedIdentities = { 1 } } },
      { location = "westus", sku = { name = "Basic" }, identity = { type = "UserAssigned",
        userAssignedIdentities = "x" } },
      { location = "westus", sku = { name = "Basic" }, identity = { type = "None",
        userAssignedIdentities = { [uai] = {} } } },
      { location = "westus", sku = { name = "Premium" }, properties = { encryption = "on" } },
      { location = "westus", sku = { name = "Premium" }, properties = { encryption = { status = 1 } } },
      { location = "westus", sku = { name = "Premium" }, properties = { encryption = { status = "enabled" } } },
      { location = "westus", sku = { name = "Premium" }, properties = { encryption = { status = "enabled",
        keyVaultProperties = "x" } } },
      { location = "westus", sku = { name = "Premium" }, properties = { encryption = { status = "enabled",
        keyVaultProperties = { keyIdentifier = 5, identity = {} } } } },
      { location = "westus", sku = { name = "Basic" }, properties = { adminUserEnabled = "yes" } },
      { location = "westus", sku = { name = "Basic" }, properties = { publicNetworkAccess = "Sometimes" } },
      { location = "westus", sku = { name = "Basic" }, properties = { networkRuleSet = { defaultAction = 3 } } },
      { location = "westus", sku = { name = "Basic" }, properties = { networkRuleSet = { defaultAction = "Deny" } } },
      { location = "westus", sku = { name = "Basic" }, properties = { policies = "x" } },
      { location = "westus", sku = { name = "Basic" }, properties = { policies = { trustPolicy = "x" } } },
    }
    for i, b in ipairs(bodies) do
      local name = string.format("malformed%03d", i)
      local r = E.arm("PUT", reg_path(name), b, { api_version = API })
      assert.truthy(r.status >= 400 and r.status < 500, "body " .. i .. ": " .. r.status .. " " .. r.body)
      assert.truthy(r.json and r.json.error and r.json.error.code, r.body)
      r = E.arm("PATCH", reg_path("basicreg01"), b, { api_version = API })
      assert.truthy(r.status < 500, "patch body " .. i .. ": " .. r.status .. " " .. r.body)
      if r.status == 201 then
        local st = E.request({ method = "GET", url = r.headers["azure-asyncoperation"],
          headers = { Authorization = "Bearer " .. E.arm_token() } })
        assert.equal(200, st.status)
      end
    end
    E.assert_no_internal_errors()
  end)

  it("refuses callers without rights (403 AuthorizationFailed)", function()
    local r = E.arm("GET", reg_path("basicreg01"), nil, { api_version = API, token = E.arm_token("noaccess") })
    E.assert_arm_error(r, 403, "AuthorizationFailed")
  end)
end)
