-- Container Registry CMK rules in the emulator, end to end over raw ARM + Key Vault calls:
-- create (LRO, exact final shape), every refusal (status, code, message, nothing written),
-- rotation by PATCH, the system identity with "system", versionless pickup after clock
-- advance (and not when access is missing), identity removal refused, content trust, RBAC vaults.
local E = require("support.emulator")
local W = require("support.cmk_world")
local NULL = require("cjson.safe").null

local API = W.ACR_API

describe("emulator: container registry customer-managed keys", function()
  local sub

  setup(function()
    sub = W.fresh().subscription_id
  end)

  teardown(function()
    E.assert_no_internal_errors()
    E.reset() -- the clock moved; leave the seeded world to the next spec
  end)

  it("a CMK create that failed is created again by the same PUT (not 'existing registry')", function()
    local w = W.world({ registry = false })
    local name = W.uniq("cmkfail")
    local path = W.reg_path(sub, w.rg, name)
    E.control("POST", "faults", { rules = { { method = "PUT", path = path, lro_fail = true, count = 1 } } })
    local r = E.arm("PUT", path, W.cmk_body(w.uai, w.kid), { api_version = API })
    assert.equal(201, r.status, r.body)
    assert.equal("Failed", W.wait(r).status)
    E.control("DELETE", "faults")
    assert.equal("Failed", W.get_registry(sub, w.rg, name).json.properties.provisioningState)
    r = E.arm("PUT", path, W.cmk_body(w.uai, w.kid), { api_version = API })
    assert.equal(201, r.status, r.body)
    assert.equal("Succeeded", W.wait(r).status)
    local j = W.get_registry(sub, w.rg, name).json
    assert.equal("Succeeded", j.properties.provisioningState)
    assert.equal("enabled", j.properties.encryption.status)
    assert.equal(w.kid, j.properties.encryption.keyVaultProperties.keyIdentifier)
    -- a registry that once succeeded still refuses CMK on a later PUT (the service's rule)
    local plain = W.uniq("plainreg")
    local p2 = W.reg_path(sub, w.rg, plain)
    r = E.arm("PUT", p2, { location = "westus", sku = { name = "Premium" } }, { api_version = API })
    assert.equal("Succeeded", W.wait(r).status)
    E.assert_arm_error(E.arm("PUT", p2, W.cmk_body(w.uai, w.kid), { api_version = API }), 400,
      "EncryptionNotSupportedOnExistingRegistry")
  end)

  it("creates a Premium CMK registry end to end and shows ACR's exact shape", function()
    local w = W.world({ registry = false })
    local name = W.uniq("cmkreg")
    local r = E.arm("PUT", W.reg_path(sub, w.rg, name), W.cmk_body(w.uai, w.kid), { api_version = API })
    assert.equal(201, r.status, r.body)
    -- the 201 body: Creating, encryption disabled, no identity (the service's quirk)
    assert.equal("Creating", r.json.properties.provisioningState)
    assert.same({ status = "disabled" }, r.json.properties.encryption)
    assert.is_nil(r.json.identity)
    assert.matches("/providers/Microsoft.ContainerRegistry/registries/" .. name .. "/operationStatuses/registries%-",
      r.headers["azure-asyncoperation"])
    assert.equal("Succeeded", W.wait(r).status)
    local g = W.get_registry(sub, w.rg, name)
    assert.equal(200, g.status, g.body)
    local j = g.json
    assert.equal("Succeeded", j.properties.provisioningState)
    assert.equal("userAssigned", j.identity.type)
    local key = next(j.identity.userAssignedIdentities)
    assert.matches("/resourcegroups/", key, 1, true)
    assert.equal(w.uai.id, key)
    assert.same({ principalId = w.uai.properties.principalId, clientId = w.uai.properties.clientId },
      j.identity.userAssignedIdentities[key])
    assert.same({ status = "enabled", keyVaultProperties = { keyIdentifier = w.kid, versionedKeyIdentifier = w.kid,
      identity = w.uai.properties.clientId, keyRotationEnabled = false } }, j.properties.encryption)
    assert.same({ name = "Premium", tier = "Premium" }, j.sku)
    assert.equal(name:lower() .. ".azurecr.io", j.properties.loginServer)
  end)

  describe("refusals (400, Azure's envelope, nothing written)", function()
    local w
    setup(function() w = W.world({ registry = false }) end)

    local function refused(name, body, code, text)
      local r = E.arm("PUT", W.reg_path(sub, w.rg, name), body, { api_version = API })
      local e = E.assert_arm_error(r, 400, code)
      if text then assert.equal(text, e.message) end
      assert.equal(404, W.get_registry(sub, w.rg, name).status)
      return e
    end

    it("needs Premium", function()
      local b = W.cmk_body(w.uai, w.kid)
      b.sku = { name = "Standard" }
      local e = refused(W.uniq("stdreg"), b, "FeatureNotSupportedForSku")
      assert.matches("Premium", e.message)
    end)

    it("needs the identity attached (clientId of an attached UAI, or 'system' with a system identity)", function()
      local name = W.uniq("noidreg")
      local b = W.cmk_body(w.uai, w.kid)
      b.properties.encryption.keyVaultProperties.identity = "00000000-1111-4222-8333-444444444444"
      refused(name, b, "BadRequest", "Azure resource '/subscriptions/" .. sub .. "/resourcegroups/" .. w.rg ..
        "/providers/Microsoft.ContainerRegistry/registries/" .. name .. "' does not have access to identity " ..
        "'00000000-1111-4222-8333-444444444444' Try forcibly adding the identity to the registry " .. name ..
        ". For more information on bring your own key, please visit 'https://aka.ms/acr/cmk'.")
      -- the principal id instead of the client id (a classic mix-up)
      b.properties.encryption.keyVaultProperties.identity = w.uai.properties.principalId
      refused(W.uniq("pidreg"), b, "BadRequest")
      b = W.cmk_body(w.uai, w.kid)
      b.properties.encryption.keyVaultProperties.identity = "system"
      refused(W.uniq("sysreg"), b, "BadRequest")
    end)

    it("refuses EC keys", function()
      local ec = W.kv("POST", w.vault, "/keys/eckey/create", { kty = "EC", crv = "P-256" })
      assert.equal(200, ec.status, ec.body)
      local e = refused(W.uniq("ecreg"), W.cmk_body(w.uai, ec.json.key.kid), "KeyTypeNotSupported")
      assert.matches("Only RSA and RSA-HSM keys are supported", e.message, 1, true)
    end)

    it("checks the key id shape (vault suffix of this cloud, 32-hex version)", function()
      for _, kid in ipairs({ "https://" .. w.vault .. ".vault.azure.cn/keys/cmkkey",
        "https://" .. w.vault .. ".vault.azure.net/keys/cmkkey/123", "http://" .. w.vault .. ".vault.azure.net/keys/k",
        "https://" .. w.vault .. ".vault.azure.net/secrets/cmkkey", "not a url" }) do
        refused(W.uniq("kidreg"), W.cmk_body(w.uai, kid), "InvalidKeyIdentifier")
      end
    end)

    it("needs the identity to reach the key: the reference's exact text", function()
      local other = W.create_uai(sub, w.rg, "no-access-uai")
      local b = W.cmk_body(other, w.kid)
      refused(W.uniq("denyreg"), b, "KeyVaultAccessFailed", "Failed to access KeyId '" .. w.kid .. "'. Verify that " ..
        "identity '" .. other.properties.clientId .. "' has 'Get, Wrap Key, Unwrap Key' permission on key '" .. w.kid ..
        "'. For more information on bring your own key, please visit 'https://aka.ms/acr/cmk'.")
      -- get + wrapKey only is not enough
      W.policy(sub, w.rg, w.vault, "add", other.properties.principalId, { "get", "wrapKey" })
      refused(W.uniq("halfreg"), b, "KeyVaultAccessFailed")
      -- a missing key
      refused(W.uniq("nokeyreg"), W.cmk_body(w.uai, "https://" .. w.vault .. ".vault.azure.net/keys/nosuchkey"),
        "KeyVaultAccessFailed")
      -- a disabled key version
      local kid2 = W.create_key(w.vault, "tobedisabled")
      W.set_key_enabled(kid2, false)
      refused(W.uniq("disreg"), W.cmk_body(w.uai, kid2), "KeyVaultAccessFailed")
    end)

    it("refuses content trust on a CMK registry (the service's typo'd text)", function()
      local name = W.uniq("trustreg")
      local b = W.cmk_body(w.uai, w.kid)
      b.properties.policies = { trustPolicy = { type = "Notary", status = "enabled" } }
      refused(name, b, "BlockedForEncryptionEnabledRegistry", "this feature 'ContenTrust' is currently not " ..
        "supported when encryption is enable for the resource " .. name .. ". For more information on " ..
        "customer-managed keys, please visit 'https://aka.ms/acr/cmk'.")
    end)

    it("refuses CMK on an existing registry, by PUT and by PATCH", function()
      local name = W.uniq("plainreg")
      local r = E.arm("PUT", W.reg_path(sub, w.rg, name), { location = "westus", sku = { name = "Premium" },
        identity = { type = "UserAssigned", userAssignedIdentities = { [w.uai.id] = {} } } }, { api_version = API })
      assert.equal(201, r.status, r.body)
      W.wait(r)
      r = E.arm("PATCH", W.reg_path(sub, w.rg, name), { properties = { encryption = { status = "enabled",
        keyVaultProperties = { keyIdentifier = w.kid, identity = w.uai.properties.clientId } } } },
        { api_version = API })
      E.assert_arm_error(r, 400, "EncryptionNotSupportedOnExistingRegistry")
      r = E.arm("PUT", W.reg_path(sub, w.rg, name), W.cmk_body(w.uai, w.kid), { api_version = API })
      E.assert_arm_error(r, 400, "EncryptionNotSupportedOnExistingRegistry")
      assert.same({ status = "disabled" }, W.get_registry(sub, w.rg, name).json.properties.encryption)
    end)
  end)

  describe("on a CMK registry", function()
    local w
    setup(function() w = W.world() end)

    it("never disables encryption and keeps the CMK identity", function()
      local path = W.reg_path(sub, w.rg, w.reg)
      local r = E.arm("PATCH", path, { properties = { encryption = { status = "disabled" } } }, { api_version = API })
      E.assert_arm_error(r, 400, "EncryptionCannotBeDisabled")
      -- a full PUT without the encryption block (what Azure Policy remediation does) is refused too
      r = E.arm("PUT", path, { location = "westus", sku = { name = "Premium" },
        identity = { type = "UserAssigned", userAssignedIdentities = { [w.uai.id] = {} } } }, { api_version = API })
      E.assert_arm_error(r, 400, "EncryptionCannotBeDisabled")
      -- Azure Policy "Modify" remediation: a full PUT with the CMK settings redacted is refused
      local g = W.get_registry(sub, w.rg, w.reg).json
      g.properties.encryption = { status = "enabled" }
      E.assert_arm_error(E.arm("PUT", path, g, { api_version = API }), 400, "InvalidEncryptionConfiguration")
      g.properties.encryption = { status = "enabled", keyVaultProperties = { keyIdentifier = NULL, identity = NULL } }
      E.assert_arm_error(E.arm("PUT", path, g, { api_version = API }), 400, "InvalidEncryptionConfiguration")
      -- the GET body echoed back as is (what `az acr identity remove` sends) is fine
      g = W.get_registry(sub, w.rg, w.reg).json
      r = E.arm("PUT", path, g, { api_version = API })
      assert.equal(201, r.status, r.body) -- Azure: 201 for a full PUT on an existing registry too
      W.wait(r)
      -- removing the identity used for CMK: PATCH with the map entry null, and `az acr identity remove`'s PUT
      g = W.get_registry(sub, w.rg, w.reg).json
      r = E.arm("PATCH", path, { identity = { type = "UserAssigned",
        userAssignedIdentities = { [w.uai.id] = NULL } } }, { api_version = API })
      local e = E.assert_arm_error(r, 400, "BadRequest")
      assert.equal("Azure resource '/subscriptions/" .. sub .. "/resourcegroups/" .. w.rg:lower() ..
        "/providers/Microsoft.ContainerRegistry/registries/" .. w.reg .. "' does not have access to identity '" ..
        w.uai.properties.clientId .. "' Try forcibly adding the identity to the registry " .. w.reg ..
        ". For more information on bring your own key, please visit 'https://aka.ms/acr/cmk'.", e.message)
      g.identity = { type = "None" }
      r = E.arm("PUT", path, g, { api_version = API })
      E.assert_arm_error(r, 400, "BadRequest")
      r = E.arm("PATCH", path, { identity = { type = "SystemAssigned" } }, { api_version = API })
      E.assert_arm_error(r, 400, "BadRequest")
      -- Standard SKU is refused for a CMK registry
      r = E.arm("PATCH", path, { sku = { name = "Standard" } }, { api_version = API })
      E.assert_arm_error(r, 400, "SkuDowngradeNotAllowed")
      -- content trust
      r = E.arm("PATCH", path, { properties = { policies = { trustPolicy = { status = "enabled" } } } },
        { api_version = API })
      E.assert_arm_error(r, 400, "BlockedForEncryptionEnabledRegistry")
      g = W.get_registry(sub, w.rg, w.reg).json
      assert.equal("userAssigned", g.identity.type)
      assert.equal("enabled", g.properties.encryption.status)
      assert.equal("disabled", g.properties.policies.trustPolicy.status)
    end)

    it("rotates by PATCH to a new key version (201 with the old key, then lastKeyRotationTimestamp)", function()
      local path = W.reg_path(sub, w.rg, w.reg)
      local kid2 = W.create_key(w.vault, "cmkkey")
      assert.not_equal(w.kid, kid2)
      local r = E.arm("PATCH", path, { properties = { encryption = { keyVaultProperties = { keyIdentifier = kid2,
        identity = w.uai.properties.clientId } } } }, { api_version = API })
      assert.equal(201, r.status, r.body)
      assert.equal("Updating", r.json.properties.provisioningState)
      assert.equal(w.kid, r.json.properties.encryption.keyVaultProperties.keyIdentifier)
      assert.is_nil(r.json.properties.encryption.keyVaultProperties.lastKeyRotationTimestamp)
      -- recorded traffic: the 201 of an update that keeps the identities still shows them
      assert.equal("userAssigned", r.json.identity.type)
      assert.is_table(r.json.identity.userAssignedIdentities[w.uai.id])
      -- ACR's operation status: {"status"} only, repeating Azure-AsyncOperation and api-supported-versions
      local url = r.headers["azure-asyncoperation"]
      local st = E.request({ method = "GET", url = url, headers = { Authorization = "Bearer " .. E.arm_token() } })
      assert.equal(200, st.status)
      assert.same({ status = "Succeeded" }, st.json)
      assert.equal(url, st.headers["azure-asyncoperation"])
      assert.equal(API, st.headers["api-supported-versions"])
      local k = W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
      assert.equal(kid2, k.keyIdentifier)
      assert.equal(kid2, k.versionedKeyIdentifier)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%d%+00:00$", k.lastKeyRotationTimestamp)
      -- the same key again changes nothing (no new timestamp)
      r = E.arm("PATCH", path, { properties = { encryption = { keyVaultProperties = { keyIdentifier = kid2 } } } },
        { api_version = API })
      W.wait(r)
      local k2 = W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
      assert.equal(k.lastKeyRotationTimestamp, k2.lastKeyRotationTimestamp)
      -- rotating to a key the identity cannot reach is refused, the registry stays on kid2
      local other = W.create_key(w.vault, "otherkey")
      W.policy(sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
      r = E.arm("PATCH", path, { properties = { encryption = { keyVaultProperties = { keyIdentifier = other } } } },
        { api_version = API })
      E.assert_arm_error(r, 400, "KeyVaultAccessFailed")
      W.policy(sub, w.rg, w.vault, "add", w.uai.properties.principalId)
      assert.equal(kid2, W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
        .versionedKeyIdentifier)
    end)

    it("enables the system identity, grants it access and rotates with 'system'", function()
      local path = W.reg_path(sub, w.rg, w.reg)
      -- az acr identity assign --identities [system]: PATCH with "SystemAssigned, UserAssigned"
      local r = E.arm("PATCH", path, { identity = { type = "SystemAssigned, UserAssigned",
        userAssignedIdentities = { [w.uai.id] = {} } } }, { api_version = API })
      assert.equal(201, r.status, r.body)
      assert.is_nil(r.json.identity)
      W.wait(r)
      local g = W.get_registry(sub, w.rg, w.reg).json
      assert.equal("systemAssigned, userAssigned", g.identity.type)
      local pid = g.identity.principalId
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", pid)
      assert.equal(E.seed().tenant_id, g.identity.tenantId)
      -- without access for the system identity: refused
      r = E.arm("PATCH", path, { properties = { encryption = { keyVaultProperties = { identity = "system" } } } },
        { api_version = API })
      E.assert_arm_error(r, 400, "KeyVaultAccessFailed")
      W.policy(sub, w.rg, w.vault, "add", pid)
      r = E.arm("PATCH", path, { properties = { encryption = { keyVaultProperties = { identity = "system" } } } },
        { api_version = API })
      assert.equal(201, r.status, r.body)
      W.wait(r)
      local k = W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
      assert.equal("system", k.identity)
      -- now the user-assigned identity may go, the system identity may not
      r = E.arm("PATCH", path, { identity = { type = "SystemAssigned" } }, { api_version = API })
      assert.equal(201, r.status, r.body)
      W.wait(r)
      assert.equal("systemAssigned", W.get_registry(sub, w.rg, w.reg).json.identity.type)
      r = E.arm("PATCH", path, { identity = { type = "UserAssigned", userAssignedIdentities = { [w.uai.id] = {} } } },
        { api_version = API })
      E.assert_arm_error(r, 400, "BadRequest")
      -- the data plane works through the system identity
      assert.equal(401, W.v2(w.reg).status)
    end)
  end)

  it("follows a versionless key to a new version after the pickup delay", function()
    local w = W.world({ versionless = true })
    local k = W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
    assert.equal(W.versionless(w.kid), k.keyIdentifier)
    assert.equal(w.kid, k.versionedKeyIdentifier)
    assert.equal(true, k.keyRotationEnabled)
    assert.is_nil(k.lastKeyRotationTimestamp)
    local kid2 = W.create_key(w.vault, "cmkkey")
    -- not yet: ACR polls the vault
    assert.equal(w.kid, W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
      .versionedKeyIdentifier)
    E.control("POST", "clock", { advance = 3600 })
    W.reset_tokens()
    k = W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
    assert.equal(kid2, k.versionedKeyIdentifier)
    assert.equal(W.versionless(w.kid), k.keyIdentifier)
    assert.matches("%+00:00$", k.lastKeyRotationTimestamp)
  end)

  it("does not pick a new version up while the identity cannot reach the key", function()
    local w = W.world({ versionless = true })
    local kid2 = W.create_key(w.vault, "cmkkey")
    W.policy(sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
    E.control("POST", "clock", { advance = 3600 })
    W.reset_tokens()
    local k = W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
    assert.equal(w.kid, k.versionedKeyIdentifier)
    assert.is_nil(k.lastKeyRotationTimestamp)
    -- nor when the version in use was disabled early (both must stay enabled)
    W.policy(sub, w.rg, w.vault, "add", w.uai.properties.principalId)
    W.set_key_enabled(w.kid, false)
    k = W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
    assert.equal(w.kid, k.versionedKeyIdentifier)
    -- re-enable: picked up on the next read
    W.set_key_enabled(w.kid, true)
    k = W.get_registry(sub, w.rg, w.reg).json.properties.encryption.keyVaultProperties
    assert.equal(kid2, k.versionedKeyIdentifier)
  end)

  it("works with an RBAC vault and the Key Vault Crypto Service Encryption User role", function()
    local w = W.world({ rbac = true })
    local g = W.get_registry(sub, w.rg, w.reg)
    assert.equal("enabled", g.json.properties.encryption.status)
    assert.equal(401, W.v2(w.reg).status)
    -- revoke the role: data inaccessible; a new registry with it is refused
    local r = E.arm("DELETE", w.assignment, nil, { api_version = W.AUTH_API })
    assert.equal(200, r.status, r.body)
    assert.equal(403, W.v2(w.reg).status)
    r = E.arm("PUT", W.reg_path(sub, w.rg, W.uniq("rbacreg")), W.cmk_body(w.uai, w.kid), { api_version = API })
    E.assert_arm_error(r, 400, "KeyVaultAccessFailed")
    W.assign_role(sub, W.vault_path(sub, w.rg, w.vault) .. "/keys/cmkkey", W.KV_CRYPTO_SERVICE_ENCRYPTION_USER,
      w.uai.properties.principalId)
    assert.equal(401, W.v2(w.reg).status)
  end)
end)
