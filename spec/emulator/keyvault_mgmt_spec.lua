-- Key Vault management plane (Microsoft.KeyVault/vaults) on the emulator, over real HTTPS.
local E = require("support.emulator")
local KV = require("support.keyvault")

local API = KV.API

local function get(rg, name, api)
  return E.arm("GET", KV.vault_path(rg, name), nil, { api_version = api or API })
end

local function put(rg, name, body, opts)
  opts = opts or {}
  return E.arm("PUT", KV.vault_path(rg, name), body, { api_version = opts.api or API, token = opts.token })
end

local function name_msg(n)
  return "The vault name '" .. n .. "' is invalid. A vault's name must be between 3-24 alphanumeric characters. " ..
    "The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens. Follow " ..
    "this link for more information: https://go.microsoft.com/fwlink/?linkid=2147742"
end

describe("emulator Key Vault management plane", function()
  local rg, seed

  -- The specs move the simulated clock by weeks: start from and leave the seeded state.
  teardown(function() E.reset() end)

  setup(function()
    seed = E.fresh()
    rg = KV.rg(KV.uniq("rg"))
  end)

  after_each(function() E.assert_no_internal_errors() end)

  it("creates a vault: RegisteringDns in the PUT answer, Succeeded on GET, Azure's defaults", function()
    local name = KV.uniq("kv")
    local res = KV.vault(rg, name)
    local p = res.json.properties
    assert.equal("RegisteringDns", p.provisioningState)
    assert.equal("https://" .. name .. ".vault.azure.net/", p.vaultUri)
    assert.equal(KV.vault_path(rg, name), res.json.id)
    assert.equal("Microsoft.KeyVault/vaults", res.json.type)
    assert.equal("westus", res.json.location)
    local g = get(rg, name)
    assert.equal(200, g.status)
    p = g.json.properties
    assert.equal("Succeeded", p.provisioningState)
    assert.is_true(p.enableSoftDelete)
    assert.equal(90, p.softDeleteRetentionInDays)
    -- unset flags are left out, as recorded Azure traffic shows (not false)
    for _, f in ipairs({ "enableRbacAuthorization", "enablePurgeProtection", "enabledForDeployment",
      "enabledForDiskEncryption", "enabledForTemplateDeployment" }) do
      assert.is_nil(p[f], f)
    end
    assert.equal("Enabled", p.publicNetworkAccess)
    assert.same({ family = "A", name = "standard" }, p.sku)
    assert.equal(seed.tenant_id, p.tenantId)
    assert.equal(1, #p.accessPolicies)
    assert.is_table(g.json.systemData)
  end)

  it("paces DNS registration with the LRO config: polls and simulated seconds, or done at create", function()
    local function state_of(name) return get(rg, name).json.properties.provisioningState end
    finally(function() E.control("POST", "config", { lro = { polls = 1, seconds = 0 } }) end)

    E.control("POST", "config", { lro = { polls = 3, seconds = 0 } })
    local slow = KV.uniq("kv")
    assert.equal("RegisteringDns", KV.vault(rg, slow).json.properties.provisioningState)
    assert.equal("RegisteringDns", state_of(slow))
    assert.equal("RegisteringDns", state_of(slow))
    assert.equal("Succeeded", state_of(slow))
    assert.equal("Succeeded", state_of(slow))   -- stays done

    E.control("POST", "config", { lro = { polls = 1, seconds = 30 } })
    local timed = KV.uniq("kv")
    KV.vault(rg, timed)
    assert.equal("RegisteringDns", state_of(timed))
    E.control("POST", "clock", { advance = 31 })
    assert.equal("Succeeded", state_of(timed))

    E.control("POST", "config", { lro = { polls = 0, seconds = 0 } })
    local quick = KV.uniq("kv")
    assert.equal("Succeeded", KV.vault(rg, quick).json.properties.provisioningState)
    assert.equal("Succeeded", state_of(quick))
  end)

  it("resolves racing PUTs: one vault per name, same-id PUTs all succeed, another RG gets 409", function()
    local cjson = require("cjson.safe")
    local client = require("azcmk.http").new({ http_version = "1.1" }, E.ensure())
    local n = KV.uniq("kv")
    local rg2 = KV.rg(KV.uniq("rg"))
    local auth = { Authorization = "Bearer " .. E.arm_token(), ["Content-Type"] = "application/json" }
    local body = cjson.encode({ location = "westus", properties = KV.props() })
    local reqs = {}
    for i = 1, 12 do
      reqs[i] = { method = "PUT", url = "https://management.azure.com" .. KV.vault_path(i % 3 == 0 and rg2 or rg, n) ..
        "?api-version=" .. API, headers = auth, body = body }
    end
    local codes = {}
    for _, r in ipairs(client:batch(reqs, { max_parallel = 12 })) do
      assert.is_nil(r.error, tostring(r.error))
      codes[r.status] = (codes[r.status] or 0) + 1
    end
    client:close()
    -- whichever resource group won, its PUTs succeed and the others get VaultAlreadyExists
    local seen = {}
    for st, c in pairs(codes) do seen[#seen + 1] = st .. "x" .. c end
    assert.is_true(codes[200] == 8 or codes[200] == 4, "statuses " .. table.concat(seen, " "))
    assert.equal(12, codes[200] + (codes[409] or 0))
  end)

  it("accepts the older api-versions and refuses unknown ones", function()
    local name = KV.uniq("kv")
    KV.vault(rg, name)
    for _, v in ipairs({ "2025-05-01", "2024-11-01", "2023-07-01", "2023-02-01", "2022-07-01", "2021-10-01",
      "2019-09-01" }) do
      assert.equal(200, get(rg, name, v).status)
    end
    E.assert_arm_error(get(rg, name, "2099-01-01"), 400, "NoRegisteredProviderFound")
    local res = E.arm("GET", KV.vault_path(rg, name), nil, {})
    E.assert_arm_error(res, 400, "MissingApiVersionParameter")
  end)

  it("validates vault names", function()
    for _, n in ipairs({ "ab", "1abc", "ab--cd", "abc-", "abcdefghijklmnopqrstuvwxy", "a_bc" }) do
      local e = E.assert_arm_error(put(rg, n, { location = "westus", properties = KV.props() }), 400,
        "VaultNameNotValid")
      assert.equal(name_msg(n), e.message)
    end
    assert.equal(200, put(rg, KV.uniq("a-b"), { location = "westus", properties = KV.props() }).status)
  end)

  it("keeps vault names globally unique", function()
    local name = KV.uniq("kv")
    KV.vault(rg, name)
    local rg2 = KV.rg(KV.uniq("rg"))
    local e = E.assert_arm_error(put(rg2, name, { location = "westus", properties = KV.props() }), 409,
      "VaultAlreadyExists")
    assert.equal("The vault name '" .. name .. "' is already in use. Vault names are globally unique so it is " ..
      "possible that the name is already taken. If you are sure that the vault name was not taken then it is " ..
      "possible that a vault with the same name was recently deleted but not purged after being placed in a " ..
      "recoverable state. If the vault is in a recoverable state then the vault will need to be purged before " ..
      "reusing the name. For more information about VaultAlreadyExists, soft delete and purging a vault follow " ..
      "this link https://go.microsoft.com/fwlink/?linkid=2147740.", e.message)
  end)

  it("validates VaultCreateOrUpdateParameters", function()
    local n = KV.uniq("kv")
    E.assert_arm_error(put(rg, n, { properties = KV.props() }), 400, "LocationRequired")
    E.assert_arm_error(put(rg, n, { location = "moon", properties = KV.props() }), 400,
      "LocationNotAvailableForResourceType")
    E.assert_arm_error(put(rg, n, { location = "westus" }), 400, "BadRequest")
    E.assert_arm_error(put(rg, n, { location = "westus", properties = "x" }), 400, "InvalidRequestContent")
    local p = KV.props()
    p.tenantId = nil
    E.assert_arm_error(put(rg, n, { location = "westus", properties = p }), 400, "BadRequest")
    p = KV.props({ tenantId = "not-a-guid" })
    E.assert_arm_error(put(rg, n, { location = "westus", properties = p }), 400, "BadRequest")
    p = KV.props()
    p.sku = nil
    E.assert_arm_error(put(rg, n, { location = "westus", properties = p }), 400, "BadRequest")
    for _, sku in ipairs({ { family = "B", name = "standard" }, { family = "A", name = "gold" }, { family = "A" } }) do
      E.assert_arm_error(put(rg, n, { location = "westus", properties = KV.props({ sku = sku }) }), 400, "BadRequest")
    end
    p = KV.props()
    p.accessPolicies = nil
    local e = E.assert_arm_error(put(rg, n, { location = "westus", properties = p }), 400, "BadRequest")
    assert.matches("accessPolicies", e.message)
    local many = {}
    for i = 1, 1025 do
      many[i] = { tenantId = seed.tenant_id, objectId = string.format("00000000-0000-4000-8000-%012d", i),
        permissions = { keys = { "get" } } }
    end
    E.assert_arm_error(put(rg, n, { location = "westus", properties = KV.props({ accessPolicies = many }) }), 400,
      "AccessPoliciesLimitExceeded")
    E.assert_arm_error(put(rg, n, { location = "westus", properties = KV.props(nil, { "get", "fly" }) }), 400,
      "BadRequest")
    E.assert_arm_error(put(rg, n, { location = "westus", properties = KV.props({ enableRbacAuthorization = "yes" }) }),
      400, "BadRequest")
    local res = E.request({ method = "PUT", url = "https://management.azure.com" .. KV.vault_path(rg, n) ..
      "?api-version=" .. API, body = "{not json", headers = { Authorization = "Bearer " .. E.arm_token(),
        ["Content-Type"] = "application/json" } })
    E.assert_arm_error(res, 400, "InvalidRequestContent")
    -- 1024 entries are fine
    many[1025] = nil
    assert.equal(200, put(rg, n, { location = "westus", properties = KV.props({ accessPolicies = many }) }).status)
  end)

  it("enforces soft delete, retention 7-90 fixed at creation, and irreversible purge protection", function()
    local n = KV.uniq("kv")
    E.assert_arm_error(put(rg, n, { location = "westus", properties = KV.props({ enableSoftDelete = false }) }),
      400, "BadRequest")
    for _, d in ipairs({ 6, 91, 7.5 }) do
      E.assert_arm_error(put(rg, n, { location = "westus",
        properties = KV.props({ softDeleteRetentionInDays = d }) }), 400, "BadRequest")
    end
    assert.equal(200, put(rg, n, { location = "westus", properties = KV.props({ softDeleteRetentionInDays = 7 }) })
      .status)
    assert.equal(7, get(rg, n).json.properties.softDeleteRetentionInDays)
    local e = E.assert_arm_error(put(rg, n, { location = "westus",
      properties = KV.props({ softDeleteRetentionInDays = 30 }) }), 400, "BadRequest")
    assert.matches("softDeleteRetentionInDays", e.message)
    -- the same value again is fine
    assert.equal(200, put(rg, n, { location = "westus", properties = KV.props({ softDeleteRetentionInDays = 7 }) })
      .status)
    local pt = E.arm("PATCH", KV.vault_path(rg, n), { properties = { enablePurgeProtection = true } },
      { api_version = API })
    assert.equal(200, pt.status)
    assert.is_true(pt.json.properties.enablePurgeProtection)
    e = E.assert_arm_error(E.arm("PATCH", KV.vault_path(rg, n), { properties = { enablePurgeProtection = false } },
      { api_version = API }), 400, "BadRequest")
    assert.matches("enablePurgeProtection", e.message)
    -- a full PUT without the property keeps it on
    assert.is_true(put(rg, n, { location = "westus", properties = KV.props() }).json.properties.enablePurgeProtection)
    E.assert_arm_error(E.arm("PATCH", KV.vault_path(rg, n), { properties = { enableSoftDelete = false } },
      { api_version = API }), 400, "BadRequest")
  end)

  it("normalises networkAcls and validates them", function()
    local n = KV.uniq("kv")
    local res = put(rg, n, { location = "westus", properties = KV.props({ networkAcls = { defaultAction = "Deny",
      ipRules = { { value = "10.1.2.3" }, { value = "192.168.0.0/16" } } }, publicNetworkAccess = "enabled" }) })
    assert.equal(200, res.status)
    local acls = res.json.properties.networkAcls
    assert.equal("AzureServices", acls.bypass)
    assert.equal("Deny", acls.defaultAction)
    assert.same({ { value = "10.1.2.3/32" }, { value = "192.168.0.0/16" } }, acls.ipRules)
    assert.same({}, acls.virtualNetworkRules)
    assert.equal("Enabled", res.json.properties.publicNetworkAccess)
    for _, bad in ipairs({ { ipRules = { { value = "300.1.1.1" } } }, { ipRules = { { value = "1.2.3.4/40" } } },
      { bypass = "Everyone" }, { defaultAction = "Maybe" } }) do
      E.assert_arm_error(put(rg, n, { location = "westus", properties = KV.props({ networkAcls = bad }) }), 400,
        "BadRequest")
    end
    E.assert_arm_error(put(rg, n, { location = "westus",
      properties = KV.props({ publicNetworkAccess = "Sometimes" }) }),
      400, "BadRequest")
  end)

  it("PATCHes tags and properties, lists vaults, 404s a missing one", function()
    local n = KV.uniq("kv")
    KV.vault(rg, n, nil, { tags = { a = "1" } })
    local res = E.arm("PATCH", KV.vault_path(rg, n), { tags = { b = "2" }, properties = {
      enableRbacAuthorization = true, sku = { family = "A", name = "premium" } } }, { api_version = API })
    assert.equal(200, res.status)
    assert.same({ b = "2" }, res.json.tags)
    assert.is_true(res.json.properties.enableRbacAuthorization)
    assert.equal("premium", res.json.properties.sku.name)
    assert.equal(1, #res.json.properties.accessPolicies)
    local list = E.arm("GET", "/subscriptions/" .. KV.sub() .. "/resourceGroups/" .. rg ..
      "/providers/Microsoft.KeyVault/vaults", nil, { api_version = API })
    assert.equal(200, list.status)
    local found = false
    for _, v in ipairs(list.json.value) do if v.name == n then found = true end end
    assert.is_true(found)
    local e = E.assert_arm_error(get(rg, "nosuchvault1"), 404, "ResourceNotFound")
    assert.matches("nosuchvault1", e.message)
    E.assert_arm_error(E.arm("PATCH", KV.vault_path(rg, "nosuchvault1"), { tags = {} }, { api_version = API }), 404,
      "ResourceNotFound")
  end)

  it("edits access policies with accessPolicies/{add|replace|remove}", function()
    local n = KV.uniq("kv")
    KV.vault(rg, n)
    local path = KV.vault_path(rg, n) .. "/accessPolicies/"
    local oid = seed.noaccess.object_id
    local entry = { tenantId = seed.tenant_id, objectId = oid, permissions = { keys = { "wrapKey", "get" } } }
    local res = E.arm("PUT", path .. "add", { properties = { accessPolicies = { entry } } }, { api_version = API })
    assert.equal(200, res.status)
    assert.equal(KV.vault_path(rg, n) .. "/accessPolicies/", res.json.id)
    assert.equal("Microsoft.KeyVault/vaults/accessPolicies", res.json.type)
    assert.same({ entry }, res.json.properties.accessPolicies)
    entry.permissions.keys = { "unwrapKey" }
    E.arm("PUT", path .. "add", { properties = { accessPolicies = { entry } } }, { api_version = API })
    local p = get(rg, n).json.properties.accessPolicies
    assert.equal(2, #p)
    assert.same({ "wrapKey", "get", "unwrapKey" }, p[2].permissions.keys)
    entry.permissions.keys = { "get" }
    E.arm("PUT", path .. "remove", { properties = { accessPolicies = { entry } } }, { api_version = API })
    assert.same({ "wrapKey", "unwrapKey" }, get(rg, n).json.properties.accessPolicies[2].permissions.keys)
    entry.permissions.keys = { "list" }
    E.arm("PUT", path .. "replace", { properties = { accessPolicies = { entry } } }, { api_version = API })
    assert.same({ "list" }, get(rg, n).json.properties.accessPolicies[2].permissions.keys)
    E.arm("PUT", path .. "remove", { properties = { accessPolicies = { entry } } }, { api_version = API })
    assert.equal(1, #get(rg, n).json.properties.accessPolicies)
    E.assert_arm_error(E.arm("PUT", path .. "merge", { properties = { accessPolicies = { entry } } },
      { api_version = API }), 400, "BadRequest")
    E.assert_arm_error(E.arm("PUT", path .. "add", { properties = {} }, { api_version = API }), 400, "BadRequest")
  end)

  it("refuses callers without Microsoft.KeyVault/vaults/write and /read", function()
    local n = KV.uniq("kv")
    KV.vault(rg, n)
    local tok = E.arm_token("noaccess")
    local e = E.assert_arm_error(put(rg, n, { location = "westus", properties = KV.props() }, { token = tok }), 403,
      "AuthorizationFailed")
    assert.matches("Microsoft.KeyVault/vaults/write", e.message, 1, true)
    e = E.assert_arm_error(E.arm("GET", KV.vault_path(rg, n), nil, { api_version = API, token = tok }), 403,
      "AuthorizationFailed")
    assert.matches("Microsoft.KeyVault/vaults/read", e.message, 1, true)
    E.assert_arm_error(E.arm("POST", "/subscriptions/" .. KV.sub() .. "/providers/Microsoft.KeyVault/" ..
      "checkNameAvailability", { name = "abc", type = "Microsoft.KeyVault/vaults" }, { api_version = API,
        token = tok }), 403, "AuthorizationFailed")
  end)

  it("checks name availability", function()
    local path = "/subscriptions/" .. KV.sub() .. "/providers/Microsoft.KeyVault/checkNameAvailability"
    local n = KV.uniq("kv")
    local res = E.arm("POST", path, { name = n, type = "Microsoft.KeyVault/vaults" }, { api_version = API })
    assert.equal(200, res.status)
    assert.same({ nameAvailable = true }, res.json)
    KV.vault(rg, n)
    res = E.arm("POST", path, { name = n:upper(), type = "Microsoft.KeyVault/vaults" }, { api_version = API })
    assert.is_false(res.json.nameAvailable)
    assert.equal("AlreadyExists", res.json.reason)
    res = E.arm("POST", path, { name = "a--b", type = "Microsoft.KeyVault/vaults" }, { api_version = API })
    assert.equal("AccountNameInvalid", res.json.reason)
    assert.equal(name_msg("a--b"), res.json.message)
    E.assert_arm_error(E.arm("POST", path, { name = n, type = "Microsoft.Storage/storageAccounts" },
      { api_version = API }), 400, "BadRequest")
  end)

  it("lists vaults through /resources with api-version 2015-11-01", function()
    local n = KV.uniq("kv")
    KV.vault(rg, n)
    local res = E.arm("GET", "/subscriptions/" .. KV.sub() .. "/resources?$filter=" ..
      E.urlencode("resourceType eq 'Microsoft.KeyVault/vaults' and name eq '" .. n .. "'"), nil,
      { api_version = "2015-11-01" })
    assert.equal(200, res.status, res.body)
    assert.equal(1, #res.json.value)
    assert.equal(KV.vault_path(rg, n), res.json.value[1].id)
  end)

  describe("Microsoft.KeyVault/vaults/keys (ARM)", function()
    it("creates the first version, returns an existing key untouched, lists keys and versions", function()
      local n = KV.uniq("kv")
      KV.vault(rg, n, KV.props(nil, { "get", "getrotationpolicy" })) -- no create permission: ARM needs none
      local kp = KV.vault_path(rg, n) .. "/keys/armkey"
      local res = E.arm("PUT", kp, { tags = { env = "t" }, properties = { kty = "RSA", keySize = 3072,
        keyOps = { "wrapKey", "unwrapKey" }, attributes = { enabled = true },
        rotationPolicy = { attributes = { expiryTime = "P90D" },
          lifetimeActions = { { trigger = { timeAfterCreate = "P30D" }, action = { type = "rotate" } } } } } },
        { api_version = API })
      assert.equal(200, res.status, res.body)
      assert.equal(kp, res.json.id)
      assert.equal("Microsoft.KeyVault/vaults/keys", res.json.type)
      assert.equal("armkey", res.json.name)
      local p = res.json.properties
      assert.equal("RSA", p.kty)
      assert.equal(3072, p.keySize)
      assert.same({ "wrapKey", "unwrapKey" }, p.keyOps)
      assert.equal("https://" .. n .. ".vault.azure.net/keys/armkey", p.keyUri)
      assert.matches("^https://" .. n .. "%.vault%.azure%.net/keys/armkey/%x+$", p.keyUriWithVersion)
      assert.is_true(p.attributes.enabled)
      assert.equal("Recoverable+Purgeable", p.attributes.recoveryLevel)
      assert.equal("rotate", p.rotationPolicy.lifetimeActions[1].action.type)
      -- the data plane serves the same key
      local dp = KV.req("GET", n, "/keys/armkey")
      assert.equal(p.keyUriWithVersion, dp.json.key.kid)
      assert.equal("Rotate", KV.req("GET", n, "/keys/armkey/rotationpolicy").json.lifetimeActions[1].action.type)
      -- PUT again: no new version
      local again = E.arm("PUT", kp, { properties = { kty = "RSA" } }, { api_version = API })
      assert.equal(200, again.status)
      assert.equal(p.keyUriWithVersion, again.json.properties.keyUriWithVersion)
      assert.equal(p.keyUriWithVersion, E.arm("GET", kp, nil, { api_version = API }).json.properties.keyUriWithVersion)
      local list = E.arm("GET", KV.vault_path(rg, n) .. "/keys", nil, { api_version = API })
      assert.equal(1, #list.json.value)
      local vers = E.arm("GET", kp .. "/versions", nil, { api_version = API })
      assert.equal(1, #vers.json.value)
      assert.equal("Microsoft.KeyVault/vaults/keys/versions", vers.json.value[1].type)
      local ver = p.keyUriWithVersion:match("(%x+)$")
      assert.equal(200, E.arm("GET", kp .. "/versions/" .. ver, nil, { api_version = API }).status)
      E.assert_arm_error(E.arm("GET", kp .. "/versions/" .. string.rep("0", 32), nil, { api_version = API }), 404,
        "ResourceNotFound")
      E.assert_arm_error(E.arm("GET", KV.vault_path(rg, n) .. "/keys/none", nil, { api_version = API }), 404,
        "ResourceNotFound")
      for _, bad in ipairs({ {}, { properties = { kty = "oct" } }, { properties = { kty = "RSA", keySize = 1024 } },
        { properties = { kty = "EC", curveName = "P-1" } }, { properties = { kty = "RSA-HSM" } },
        { properties = { kty = "RSA", keyOps = { "fly" } } },
        { properties = { kty = "RSA", rotationPolicy = { attributes = { expiryTime = "P1D" } } } } }) do
        E.assert_arm_error(E.arm("PUT", KV.vault_path(rg, n) .. "/keys/bad", bad, { api_version = API }), 400,
          "BadRequest")
      end
      E.assert_arm_error(E.arm("PUT", KV.vault_path(rg, n) .. "/keys/a_b", { properties = { kty = "RSA" } },
        { api_version = API }), 400, "BadRequest")
      E.assert_arm_error(E.arm("PUT", KV.vault_path(rg, "nosuchvault9") .. "/keys/k", { properties = { kty = "RSA" } },
        { api_version = API }), 404, "ResourceNotFound")
      E.assert_arm_error(E.arm("PUT", kp, { properties = { kty = "RSA" } }, { api_version = API,
        token = E.arm_token("noaccess") }), 403, "AuthorizationFailed")
    end)
  end)

  describe("soft delete", function()
    local loc_path = function(n)
      return "/subscriptions/" .. KV.sub() .. "/providers/Microsoft.KeyVault/locations/westus/deletedVaults/" .. n
    end

    it("deletes into a recoverable state, blocks the name, recovers the vault with its keys", function()
      local n = KV.uniq("kv")
      KV.vault(rg, n)
      local k = KV.req("POST", n, "/keys/cmk/create", { kty = "RSA" })
      assert.equal(200, k.status)
      local del = E.arm("DELETE", KV.vault_path(rg, n), nil, { api_version = API })
      assert.equal(200, del.status)
      E.assert_arm_error(get(rg, n), 404, "ResourceNotFound")
      assert.equal(204, E.arm("DELETE", KV.vault_path(rg, n), nil, { api_version = API }).status)
      local dv = E.arm("GET", loc_path(n), nil, { api_version = API })
      assert.equal(200, dv.status)
      assert.equal(loc_path(n), dv.json.id)
      assert.equal("Microsoft.KeyVault/deletedVaults", dv.json.type)
      assert.equal(KV.vault_path(rg, n), dv.json.properties.vaultId)
      assert.equal("westus", dv.json.properties.location)
      assert.is_nil(dv.json.properties.purgeProtectionEnabled) -- Azure omits it when off
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", dv.json.properties.deletionDate)
      assert.matches("^%d%d%d%d%-", dv.json.properties.scheduledPurgeDate)
      local list = E.arm("GET", "/subscriptions/" .. KV.sub() .. "/providers/Microsoft.KeyVault/deletedVaults", nil,
        { api_version = API })
      local seen = false
      for _, v in ipairs(list.json.value) do if v.name == n then seen = true end end
      assert.is_true(seen)
      E.assert_arm_error(E.arm("GET", loc_path(n):gsub("westus", "eastus"), nil, { api_version = API }), 404,
        "ResourceNotFound")
      -- the data plane no longer answers
      KV.assert_kv_error(KV.req("GET", n, "/keys/cmk"), 404, "VaultNotFound")
      -- the name stays taken
      local e = E.assert_arm_error(put(rg, n, { location = "westus", properties = KV.props() }), 409, "ConflictError")
      assert.equal("A vault with the same name already exists in deleted state. You need to either recover or " ..
        "purge existing key vault. Follow this link https://go.microsoft.com/fwlink/?linkid=2149745 for more " ..
        "information on soft delete.", e.message)
      -- recover
      local rec = put(rg, n, { location = "westus", properties = { tenantId = seed.tenant_id,
        sku = { family = "A", name = "standard" }, createMode = "recover" } })
      assert.equal(200, rec.status, rec.body)
      assert.equal(1, #rec.json.properties.accessPolicies)
      assert.equal(200, get(rg, n).status)
      local again = KV.req("GET", n, "/keys/cmk")
      assert.equal(200, again.status)
      assert.equal(k.json.key.kid, again.json.key.kid)
      E.assert_arm_error(E.arm("GET", loc_path(n), nil, { api_version = API }), 404, "ResourceNotFound")
    end)

    it("answers SoftDeletedVaultDoesNotExist when there is nothing to recover", function()
      local e = E.assert_arm_error(put(rg, KV.uniq("kv"), { location = "westus", properties = {
        tenantId = seed.tenant_id, sku = { family = "A", name = "standard" }, createMode = "recover" } }), 400,
        "SoftDeletedVaultDoesNotExist")
      assert.matches("^A soft deleted vault with the given name does not exist", e.message)
    end)

    it("purges (LRO) unless purge protection is on", function()
      local n = KV.uniq("kv")
      KV.vault(rg, n)
      E.arm("DELETE", KV.vault_path(rg, n), nil, { api_version = API })
      local res = E.arm("POST", loc_path(n) .. "/purge", nil, { api_version = API })
      assert.equal(202, res.status, res.body)
      local loc = res.headers["location"]
      assert.matches("/providers/Microsoft%.KeyVault/locations/westus/operationResults/[^/?]+%?api%-version=", loc)
      local poll = E.request({ method = "GET", url = loc, headers = { Authorization = "Bearer " .. E.arm_token() } })
      assert.equal(200, poll.status, poll.body)
      local result = require("cjson").decode(poll.body)
      assert.equal("Succeeded", result.status)
      assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ$", result.createdDateTime)
      assert.matches("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ$", result.lastActionDateTime)
      E.assert_arm_error(E.arm("GET", loc_path(n), nil, { api_version = API }), 404, "ResourceNotFound")
      -- the name is free again
      assert.equal(200, put(rg, n, { location = "westus", properties = KV.props() }).status)
      KV.assert_kv_error(KV.req("GET", n, "/keys/cmk"), 404, "KeyNotFound")

      local p = KV.uniq("kv")
      KV.vault(rg, p, KV.props({ enablePurgeProtection = true }))
      E.arm("DELETE", KV.vault_path(rg, p), nil, { api_version = API })
      local dv = E.arm("GET", loc_path(p), nil, { api_version = API })
      assert.is_true(dv.json.properties.purgeProtectionEnabled)
      local e = E.assert_arm_error(E.arm("POST", loc_path(p) .. "/purge", nil, { api_version = API }), 405,
        "MethodNotAllowed")
      assert.equal("Operation 'DeletedVaultPurge' is not allowed.", e.message)
      E.assert_arm_error(E.arm("POST", loc_path(KV.uniq("kv")) .. "/purge", nil, { api_version = API }), 404,
        "ResourceNotFound")
    end)

    it("removes role assignments scoped to the vault when it is deleted", function()
      local n = KV.uniq("kv")
      KV.vault(rg, n, KV.props({ enableRbacAuthorization = true }))
      local ra = KV.role(KV.vault_path(rg, n), "e147488a-f6f5-4113-8e2d-b22465e65bf6", seed.noaccess.object_id)
      assert.equal(200, E.arm("GET", ra, nil, { api_version = "2022-04-01" }).status)
      E.arm("DELETE", KV.vault_path(rg, n), nil, { api_version = API })
      assert.equal(404, E.arm("GET", ra, nil, { api_version = "2022-04-01" }).status)
    end)

    it("soft-deletes the vaults of a deleted resource group", function()
      local rg2 = KV.rg(KV.uniq("rg"))
      local n = KV.uniq("kv")
      KV.vault(rg2, n)
      local res = E.arm("DELETE", KV.rg_path(rg2), nil, { api_version = "2024-11-01" })
      assert.is_true(res.status == 200 or res.status == 202, res.body)
      if res.status == 202 and res.headers["location"] then
        E.request({ method = "GET", url = res.headers["location"], headers = { Authorization = "Bearer " ..
          E.arm_token() } })
      end
      assert.equal(200, E.arm("GET", loc_path(n), nil, { api_version = API }).status)
    end)

    it("purges soft-deleted vaults by themselves when the retention ends (simulated clock)", function()
      local n = KV.uniq("kv")
      KV.vault(rg, n, KV.props({ softDeleteRetentionInDays = 7 }))
      E.arm("DELETE", KV.vault_path(rg, n), nil, { api_version = API })
      assert.equal(200, E.arm("GET", loc_path(n), nil, { api_version = API }).status)
      E.control("POST", "clock", { advance = 7 * 86400 + 5 })
      E.assert_arm_error(E.arm("GET", loc_path(n), nil, { api_version = API }), 404, "ResourceNotFound")
      assert.equal(200, put(rg, n, { location = "westus", properties = KV.props() }).status)
    end)
  end)
end)
