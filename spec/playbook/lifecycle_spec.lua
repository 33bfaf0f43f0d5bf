-- show, rotate, revoke / restore, identity assign, recover and deploy against the emulator.
local H = require("support.cmk_helper")
local pb = require("azcmk.playbook")
local R = require("azcmk.client.registries")
local Keys = require("azcmk.client.keys")
local cjson = require("cjson.safe")

local function raw_registry(seed, r)
  local res = H.E.arm("GET", "/subscriptions/" .. seed.subscription_id .. "/resourceGroups/"
    .. r.registry.resource_group .. "/providers/Microsoft.ContainerRegistry/registries/" .. r.registry.name,
      nil,
    { api_version = "2025-04-01" })
  assert.equal(200, res.status)
  return res.json
end

local refused = H.refused

describe("CMK playbooks", function()
  local c, seed

  setup(function() c, seed = H.start() end)

  teardown(function() H.done() end)

  describe("show", function()
    it("returns the registry's encryption verbatim, the version in use and the newest version", function()
      local s = H.setup()
      local r = assert(pb.show(H.opts({ registry = s.registry.name })))
      local raw = raw_registry(seed, r)
      assert.same(raw.properties.encryption, r.encryption)
      assert.is_true(r.cmk)
      assert.equal(Keys.version_of(raw.properties.encryption.keyVaultProperties.versionedKeyIdentifier),
        r.key_version_in_use)
      assert.equal(r.key_version_in_use, r.newest_key_version)
      assert.is_true(r.up_to_date)
      assert.is_false(r.auto_rotation)
      assert.equal("user", r.identity.kind)
      assert.equal(s.identity.client_id, r.identity.client_id)
      assert.is_false(r.key_rotation_policy.enabled)
      -- Key Vault's own rotation policy, and the warning for a versioned key id
      local key = s.key_id:match("/keys/([^/]+)")
      assert(c.keys:set_rotation_policy({ vault = s.vault.name, name = key, rotate_after = "P90D",
        expiry = "P2Y" }))
      r = assert(pb.show(H.opts({ registry = s.registry.name })))
      assert.is_true(r.key_rotation_policy.enabled)
      assert.equal("P90D", r.key_rotation_policy.rotate_after)
      assert.equal("P2Y", r.key_rotation_policy.expiry)
      assert.matches("versionless", r.warnings[1])
      -- with -g too, and the data plane
      r = assert(pb.show(H.opts({ registry = s.registry.name, resource_group = s.registry.resource_group,
        probe = true })))
      assert.equal(401, r.data_plane.status)
      assert.is_true(r.data_plane.ok)
    end)

    it("reports a newer key version not yet in use (versionless: auto rotation on)", function()
      local s, names = H.setup({ versionless = true })
      assert(c.keys:create({ vault = names.vault, name = names.registry:lower() .. "-cmk" }))
      local r = assert(pb.show(H.opts({ registry = s.registry.name })))
      assert.is_true(r.auto_rotation)
      assert.is_false(r.up_to_date)
      assert.are_not.equal(r.key_version_in_use, r.newest_key_version)
      assert.truthy(r.warnings[1]:find("within an", 1, true))
      -- one simulated hour later the registry has adopted it
      H.E.control("POST", "clock", { advance = 3600 })
      H.p = H.pipeline()
      r = assert(pb.show(H.opts({ registry = s.registry.name })))
      assert.is_true(r.up_to_date)
      H.reset()
      H.p = H.pipeline()
    end)

    it("shows a registry without CMK and refuses an unknown registry", function()
      local rg = H.unique("rg-")
      local name = H.unique("plain")
      assert(c.resource_groups:create_or_update({ name = rg, location = "westus" }))
      assert(c.registries:create({ resource_group = rg, name = name, location = "westus", sku = "Standard" }))
      local r = assert(pb.show(H.opts({ registry = name })))
      assert.is_false(r.cmk)
      local none, err = pb.show(H.opts({ registry = H.unique("none") }))
      assert.is_nil(none)
      assert.equal("RegistryNotFound", err.code)
      assert.truthy(err.hint)
    end)
  end)

  describe("rotate", function()
    it("to a new version of the current key (versioned): verified, old and new differ", function()
      local s = H.setup()
      local seq = H.seq()
      local r = assert(pb.rotate(H.opts({ registry = s.registry.name })))
      assert.is_true(r.verified)
      -- the registry is read to find it and once more when the operation ends (that read is verified)
      local reads = {}
      for _, e in ipairs(H.log(seq)) do
        if e.method == "GET" and tostring(e.path):match("/registries/" .. s.registry.name .. "$") then
          reads[#reads + 1] = e
        end
      end
      assert.equal(2, #reads, H.describe(reads))
      assert.are_not.equal(s.versioned_key_id, r.versioned_key_id)
      assert.equal(r.key_id, r.versioned_key_id)
      local latest = assert(c.keys:get({ vault = s.vault.name, name = s.key_id:match("/keys/([^/]+)") }))
      assert.equal(latest.key.kid, r.versioned_key_id)
      assert.truthy(raw_registry(seed, r).properties.encryption.keyVaultProperties.lastKeyRotationTimestamp)
      assert.equal(401, (H.data_plane(s.registry.login_server)))
    end)

    it("keeps a versionless key id versionless, and switches style on request", function()
      local s = H.setup({ versionless = true })
      local r = assert(pb.rotate(H.opts({ registry = s.registry.name })))
      assert.matches("/keys/[^/]+$", r.key_id)
      assert.is_true(r.auto_rotation)
      r = assert(pb.rotate(H.opts({ registry = s.registry.name, versionless = false, new_version = false })))
      assert.matches("/keys/[^/]+/%x+$", r.key_id)
      assert.is_false(r.auto_rotation)
    end)

    it("to another key (created when absent) and to a given key id", function()
      local s = H.setup()
      local r = assert(pb.rotate(H.opts({ registry = s.registry.name, key = "second-key" })))
      assert.matches("/keys/second%-key/", r.versioned_key_id)
      local created = false
      for _, st in ipairs(r.steps) do if st.step == "key"
        and st.action == "created" then created = true end end
      assert.is_true(created)
      local k3 = assert(c.keys:create({ vault = s.vault.name, name = "third-key" }))
      r = assert(pb.rotate(H.opts({ registry = s.registry.name, key_id = k3.key.kid })))
      assert.equal(k3.key.kid, r.versioned_key_id)
      assert.equal(401, (H.data_plane(s.registry.login_server)))
    end)

    it("with the system-assigned identity: enabled, given access, then used (RBAC vault)", function()
      local s = H.setup({ access = "rbac" })
      local r = assert(pb.rotate(H.opts({ registry = s.registry.name, identity = "[system]" })))
      assert.equal("system", r.identity)
      local raw = raw_registry(seed, r)
      assert.equal("system", raw.properties.encryption.keyVaultProperties.identity)
      assert.truthy(raw.identity.principalId)
      local found = assert(c.role_assignments:find({ scope = s.vault.id,
        principal_id = raw.identity.principalId,
        role = "crypto_service_encryption_user" }))
      assert.equal(1, #found)
      assert.equal(401, (H.data_plane(s.registry.login_server)))
    end)

    it("with the system-assigned identity on an access-policy vault, and back to the user identity by name",
      function()
      local s = H.setup()
      assert(pb.rotate(H.opts({ registry = s.registry.name, identity = "[system]" })))
      local r = assert(pb.rotate(H.opts({ registry = s.registry.name, identity = s.identity.name,
        resource_group = s.registry.resource_group })))
      assert.equal(s.identity.client_id, r.identity)
      r = assert(pb.rotate(H.opts({ registry = s.registry.name, identity = s.identity.id })))
      assert.equal(s.identity.client_id, r.identity)
      r = assert(pb.rotate(H.opts({ registry = s.registry.name, identity = s.identity.client_id })))
      assert.equal(s.identity.client_id, r.identity)
    end)

    it("to a new user-assigned identity: attached, given access, used", function()
      local s = H.setup()
      local other = assert(c.identities:create({ resource_group = s.registry.resource_group,
        name = "other-id",
        location = "westus" }))
      local r = assert(pb.rotate(H.opts({ registry = s.registry.name, identity = other.id })))
      assert.equal(other.properties.clientId, r.identity)
      local reg = raw_registry(seed, r)
      assert.truthy(R.user_identity(reg, other.properties.clientId))
      assert.equal(401, (H.data_plane(s.registry.login_server)))
    end)

    it("refuses before any write: no CMK, bad key ids, EC key, a principal id, disabling CMK", function()
      local s = H.setup()
      local name = s.registry.name
      refused(pb.rotate, { registry = name, key_id = "https://x.vault.azure.net/secrets/s" }, "InvalidKeyId",
        "wrong shape")
      refused(pb.rotate, { registry = name, key_id = "https://" .. s.vault.name .. ".vault.azure.cn/keys/k" },
        "KeyVaultInOtherCloud", "AzureChinaCloud", "AZURE_CLOUD")
      assert(c.keys:create({ vault = s.vault.name, name = "ec", kty = "EC", crv = "P-256" }))
      refused(pb.rotate, { registry = name, key = "ec" }, "UnsupportedKeyType", "EC", "RSA")
      refused(pb.rotate, { registry = name, identity = s.identity.principal_id }, "PrincipalIdGiven",
        "principal", "client id")
      refused(pb.rotate, { registry = name, disable = true }, "CmkCannotBeDisabled", "cannot be disabled")
      refused(pb.rotate, { registry = name, key_id = s.key_id, key = "k" }, "ConflictingArguments", "either")
      local rg, plain = H.unique("rg-"), H.unique("plain")
      assert(c.resource_groups:create_or_update({ name = rg, location = "westus" }))
      assert(c.registries:create({ resource_group = rg, name = plain, location = "westus", sku = "Premium" }))
      refused(pb.rotate, { registry = plain }, "CmkNotEnabled", "not encrypted", "only be enabled when")
    end)
  end)

  describe("revoke and restore", function()
    for _, model in ipairs({ "policy", "rbac" }) do
      it("revoke needs yes, then really breaks the data plane; restore fixes it (" .. model .. ")", function()
        local s = H.setup({ access = model })
        assert.equal(401, (H.data_plane(s.registry.login_server)))
        local err = refused(pb.revoke, { registry = s.registry.name }, "ConfirmationRequired",
          "inaccessible", "`yes = true`")
        assert.equal("yes", err.param)
        assert.truthy(err.plan and #err.plan >= 2)
        assert.equal("record", err.plan[1].action)   -- the revocation is recorded first
        assert.equal("remove", err.plan[2].action)
        assert.is_true(err.plan[2].irreversible)
        assert.equal(401, (H.data_plane(s.registry.login_server)))
        local r = assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
        assert.is_true(r.changed)
        local st, res = H.data_plane(s.registry.login_server)
        assert.equal(403, st)
        assert.matches("DENIED", res.body)
        -- revoking again changes nothing
        r = assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
        assert.is_false(r.changed)
        r = assert(pb.restore(H.opts({ registry = s.registry.name })))
        assert.is_true(r.changed)
        assert.equal(401, (H.data_plane(s.registry.login_server)))
        local seq = H.seq()
        r = assert(pb.restore(H.opts({ registry = s.registry.name })))
        assert.is_false(r.changed)
        assert.equal(0, #H.writes(seq))
      end)
    end

    it("removes only the key use that restore gives back (rbac: other roles stay)", function()
      local s = H.setup({ access = "rbac" })
      local pid, vid = s.identity.principal_id, s.vault.id
      local reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
      assert(c.role_assignments:create({ scope = vid, principal_id = pid, role = reader }))
      local err = refused(pb.revoke, { registry = s.registry.name }, "ConfirmationRequired", "inaccessible")
      assert.equal("revocation=record access=remove", H.plan_of(err.plan))
      assert.matches("Key Vault Crypto Service Encryption User", err.plan[2].description)
      assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
      assert.equal(403, (H.data_plane(s.registry.login_server)))
      local roles = {}
      for _, a in ipairs(assert(c.role_assignments:list({ scope = vid, principal_id = pid }))) do
        roles[#roles + 1] = tostring(a.properties.roleDefinitionId):match("[^/]+$")
      end
      assert.same({ reader }, roles)   -- Reader kept
      assert(pb.restore(H.opts({ registry = s.registry.name })))
      assert.equal(401, (H.data_plane(s.registry.login_server)))
    end)

    it("removes only get/wrapKey/unwrapKey from an access policy; other key permissions stay", function()
      local s = H.setup({ access = "policy" })
      local pid = s.identity.principal_id
      assert(c.vaults:add_access_policy({ id = s.vault.id, tenant_id = seed.tenant_id, object_id = pid,
        keys = { "list", "sign" } }))
      assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
      assert.equal(403, (H.data_plane(s.registry.login_server)))
      local vault = assert(c.vaults:get({ id = s.vault.id }))
      local keys = {}
      for _, ap in ipairs(vault.properties.accessPolicies) do
        if ap.objectId == pid then
          for _, k in ipairs(ap.permissions.keys) do keys[#keys + 1] = k:lower() end
        end
      end
      table.sort(keys)
      assert.same({ "list", "sign" }, keys)
      assert(pb.restore(H.opts({ registry = s.registry.name })))
      assert.equal(401, (H.data_plane(s.registry.login_server)))
    end)

    it("revokes and restores the system-assigned identity's access", function()
      local s = H.setup()
      assert(pb.rotate(H.opts({ registry = s.registry.name, identity = "[system]" })))
      assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
      assert.equal(403, (H.data_plane(s.registry.login_server)))
      assert(pb.restore(H.opts({ registry = s.registry.name })))
      assert.equal(401, (H.data_plane(s.registry.login_server)))
    end)
  end)

  describe("identity assign", function()
    it("enables [system] and attaches a user-assigned identity (idempotent)", function()
      local s = H.setup()
      local r = assert(pb.identity_assign(H.opts({ registry = s.registry.name, identity = "[system]" })))
      assert.is_true(r.changed)
      assert.truthy(r.identity.principal_id)
      r = assert(pb.identity_assign(H.opts({ registry = s.registry.name, identity = "[system]" })))
      assert.is_false(r.changed)
      local other = assert(c.identities:create({ resource_group = s.registry.resource_group,
        name = "extra-id",
        location = "westus" }))
      r = assert(pb.identity_assign(H.opts({ registry = s.registry.name, identity = "extra-id",
        resource_group = s.registry.resource_group })))
      assert.is_true(r.changed)
      local reg = assert(c.registries:get({ id = s.registry.id }))
      assert.truthy(R.user_identity(reg, other.properties.clientId))
      assert.truthy(R.user_identity(reg, s.identity.client_id))
      assert.matches("[Ss]ystem", reg.identity.type)
      local seq = H.seq()
      r = assert(pb.identity_assign(H.opts({ registry = s.registry.name,
        identity = other.properties.clientId })))
      assert.is_false(r.changed)
      assert.equal(0, #H.writes(seq))
      refused(pb.identity_assign, { registry = s.registry.name, identity = other.properties.principalId },
        "PrincipalIdGiven", "principal")
    end)
  end)

  describe("a forced removal of the CMK identity (emulator control)", function()
    it("is shown, blocks rotate before any write, and identity assign fixes it", function()
      local s = H.setup()
      H.E.control("POST", "registries/remove-identity", { id = s.registry.id, identity = s.identity.id })
      local st, res = H.data_plane(s.registry.login_server)
      assert.equal(403, st)
      assert.matches("inactive", res.body)
      local shown = assert(pb.show(H.opts({ registry = s.registry.name })))
      assert.matches("not attached", shown.warnings[1])
      refused(pb.rotate, { registry = s.registry.name }, "IdentityNotAssigned", "not attached",
        "`identity_assign{registry = ")
      local r = assert(pb.identity_assign(H.opts({ registry = s.registry.name,
        identity = s.identity.client_id })))
      assert.is_true(r.changed)
      assert.equal(401, (H.data_plane(s.registry.login_server)))
      assert.is_true(assert(pb.rotate(H.opts({ registry = s.registry.name }))).verified)
    end)
  end)

  describe("recover", function()
    it("a deleted key: the registry serves again", function()
      local s, names = H.setup()
      local key = names.registry:lower() .. "-cmk"
      assert(c.keys:delete({ vault = s.vault.name, name = key }))
      assert.equal(403, (H.data_plane(s.registry.login_server)))
      local r = assert(pb.recover(H.opts({ vault = s.vault.name, key = key })))
      assert.is_true(r.changed)
      assert.truthy(r.key.kid)
      assert.equal(401, (H.data_plane(s.registry.login_server)))
      r = assert(pb.recover(H.opts({ vault = s.vault.name, key = key })))
      assert.is_false(r.changed)
    end)

    it("a deleted vault: recovered into its resource group", function()
      local s = H.setup()
      assert(c.vaults:delete({ resource_group = s.registry.resource_group, name = s.vault.name }))
      assert.equal(403, (H.data_plane(s.registry.login_server)))
      local r = assert(pb.recover(H.opts({ vault = s.vault.name })))
      assert.is_true(r.changed)
      assert.truthy(c.vaults:get({ resource_group = s.registry.resource_group, name = s.vault.name }))
      assert.equal(401, (H.data_plane(s.registry.login_server)))
    end)

    it("a deleted vault whose resource group cannot be read: the error, and no write to the group", function()
      local s = H.setup()
      local rg = s.registry.resource_group
      assert(c.vaults:delete({ resource_group = rg, name = s.vault.name }))
      local seq = H.seq()
      H.E.control("POST", "faults", { rules = { { host = "management.azure.com", method = "GET",
        path = "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/" .. rg, status = 403,
        count = 1 } } })
      local r, err = pb.recover(H.opts({ vault = s.vault.name }))
      H.E.control("DELETE", "faults")
      assert.is_nil(r)
      assert.equal(403, err.status)
      local writes = H.writes(seq)
      assert.equal(0, #writes, H.describe(writes))
      assert(pb.recover(H.opts({ vault = s.vault.name })))
    end)

    it("refuses what is not there", function()
      local s = H.setup()
      refused(pb.recover, { vault = s.vault.name, key = "never-was" }, "KeyNotFound", "neither")
      refused(pb.recover, { vault = H.unique("kv-") }, "VaultNotFound", "neither")
      refused(pb.recover, { vault = "a--b" }, "InvalidName", "Key Vault name")
    end)
  end)

  describe("deploy", function()
    local template
    setup(function()
      local f = assert(io.open("examples/cmk-template.json"))
      template = assert(cjson.decode(f:read("a")))
      f:close()
    end)

    it("deploys the article's CMK template: a Premium registry encrypted with the key", function()
      local s = H.setup()
      local reg = H.unique("tpl")
      local r = assert(pb.deploy(H.opts({ resource_group = s.registry.resource_group,
        template_file = "examples/cmk-template.json", parameters = { registry_name = reg,
          identity_name = "tpl-identity", vault_name = s.vault.name, kek_id = s.versioned_key_id } })))
      assert.equal("Succeeded", r.provisioning_state)
      assert.equal("cmk-template", r.name)
      local shown = assert(pb.show(H.opts({ registry = reg, probe = true })))
      assert.is_true(shown.cmk)
      assert.equal(s.versioned_key_id, shown.encryption.keyVaultProperties.keyIdentifier)
      assert.equal(401, shown.data_plane.status)
    end)

    it("refuses before any write: unknown (key_id: did you mean kek_id?), missing or bad parameters",
      function()
      local s = H.setup()
      local rg = s.registry.resource_group
      local p = { registry_name = H.unique("tpl"), identity_name = "i-1", vault_name = s.vault.name }
      p.key_id = s.versioned_key_id
      refused(pb.deploy, { resource_group = rg, template = template, parameters = p }, "UnknownParameter",
        "key_id", "did you mean kek_id")
      p.key_id = nil
      refused(pb.deploy, { resource_group = rg, template = template, parameters = p }, "MissingParameter",
        "kek_id")
      p.kek_id = "https://" .. s.vault.name .. ".vault.azure.net/keys/k/zz"
      refused(pb.deploy, { resource_group = rg, template = template, parameters = p }, "InvalidKeyId",
        "version")
      p.kek_id = s.versioned_key_id
      refused(pb.deploy, { resource_group = H.unique("rg-"), template = template, parameters = p },
        "ResourceGroupNotFound", "does not exist")
      refused(pb.deploy, { resource_group = rg, template_file = "examples/none.json", parameters = p },
        "TemplateNotFound", "cannot read")
      local standard = cjson.decode(cjson.encode(template))
      standard.resources[1].sku.name = "Standard"
      refused(pb.deploy, { resource_group = rg, template = standard, parameters = p }, "NonPremiumSku",
        "Standard",
        "Premium")
    end)
  end)
end)
