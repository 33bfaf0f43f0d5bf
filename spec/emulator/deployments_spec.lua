-- ARM template deployments in the emulator: the article's CMK template (examples/cmk-template.json)
-- deploys through the same resource handlers as direct calls; failures show DeploymentFailed with
-- the inner RP error as a JSON string and a failed operation; bad input gets ARM's 400s.
local E = require("support.emulator")
local W = require("support.cmk_world")
local cjson = require("cjson.safe")

local API = "2025-04-01"

local function readfile(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

describe("emulator: template deployments", function()
  local sub, tmpl

  setup(function()
    sub = W.fresh().subscription_id
    tmpl = assert(cjson.decode(readfile("examples/cmk-template.json")))
    assert(cjson.decode(readfile("examples/cmk-template.parameters.json")))
  end)

  teardown(function()
    E.assert_no_internal_errors()
    E.reset() -- the clock moved; leave the seeded world to the next spec
  end)

  local function dep_path(rg, name)
    return "/subscriptions/" .. sub .. "/resourcegroups/" .. rg .. "/providers/Microsoft.Resources/deployments/" ..
      name
  end

  local function params(t)
    local out = {}
    for k, v in pairs(t) do out[k] = { value = v } end
    return out
  end

  local function prepare()
    local w = { rg = W.uniq("deprg"), vault = W.uniq("kv") }
    W.create_rg(sub, w.rg)
    W.create_vault(sub, w.rg, w.vault)
    w.kid = W.create_key(w.vault, "cmkkey")
    return w
  end

  it("deploys the article's CMK template (identity, access policy, registry) as an LRO", function()
    local w = prepare()
    local reg = W.uniq("tmplreg")
    local r = E.arm("PUT", dep_path(w.rg, "cmk"), { properties = { mode = "Incremental", template = tmpl,
      parameters = params({ vault_name = w.vault, registry_name = reg, identity_name = "tmpl-uai",
        kek_id = w.kid }) } }, { api_version = API })
    assert.equal(201, r.status, r.body)
    assert.equal("Accepted", r.json.properties.provisioningState)
    assert.matches("/providers/Microsoft.Resources/deployments/cmk/operationStatuses/08584%d+%?api%-version=",
      r.headers["azure-asyncoperation"])
    local st = W.wait(r)
    assert.equal("Succeeded", st.status, cjson.encode(st))
    local d = E.arm("GET", dep_path(w.rg, "cmk"), nil, { api_version = API })
    assert.equal(200, d.status, d.body)
    assert.equal("Succeeded", d.json.properties.provisioningState)
    assert.equal(3, #d.json.properties.outputResources)
    assert.equal("String", d.json.properties.parameters.kek_id.type)
    -- the registry is exactly what a direct create gives
    local g = W.get_registry(sub, w.rg, reg)
    assert.equal(200, g.status, g.body)
    local uai = E.arm("GET", "/subscriptions/" .. sub .. "/resourceGroups/" .. w.rg ..
      "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/tmpl-uai", nil, { api_version = W.MI_API }).json
    assert.equal("userAssigned", g.json.identity.type)
    assert.equal("enabled", g.json.properties.encryption.status)
    assert.equal(w.kid, g.json.properties.encryption.keyVaultProperties.versionedKeyIdentifier)
    assert.equal(uai.properties.clientId, g.json.properties.encryption.keyVaultProperties.identity)
    assert.equal("Premium", g.json.sku.name)
    -- the access policy landed on the vault
    local v = E.arm("GET", W.vault_path(sub, w.rg, w.vault), nil, { api_version = W.KV_API }).json
    local found = false
    for _, ap in ipairs(v.properties.accessPolicies) do
      if ap.objectId == uai.properties.principalId then found = true end
    end
    assert.is_true(found)
    -- operations: three, all succeeded
    local ops = E.arm("GET", dep_path(w.rg, "cmk") .. "/operations", nil, { api_version = API })
    assert.equal(200, ops.status, ops.body)
    assert.equal(3, #ops.json.value)
    for _, op in ipairs(ops.json.value) do assert.equal("Succeeded", op.properties.provisioningState) end
    local one = E.arm("GET", dep_path(w.rg, "cmk") .. "/operations/" .. ops.json.value[1].operationId, nil,
      { api_version = API })
    assert.equal(200, one.status, one.body)
    assert.same(ops.json.value[1], one.json)
    -- and the data plane answers normally
    assert.equal(401, W.v2(reg).status)
  end)

  it("fails with DeploymentFailed and the inner error as a JSON string (missing key)", function()
    local w = prepare()
    local reg = W.uniq("failreg")
    local kek = "https://" .. w.vault .. ".vault.azure.net/keys/nosuchkey/0123456789abcdef0123456789abcdef"
    local r = E.arm("PUT", dep_path(w.rg, "cmk-bad"), { properties = { mode = "Incremental", template = tmpl,
      parameters = params({ vault_name = w.vault, registry_name = reg, identity_name = "tmpl-uai2",
        kek_id = kek }) } }, { api_version = API })
    assert.equal(201, r.status, r.body)
    local st = W.wait(r)
    assert.equal("Failed", st.status)
    assert.equal("DeploymentFailed", st.error.code)
    assert.equal("At least one resource deployment operation failed. Please list deployment operations for " ..
      "details. Please see https://aka.ms/arm-deployment-operations for usage details.", st.error.message)
    assert.equal(1, #st.error.details)
    assert.equal("BadRequest", st.error.details[1].code)
    local inner = assert(cjson.decode(st.error.details[1].message))
    assert.equal("KeyVaultAccessFailed", inner.error.code)
    assert.matches("Failed to access KeyId '" .. kek .. "'", inner.error.message, 1, true)
    local d = E.arm("GET", dep_path(w.rg, "cmk-bad"), nil, { api_version = API }).json
    assert.equal("Failed", d.properties.provisioningState)
    assert.equal("DeploymentFailed", d.properties.error.code)
    local ops = E.arm("GET", dep_path(w.rg, "cmk-bad") .. "/operations", nil, { api_version = API }).json.value
    local failed
    for _, op in ipairs(ops) do
      if op.properties.provisioningState == "Failed" then failed = op end
    end
    assert.truthy(failed)
    assert.equal("Microsoft.ContainerRegistry/registries", failed.properties.targetResource.resourceType)
    assert.equal("BadRequest", failed.properties.statusCode)
    assert.equal("KeyVaultAccessFailed", failed.properties.statusMessage.error.code)
    assert.equal(404, W.get_registry(sub, w.rg, reg).status)
  end)

  it("validates without deploying (POST .../validate)", function()
    local w = prepare()
    local reg = W.uniq("valreg")
    local r = E.arm("POST", dep_path(w.rg, "val") .. "/validate", { properties = { mode = "Incremental",
      template = tmpl, parameters = params({ vault_name = w.vault, registry_name = reg, identity_name = "val-uai",
        kek_id = w.kid }) } }, { api_version = API })
    assert.equal(200, r.status, r.body)
    assert.equal("Succeeded", r.json.properties.provisioningState)
    assert.equal(3, #r.json.properties.validatedResources)
    assert.equal(404, W.get_registry(sub, w.rg, reg).status)
    assert.equal(404, E.arm("GET", dep_path(w.rg, "val"), nil, { api_version = API }).status)
    r = E.arm("POST", dep_path(w.rg, "val") .. "/validate", { properties = { mode = "Incremental",
      template = tmpl } }, { api_version = API })
    E.assert_arm_error(r, 400, "InvalidTemplate")
  end)

  it("deploys a vault (tenant from subscription()) and an access policy for a new identity", function()
    local rg = W.uniq("vaultrg")
    W.create_rg(sub, rg)
    local vault = W.uniq("tkv")
    local t = {
      ["$schema"] = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
      contentVersion = "1.0.0.0",
      parameters = { vault = { type = "string" } },
      resources = {
        { type = "Microsoft.KeyVault/vaults/accessPolicies", apiVersion = "2023-07-01",
          name = "[concat(parameters('vault'), '/add')]",
          dependsOn = { "[resourceId('Microsoft.KeyVault/vaults', parameters('vault'))]" },
          properties = { accessPolicies = { { tenantId = "[subscription().tenantId]",
            objectId = "[reference('tuai').principalId]",
            permissions = { keys = { "get", "wrapKey", "unwrapKey" } } } } } },
        { type = "Microsoft.KeyVault/vaults", apiVersion = "2023-07-01", name = "[parameters('vault')]",
          location = "[resourceGroup().location]",
          properties = { tenantId = "[subscription().tenantId]", sku = { family = "A", name = "standard" },
            enableSoftDelete = true, enablePurgeProtection = true, accessPolicies = {} } },
        { type = "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion = "2023-01-31", name = "tuai",
          location = "[resourceGroup().location]" },
      },
      outputs = { principal = { type = "string",
        value = "[reference(resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', 'tuai')).principalId]" } },
    }
    local r = E.arm("PUT", dep_path(rg, "kv"), { properties = { mode = "Incremental", template = t,
      parameters = params({ vault = vault }) } }, { api_version = API })
    assert.equal(201, r.status, r.body)
    local st = W.wait(r)
    assert.equal("Succeeded", st.status, cjson.encode(st))
    local d = E.arm("GET", dep_path(rg, "kv"), nil, { api_version = API }).json
    local v = E.arm("GET", W.vault_path(sub, rg, vault), nil, { api_version = W.KV_API }).json
    assert.equal(true, v.properties.enablePurgeProtection)
    assert.equal(d.properties.outputs.principal.value, v.properties.accessPolicies[1].objectId)
  end)

  it("shows Running until the LRO pacing is met (status polls and GETs of the deployment both count)", function()
    local w = prepare()
    E.control("POST", "config", { lro = { polls = 3 } })
    local r = E.arm("PUT", dep_path(w.rg, "slow"), { properties = { mode = "Incremental", template = {
      ["$schema"] = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
      contentVersion = "1.0.0.0", resources = {} } } }, { api_version = API })
    assert.equal(201, r.status, r.body)
    local url = r.headers["azure-asyncoperation"]
    local p = E.request({ method = "GET", url = url, headers = { Authorization = "Bearer " .. E.arm_token() } })
    assert.equal("Running", p.json.status)
    assert.equal("Running", E.arm("GET", dep_path(w.rg, "slow"), nil, { api_version = API }).json.properties
      .provisioningState)
    p = E.request({ method = "GET", url = url, headers = { Authorization = "Bearer " .. E.arm_token() } })
    assert.equal("Succeeded", p.json.status)
    E.control("POST", "config", { lro = { polls = 1 } })
  end)

  it("completes when only the deployment itself is polled (az deployment group create --no-wait, then wait)", function()
    local w = prepare()
    E.control("POST", "config", { lro = { polls = 2 } })
    finally(function() E.control("POST", "config", { lro = { polls = 1 } }) end)
    local r = E.arm("PUT", dep_path(w.rg, "nowait"), { properties = { mode = "Incremental", template = {
      ["$schema"] = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
      contentVersion = "1.0.0.0", resources = {} } } }, { api_version = API })
    assert.equal(201, r.status, r.body)
    local states = {}
    for i = 1, 3 do
      states[i] = E.arm("GET", dep_path(w.rg, "nowait"), nil, { api_version = API }).json.properties.provisioningState
    end
    assert.same({ "Running", "Succeeded", "Succeeded" }, states)
  end)

  it("reads az's JSONC body: the template pasted unquoted after 'template:', comments and all", function()
    local w = prepare()
    -- what `az deployment group create --template-file` sends (JsonCTemplatePolicy)
    local body = '{"properties": {"parameters": {"name": {"value": "' .. W.uniq("idc") .. '"}}, ' ..
      '"mode": "Incremental", template:{\n  // a comment, as template files may have\n' ..
      '  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",\n' ..
      '  "contentVersion": "1.0.0.0", /* block */ "parameters": {"name": {"type": "string"}},\n' ..
      '  "resources": [{"type": "Microsoft.ManagedIdentity/userAssignedIdentities", "apiVersion": "2018-11-30",' ..
      ' "name": "[parameters(\'name\')]", "location": "[resourceGroup().location]",},],\n}}}'
    local r = E.arm("POST", dep_path(w.rg, "jsonc") .. "/validate", body, { api_version = "2021-04-01" })
    assert.equal(200, r.status, r.body)
    r = E.arm("PUT", dep_path(w.rg, "jsonc"), body, { api_version = "2021-04-01" })
    assert.equal(201, r.status, r.body)
    -- still refused: text that is not even lenient JSON
    r = E.arm("PUT", dep_path(w.rg, "jsonc2"), '{"properties": {template: {oops}}}', { api_version = "2021-04-01" })
    E.assert_arm_error(r, 400, "InvalidRequestContent")
  end)

  it("evaluates null parameters, if, copy / copyIndex, length and json", function()
    local w = prepare()
    local t = {
      ["$schema"] = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
      contentVersion = "1.0.0.0",
      parameters = {
        prefix = { type = "string", defaultValue = "idn" },
        count = { type = "int" },
        names = { type = "array", defaultValue = { "a", "b", "c" } },
      },
      variables = { tagsJson = "[json('{\"env\": \"rehearsal\"}')]" },
      resources = {
        { type = "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion = "2018-11-30",
          name = "[concat(parameters('prefix'), '-', copyIndex(1))]", location = "[resourceGroup().location]",
          copy = { name = "ids", count = "[parameters('count')]" },
          -- if() evaluates only the branch taken: the missing parameter is never looked up
          tags = { env = "[variables('tagsJson').env]", n = "[string(length(parameters('names')))]",
            big = "[if(true, 'taken', parameters('nope'))]" } },
      },
      outputs = {
        kind = { type = "string", value = "[if(equals(length(parameters('names')), 3), 'three', json('null'))]" },
        list = { type = "object", value = { copy = { { name = "items", count = 2,
          input = "[concat('item', copyIndex('items'))]" } } } },
      },
    }
    local r = E.arm("PUT", dep_path(w.rg, "funcs"), { properties = { mode = "Incremental", template = t,
      parameters = { prefix = { value = cjson.null }, count = { value = 2 } } } }, { api_version = API })
    assert.equal(201, r.status, r.body)
    local d = E.arm("GET", dep_path(w.rg, "funcs"), nil, { api_version = API }).json
    assert.equal("Succeeded", d.properties.provisioningState, cjson.encode(d.properties.error))
    assert.equal("three", d.properties.outputs.kind.value)
    assert.same({ "item0", "item1" }, d.properties.outputs.list.value.items)
    for _, name in ipairs({ "idn-1", "idn-2" }) do
      local idn = E.arm("GET", "/subscriptions/" .. sub .. "/resourcegroups/" .. w.rg ..
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" .. name, nil, { api_version = "2023-01-31" })
      assert.equal(200, idn.status, name)
      assert.same({ env = "rehearsal", n = "3", big = "taken" }, idn.json.tags)
    end
    assert.equal(2, #E.arm("GET", dep_path(w.rg, "funcs") .. "/operations", nil, { api_version = API }).json.value)
  end)

  it("cancels a running deployment (204, then Canceled); a finished one cannot be canceled", function()
    local w = prepare()
    E.control("POST", "config", { lro = { polls = 5 } })
    local body = { properties = { mode = "Incremental", template = {
      ["$schema"] = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
      contentVersion = "1.0.0.0", resources = {} } } }
    local r = E.arm("PUT", dep_path(w.rg, "tocancel"), body, { api_version = API })
    assert.equal(201, r.status, r.body)
    local c = E.arm("POST", dep_path(w.rg, "tocancel") .. "/cancel", nil, { api_version = API })
    assert.equal(204, c.status, c.body)
    assert.equal("Canceled", E.arm("GET", dep_path(w.rg, "tocancel"), nil, { api_version = API }).json.properties
      .provisioningState)
    local p = E.request({ method = "GET", url = r.headers["azure-asyncoperation"],
      headers = { Authorization = "Bearer " .. E.arm_token() } })
    assert.equal("Canceled", p.json.status)
    E.assert_arm_error(E.arm("POST", dep_path(w.rg, "tocancel") .. "/cancel", nil, { api_version = API }), 409,
      "DeploymentCannotBeCanceled")
    E.assert_arm_error(E.arm("POST", dep_path(w.rg, "nosuch") .. "/cancel", nil, { api_version = API }), 404,
      "DeploymentNotFound")
    E.control("POST", "config", { lro = { polls = 1 } })
  end)

  it("evaluates expressions: variables, concat, uniqueString, resourceGroup(), '' escapes, [[", function()
    local w = prepare()
    local t = {
      ["$schema"] = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
      contentVersion = "1.0.0.0",
      parameters = { prefix = { type = "string", defaultValue = "id" } },
      variables = { suffix = "-x" },
      resources = {},
      outputs = {
        name = { type = "string", value = "[concat(parameters('prefix'), variables('suffix'))]" },
        loc = { type = "string", value = "[resourceGroup().location]" },
        lit = { type = "string", value = "[[not an expression]" },
        tid = { type = "string", value = "[subscription().tenantId]" },
        rid = { type = "string", value = "[resourceId('Microsoft.KeyVault/vaults/accessPolicies', 'v', 'add')]" },
        quote = { type = "string", value = "[concat('it''s')]" },
        u1 = { type = "string", value = "[uniqueString('a')]" },
        u2 = { type = "string", value = "[uniqueString('a')]" },
      },
    }
    local r = E.arm("PUT", dep_path(w.rg, "expr"), { properties = { mode = "Incremental", template = t } },
      { api_version = API })
    assert.equal(201, r.status, r.body)
    assert.equal("Succeeded", W.wait(r).status)
    local o = E.arm("GET", dep_path(w.rg, "expr"), nil, { api_version = API }).json.properties.outputs
    assert.equal("id-x", o.name.value)
    assert.equal("westus", o.loc.value)
    assert.equal("[not an expression]", o.lit.value)
    assert.equal(E.seed().tenant_id, o.tid.value)
    assert.equal("/subscriptions/" .. sub .. "/resourceGroups/" .. w.rg ..
      "/providers/Microsoft.KeyVault/vaults/v/accessPolicies/add", o.rid.value)
    assert.equal("it's", o.quote.value)
    assert.equal(o.u1.value, o.u2.value)
    assert.equal(13, #o.u1.value)
  end)

  it("never answers a 500 to malformed templates", function()
    local w = prepare()
    local uai = "Microsoft.ManagedIdentity/userAssignedIdentities"
    local function res(t) return { resources = { t } } end
    local templates = {
      "x", { 1, 2 }, { resources = "x" }, { resources = { a = 1 } }, { resources = { 5 } },
      res({ type = 5, apiVersion = "2018-11-30", name = "a" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "a/b" }),
      res({ type = "NoSlash", apiVersion = "1", name = "a" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "[concat('a'" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "[parameters(]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "[parameters('nope')]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "[variables('nope')]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "[resourceGroup().nope]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "[resourceId('a')]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "[concat('a', resourceGroup())]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "a", location = "[reference('missing').x]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "a", location = "[reference(resourceId('" .. uai ..
        "', 'zz')).x]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "a", location = "westus", dependsOn = "x" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "a", location = "westus", dependsOn = { 5 } }),
      res({ type = uai, apiVersion = "2018-11-30", name = "a", location = "[resourceGroup().location[5]]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "a", location = "[toLower(5)]" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "a", location = "[@@]" }),
      res({ type = uai, apiVersion = "1999-01-01", name = "a", location = "westus" }),
      res({ type = uai, apiVersion = "2018-11-30", name = "bad name!", location = "westus" }),
      { parameters = { p = { type = "int" } }, resources = {} },
      { parameters = { p = "x" }, resources = {} },
      { variables = { a = "[variables('a')]" }, resources = {}, outputs = { o = { type = "string",
        value = "[variables('a')]" } } },
      { resources = {}, outputs = { o = { type = "string", value = "[nosuch()]" } } },
      { resources = {}, outputs = "x" },
    }
    for i, t in ipairs(templates) do
      local r = E.arm("PUT", dep_path(w.rg, "m" .. i), { properties = { mode = "Incremental", template = t,
        parameters = (i == #templates - 3) and { p = { value = "str" } } or nil } }, { api_version = API })
      assert.truthy(r.status < 500, "template " .. i .. ": " .. r.status .. " " .. r.body)
      if r.status == 201 or r.status == 200 then
        local st = W.wait(r)
        assert.truthy(st.status == "Succeeded" or st.status == "Failed")
      else
        assert.truthy(r.json and r.json.error and r.json.error.code, r.body)
      end
    end
    for _, b in ipairs({ { properties = "x" }, { properties = { mode = 5, template = {} } },
      { properties = { mode = "Incremental", template = {}, parameters = { 1 } } },
      { properties = { mode = "Incremental", template = {}, parameters = "x" } },
      { properties = { mode = "Incremental", template = { parameters = { p = { type = "string" } } },
        parameters = { p = "novalue" } } },
      { properties = { mode = "Incremental", templateLink = { uri = "https://example.com/t.json" } } } }) do
      local r = E.arm("PUT", dep_path(w.rg, "bad-body"), b, { api_version = API })
      E.assert_arm_error(r, 400, r.json and r.json.error and r.json.error.code or "?")
    end
    E.assert_no_internal_errors()
  end)

  it("refuses bad input with ARM's status and envelope", function()
    local w = prepare()
    local function put(name, body, opts)
      return E.arm("PUT", dep_path(w.rg, name), body, opts or { api_version = API })
    end
    local good = { properties = { mode = "Incremental", template = tmpl } }
    E.assert_arm_error(put("bad-json", "{oops"), 400, "InvalidRequestContent")
    E.assert_arm_error(put("no-props", {}), 400, "InvalidRequestContent")
    E.assert_arm_error(put("no-mode", { properties = { template = tmpl } }), 400, "InvalidRequestContent")
    E.assert_arm_error(put("bad-mode", { properties = { mode = "Sideways", template = tmpl } }), 400,
      "InvalidRequestContent")
    E.assert_arm_error(put("no-tmpl", { properties = { mode = "Incremental" } }), 400, "InvalidRequestContent")
    -- kek_id has no default
    local e = E.assert_arm_error(put("no-param", good), 400, "InvalidTemplate")
    assert.matches("The value for the template parameter 'kek_id'", e.message, 1, true)
    e = E.assert_arm_error(put("extra-param", { properties = { mode = "Incremental", template = tmpl,
      parameters = params({ kek_id = "x", key_id = "y" }) } }), 400, "InvalidTemplate")
    assert.matches("The template parameters 'key_id' in the parameters file are not valid", e.message, 1, true)
    e = E.assert_arm_error(put("bad-type", { properties = { mode = "Incremental", template = tmpl,
      parameters = params({ kek_id = 5 }) } }), 400, "InvalidTemplate")
    assert.matches("Expected 'String'. Actual 'Integer'", e.message, 1, true)
    E.assert_arm_error(put("bad-expr", { properties = { mode = "Incremental", template = { resources = {
      { type = "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion = "2018-11-30",
        name = "[nosuchfunction('a')]", location = "westus" } } } } }), 400, "InvalidTemplate")
    E.assert_arm_error(put("bad-dep", { properties = { mode = "Incremental", template = { resources = {
      { type = "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion = "2018-11-30", name = "a",
        location = "westus", dependsOn = { "nothere" } } } } } }), 400, "InvalidTemplate")
    e = E.assert_arm_error(put("cycle", { properties = { mode = "Incremental", template = { resources = {
      { type = "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion = "2018-11-30", name = "a",
        location = "westus", dependsOn = { "b" } },
      { type = "Microsoft.ManagedIdentity/userAssignedIdentities", apiVersion = "2018-11-30", name = "b",
        location = "westus", dependsOn = { "a" } } } } } }), 400, "InvalidTemplate")
    assert.matches("Circular dependency", e.message, 1, true)
    E.assert_arm_error(put(string.rep("x", 65), good), 400, "DeploymentNameLengthLimitExceeded")
    E.assert_arm_error(put("bad%20name!", good), 400, "InvalidDeploymentName")
    E.assert_arm_error(put("v", good, { api_version = "2011-01-01" }), 400, "InvalidApiVersionParameter")
    local r = E.arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/nosuchrg/providers/Microsoft.Resources/" ..
      "deployments/x", good, { api_version = API })
    E.assert_arm_error(r, 404, "ResourceGroupNotFound")
    E.assert_arm_error(E.arm("GET", dep_path(w.rg, "never"), nil, { api_version = API }), 404, "DeploymentNotFound")
    -- an unknown resource type in a template fails the deployment (not the request)
    r = put("unknown-type", { properties = { mode = "Incremental", template = { resources = {
      { type = "Microsoft.Nope/things", apiVersion = "2020-01-01", name = "a", location = "westus" } } } } })
    assert.equal(201, r.status, r.body)
    local st = W.wait(r)
    assert.equal("Failed", st.status)
    assert.equal("NotFound", st.error.details[1].code)
  end)
end)
