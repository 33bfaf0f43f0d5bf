-- Every service client call against the emulator over real HTTPS.
local H = require("support.cmk_helper")
local client = require("azcmk.client")
local cjson = require("cjson.safe")

describe("service clients against the emulator", function()
  local p, c, seed

  setup(function()
    c, seed = H.start()
    p = H.p
  end)

  teardown(function() H.done() end)

  it("resource groups: create, get, absent, list", function()
    local rg = H.unique("rg-")
    local r = assert(c.resource_groups:create_or_update({ name = rg, location = "westus" }))
    assert.equal(rg, r.name)
    assert.equal("westus", assert(c.resource_groups:get({ name = rg })).location)
    local none, err = c.resource_groups:get({ name = H.unique("nope-") })
    assert.is_nil(none)
    assert.is_nil(err)
    local found = false
    for _, g in ipairs(assert(c.resource_groups:list({}))) do if g.name == rg then found = true end end
    assert.is_true(found)
  end)

  it("raises on wrong argument types (programmer errors)", function()
    assert.has_error(function() c.resource_groups:get("x") end)
    assert.has_error(function() c.keys:create({ vault = "kv", name = 5 }) end)
    assert.has_error(function() client.new(p).registries:get({ resource_group = "x", name = "y" }) end)
  end)

  describe("with a resource group", function()
    local rg, ident, vault, vault_url, kvname

    setup(function()
      rg = H.unique("rg-")
      assert(c.resource_groups:create_or_update({ name = rg, location = "westus" }))
    end)

    it("identities: create, get by name and id, list, find by principal and client id", function()
      ident = assert(c.identities:create({ resource_group = rg, name = "id-one", location = "westus" }))
      assert.truthy(ident.properties.principalId)
      assert.truthy(ident.properties.clientId)
      assert.equal(ident.id, assert(c.identities:get({ id = ident.id })).id)
      assert.equal(ident.properties.clientId,
        assert(c.identities:get({ resource_group = rg, name = "id-one" })).properties.clientId)
      assert.is_nil((c.identities:get({ resource_group = rg, name = "id-none" })))
      assert.equal(1, #assert(c.identities:list({ resource_group = rg })))
      assert.equal(ident.id, assert(c.identities:find({ principal_id = ident.properties.principalId })).id)
      assert.equal(ident.id, assert(c.identities:find({ client_id = ident.properties.clientId:upper() })).id)
    end)

    it("vaults: create (policy model, purge protection), get, access policies add/remove, ACLs", function()
      kvname = H.unique("kv-")
      vault = assert(c.vaults:create({ resource_group = rg, name = kvname, location = "westus",
        tenant_id = seed.tenant_id, access_policies = { { tenantId = seed.tenant_id,
          objectId = seed.owner.object_id,
          permissions = { keys = { "all" } } } } }))
      assert.is_true(vault.properties.enablePurgeProtection)
      assert.is_true(vault.properties.enableSoftDelete)
      assert.is_false(require("azcmk.client.vaults").uses_rbac(vault))
      vault_url = vault.properties.vaultUri:gsub("/$", "")
      assert(c.vaults:add_access_policy({ id = vault.id, tenant_id = seed.tenant_id,
        object_id = ident.properties.principalId }))
      local v = assert(c.vaults:get({ resource_group = rg, name = kvname }))
      assert.is_true(require("azcmk.client.vaults").policy_grants(v, ident.properties.principalId))
      assert(c.vaults:remove_access_policy({ id = vault.id, tenant_id = seed.tenant_id,
        object_id = ident.properties.principalId }))
      v = assert(c.vaults:get({ id = vault.id }))
      assert.is_false(require("azcmk.client.vaults").policy_grants(v, ident.properties.principalId))
      v = assert(c.vaults:set_network_acls({ id = vault.id, default_action = "Allow",
        bypass = "AzureServices" }))
      assert.equal("AzureServices", v.properties.networkAcls.bypass)
      assert.is_nil((c.vaults:get({ resource_group = rg, name = H.unique("kv-") })))
    end)

    it("vaults: an RBAC vault without access policies (empty array on the wire), purge protection later",
      function()
      local name = H.unique("kv-")
      local v = assert(c.vaults:create({ resource_group = rg, name = name, location = "westus",
        tenant_id = seed.tenant_id, enable_rbac = true, enable_purge_protection = false }))
      assert.is_true(v.properties.enableRbacAuthorization)
      assert.is_not_true(v.properties.enablePurgeProtection)
      v = assert(c.vaults:enable_purge_protection({ id = v.id }))
      assert.is_true(v.properties.enablePurgeProtection)
    end)

    it("keys: create, get, versions, list, update, rotate, rotation policy, wrap/unwrap", function()
      local k = assert(c.keys:create({ vault_url = vault_url, name = "k1" }))
      assert.equal("RSA", k.key.kty)
      local v1 = require("azcmk.client.keys").version_of(k.key.kid)
      assert.equal(32, #v1)
      local k2 = assert(c.keys:create({ vault = kvname, name = "k1" }))
      assert.are_not.equal(k.key.kid, k2.key.kid)
      assert.equal(k2.key.kid, assert(c.keys:get({ vault_url = vault_url, name = "k1" })).key.kid)
      assert.equal(k.key.kid, assert(c.keys:get({ vault_url = vault_url, name = "k1",
        version = v1 })).key.kid)
      assert.is_nil((c.keys:get({ vault_url = vault_url, name = "absent" })))
      local versions = assert(c.keys:versions({ vault_url = vault_url, name = "k1" }))
      assert.equal(2, #versions)
      assert.equal(1, #assert(c.keys:list({ vault_url = vault_url })))
      local u = assert(c.keys:update({ vault_url = vault_url, name = "k1", version = v1,
        tags = { env = "spec" } }))
      assert.equal("spec", u.tags.env)
      local r = assert(c.keys:rotate({ vault_url = vault_url, name = "k1" }))
      assert.equal(3, #assert(c.keys:versions({ vault_url = vault_url, name = "k1" })))
      assert.truthy(r.key.kid)
      assert(c.keys:set_rotation_policy({ vault_url = vault_url, name = "k1", rotate_after = "P90D",
        notify_before = "P30D", expiry = "P2Y" }))
      local pol = assert(c.keys:get_rotation_policy({ vault_url = vault_url, name = "k1" }))
      assert.equal(2, #pol.lifetimeActions)
      local plain = require("azcmk.crypto").b64url_encode(string.rep("k", 32))
      local w = assert(c.keys:wrap({ vault_url = vault_url, name = "k1", value = plain }))
      assert.are_not.equal(plain, w.value)
      local back = assert(c.keys:unwrap({ vault_url = vault_url, name = "k1",
        version = require("azcmk.client.keys").version_of(w.kid), value = w.value }))
      assert.equal(plain, back.value)
    end)

    it("keys: delete, get_deleted, recover", function()
      assert(c.keys:create({ vault_url = vault_url, name = "k-del" }))
      local d = assert(c.keys:delete({ vault_url = vault_url, name = "k-del" }))
      assert.truthy(d.recoveryId)
      local deleted
      for _ = 1, 40 do
        deleted = c.keys:get_deleted({ vault_url = vault_url, name = "k-del" })
        if deleted then break end
        os.execute("sleep 0.1")
      end
      assert.truthy(deleted)
      assert.is_nil((c.keys:get({ vault_url = vault_url, name = "k-del" })))
      assert(c.keys:recover({ vault_url = vault_url, name = "k-del" }))
      local k
      for _ = 1, 40 do
        k = c.keys:get({ vault_url = vault_url, name = "k-del" })
        if k then break end
        os.execute("sleep 0.1")
      end
      assert.truthy(k)
    end)

    it("keys and vaults: purge only where purge protection is off (never called by a playbook)", function()
      local name = H.unique("kv-")
      local v = assert(c.vaults:create({ resource_group = rg, name = name, location = "westus",
        tenant_id = seed.tenant_id, enable_purge_protection = false, access_policies = { {
          tenantId = seed.tenant_id, objectId = seed.owner.object_id,
            permissions = { keys = { "all" } } } } }))
      assert(c.keys:create({ vault = name, name = "p1" }))
      assert(c.keys:delete({ vault = name, name = "p1" }))
      os.execute("sleep 1.2")
      assert.truthy(c.keys:purge({ vault = name, name = "p1" }))
      assert.is_nil((c.keys:get_deleted({ vault = name, name = "p1" })))
      -- the purge-protected vault of this group refuses
      assert(c.keys:create({ vault_url = vault_url, name = "p2" }))
      assert(c.keys:delete({ vault_url = vault_url, name = "p2" }))
      os.execute("sleep 1.2")
      local ok, err = c.keys:purge({ vault_url = vault_url, name = "p2" })
      assert.is_nil(ok)
      assert.truthy(err.status == 403 or err.status == 409 or err.status == 400, tostring(err))
      assert(c.keys:recover({ vault_url = vault_url, name = "p2" }))
      assert.is_true(c.vaults:delete({ id = v.id, resource_group = rg, name = name }))
      assert.is_true(c.vaults:purge({ name = name, location = "westus" }))
      assert.is_nil((c.vaults:find_deleted({ name = name })))
    end)

    it("role assignments: create (idempotent), find, list, delete", function()
      local a = assert(c.role_assignments:create({ scope = vault.id,
        principal_id = ident.properties.principalId,
        role = "crypto_service_encryption_user" }))
      assert.truthy(a.id)
      local again = assert(c.role_assignments:create({ scope = vault.id,
        principal_id = ident.properties.principalId,
        role = "e147488a-f6f5-4113-8e2d-b22465e65bf6" }))
      assert.equal(a.name, again.name)
      local found = assert(c.role_assignments:find({ scope = vault.id,
        principal_id = ident.properties.principalId,
        role = "crypto_service_encryption_user" }))
      assert.equal(1, #found)
      assert.equal(1, #assert(c.role_assignments:list({ scope = vault.id,
        principal_id = ident.properties.principalId })))
      assert.is_true(c.role_assignments:delete({ id = a.id }))
      assert.equal(0, #assert(c.role_assignments:find({ scope = vault.id,
        principal_id = ident.properties.principalId,
        role = "crypto_service_encryption_user" })))
      assert.is_true(c.role_assignments:delete({ id = a.id }))   -- already gone: done
    end)

    it("registries: create with CMK, get, list, system identity, set_encryption, probe; resources: find",
      function()
      assert(c.vaults:add_access_policy({ id = vault.id, tenant_id = seed.tenant_id,
        object_id = ident.properties.principalId }))
      local k = assert(c.keys:create({ vault_url = vault_url, name = "reg-key" }))
      local name = H.unique("reg")
      local steps = {}
      local reg = assert(c.registries:create({ resource_group = rg, name = name, location = "westus",
        identity_id = ident.id, identity_client_id = ident.properties.clientId, key_id = k.key.kid,
        progress = function(i) steps[#steps + 1] = i.state end }))
      local R = require("azcmk.client.registries")
      assert.is_true(R.cmk_enabled(reg))
      assert.equal(k.key.kid, reg.properties.encryption.keyVaultProperties.versionedKeyIdentifier)
      assert.truthy(#steps >= 1)
      assert.equal(reg.id, assert(c.registries:get({ resource_group = rg, name = name })).id)
      assert.equal(1, #assert(c.registries:list({ resource_group = rg })))
      local pr = assert(c.registries:probe({ login_server = reg.properties.loginServer }))
      assert.equal(401, pr.status)
      assert.is_true(pr.ok)
      reg = assert(c.registries:assign_identity({ id = reg.id, system = true }))
      assert.matches("[Ss]ystem[Aa]ssigned", reg.identity.type)
      assert.truthy(reg.identity.principalId)
      assert.truthy(R.user_identity(reg, ident.properties.clientId))
      local k2 = assert(c.keys:create({ vault_url = vault_url, name = "reg-key" }))
      reg = assert(c.registries:set_encryption({ id = reg.id, key_id = k2.key.kid,
        identity = ident.properties.clientId }))
      assert.equal(k2.key.kid, reg.properties.encryption.keyVaultProperties.versionedKeyIdentifier)
      local f = assert(c.resources:find({ type = "Microsoft.ContainerRegistry/registries", name = name }))
      assert.equal(rg, f.resource_group)
      local fv = assert(c.resources:find({ type = "Microsoft.KeyVault/vaults", name = kvname }))
      assert.equal(vault.id:lower(), fv.id:lower())
      assert.is_nil((c.resources:find({ type = "Microsoft.KeyVault/vaults", name = H.unique("kv-") })))
    end)

    it("deployments: the article's template, get, operations", function()
      local f = assert(io.open("examples/cmk-template.json"))
      local template = assert(cjson.decode(f:read("a")))
      f:close()
      local k = assert(c.keys:create({ vault_url = vault_url, name = "tpl-key" }))
      local reg = H.unique("tplreg")
      local d = assert(c.deployments:create({ resource_group = rg, name = "cmk", template = template,
        parameters = { registry_name = reg, identity_name = "tpl-id", vault_name = kvname,
          kek_id = k.key.kid } }))
      assert.equal("Succeeded", d.properties.provisioningState)
      assert.equal("Succeeded", assert(c.deployments:get({ resource_group = rg, name = "cmk" }))
        .properties.provisioningState)
      assert.truthy(#assert(c.deployments:operations({ resource_group = rg, name = "cmk" })) >= 1)
      local r = assert(c.registries:get({ resource_group = rg, name = reg }))
      assert.is_true(require("azcmk.client.registries").cmk_enabled(r))
    end)

    it("vaults: delete, list/find/get deleted, recover", function()
      local name = H.unique("kv-")
      assert(c.vaults:create({ resource_group = rg, name = name, location = "westus",
        tenant_id = seed.tenant_id }))
      assert.is_true(c.vaults:delete({ resource_group = rg, name = name }))
      local d = assert(c.vaults:find_deleted({ name = name }))
      assert.equal(name, d.name)
      assert.truthy(c.vaults:get_deleted({ name = name, location = "westus" }))
      assert.is_nil((c.vaults:get({ resource_group = rg, name = name })))
      local v = assert(c.vaults:recover({ resource_group = rg, name = name, location = "westus",
        tenant_id = seed.tenant_id }))
      assert.equal(name, v.name)
      assert.truthy(c.vaults:get({ resource_group = rg, name = name }))
    end)
  end)
end)
