-- The setup playbook end to end against the emulator: both access models, versioned and
-- versionless keys, idempotence (no write on a second run), resuming after a failure at
-- every step, and every refusal before any write.
local H = require("support.cmk_helper")
local setup_pb = require("azcmk.playbook.setup")
local R = require("azcmk.client.registries")

local function actions(r)
  local t = {}
  for _, s in ipairs(r.steps) do t[#t + 1] = s.step .. "=" .. s.action end
  return table.concat(t, " ")
end

-- What a finished setup looks like, whatever the names.
local function assert_end_state(c, names, r)
  local reg = assert(c.registries:get({ resource_group = names.resource_group, name = names.registry }))
  assert.is_true(R.cmk_enabled(reg))
  assert.equal("Premium", reg.sku.name)
  local kvp = reg.properties.encryption.keyVaultProperties
  local key = names.key or (names.registry:lower() .. "-cmk")
  assert.matches("^https://" .. names.vault:gsub("%-", "%%-") .. "%.vault%.azure%.net/keys/"
    .. key:gsub("%-", "%%-"),
    kvp.keyIdentifier)
  local ident = assert(c.identities:get({ resource_group = names.resource_group,
    name = names.identity or (names.registry:lower() .. "-identity") }))
  assert.equal(ident.properties.clientId, kvp.identity)
  assert.truthy(R.user_identity(reg, ident.properties.clientId))
  local vault = assert(c.vaults:get({ resource_group = names.resource_group, name = names.vault }))
  assert.is_true(vault.properties.enablePurgeProtection)
  assert.is_true(vault.properties.enableSoftDelete)
  assert.equal(401, (H.data_plane(reg.properties.loginServer)))
  if r then
    assert.equal(kvp.keyIdentifier, r.key_id)
    assert.equal(kvp.versionedKeyIdentifier, r.versioned_key_id)
  end
  return reg, vault, ident
end

describe("playbook setup", function()
  local c, seed

  setup(function() c, seed = H.start() end)

  teardown(function() H.done() end)

  it("creates everything with an access-policy vault and a versioned key id", function()
    local r, names = H.setup()
    assert.equal("resource_group=created identity=created vault=created access=granted key=created "
      .. "registry=created", actions(r))
    assert.is_true(r.changed)
    assert.equal("policy", r.vault.access_model)
    assert.is_false(r.versionless)
    assert.equal(r.key_id, r.versioned_key_id)
    local reg = assert_end_state(c, names, r)
    assert.is_false(reg.properties.encryption.keyVaultProperties.keyRotationEnabled)
    -- the article's access policy: get, wrapKey, unwrapKey for the identity's principal
    local vault = assert(c.vaults:get({ resource_group = names.resource_group, name = names.vault }))
    assert.is_true(require("azcmk.client.vaults").policy_grants(vault, r.identity.principal_id,
      { "get", "wrapKey", "unwrapKey" }))
  end)

  it("creates everything with an RBAC vault and a versionless key id", function()
    local r, names = H.setup({ access = "rbac", versionless = true })
    assert.equal("rbac", r.vault.access_model)
    assert.is_true(r.versionless)
    assert.matches("/keys/[^/]+$", r.key_id)
    local reg, vault = assert_end_state(c, names, r)
    assert.is_true(reg.properties.encryption.keyVaultProperties.keyRotationEnabled)
    local found = assert(c.role_assignments:find({ scope = vault.id, principal_id = r.identity.principal_id,
      role = "crypto_service_encryption_user" }))
    assert.equal(1, #found)
  end)

  it("reuses an existing resource group, identity and RBAC vault, and its model (versioned)", function()
    local rg, kv = H.unique("rg-"), H.unique("kv-")
    assert(c.resource_groups:create_or_update({ name = rg, location = "eastus" }))
    assert(c.identities:create({ resource_group = rg, name = "shared-id", location = "eastus" }))
    local v = assert(c.vaults:create({ resource_group = rg, name = kv, location = "eastus",
      tenant_id = seed.tenant_id, enable_rbac = true }))
    assert(c.role_assignments:create({ scope = v.id, principal_id = seed.owner.object_id,
      role = "crypto_officer" }))
    local r, names = H.setup({ resource_group = rg, vault = kv, identity = "shared-id", location = nil,
      key = "the-key" })
    assert.equal("resource_group=reused identity=reused vault=reused access=granted key=created "
      .. "registry=created", actions(r))
    assert.equal("rbac", r.vault.access_model)
    assert_end_state(c, names, r)
  end)

  it("takes an existing identity by resource id or client id (another resource group)", function()
    local other = H.unique("rg-")
    assert(c.resource_groups:create_or_update({ name = other, location = "westus" }))
    local ident = assert(c.identities:create({ resource_group = other, name = "central-id",
      location = "westus" }))
    local r, names = H.setup({ identity = ident.id })
    assert.equal(ident.properties.clientId, r.identity.client_id)
    assert.equal("identity=reused", actions(r):match("identity=%a+"))
    names.identity = "central-id"
    local reg = assert(c.registries:get({ resource_group = names.resource_group, name = names.registry }))
    assert.equal(ident.properties.clientId, reg.properties.encryption.keyVaultProperties.identity)
    local r2 = assert(H.setup({ identity = ident.properties.clientId }))
    assert.equal(ident.id, r2.identity.id)
  end)

  it("changes nothing the second time: every step reused, no write request", function()
    local _, names = H.setup()
    local seq = H.seq()
    local r2 = assert(setup_pb.setup(H.opts(names)))
    assert.is_false(r2.changed)
    for _, s in ipairs(r2.steps) do assert.equal("reused", s.action, s.step) end
    local writes = H.writes(seq)
    assert.equal(0, #writes, H.describe(writes))
    -- RBAC + versionless too
    local _, n2 = H.setup({ access = "rbac", versionless = true })
    seq = H.seq()
    r2 = assert(setup_pb.setup(H.opts(n2)))
    assert.is_false(r2.changed)
    assert.equal(0, #H.writes(seq), H.describe(H.writes(seq)))
  end)

  describe("dry run", function()
    local function plan_of(r)
      local t = {}
      for _, a in ipairs(r.plan) do t[#t + 1] = a.step .. "=" .. a.action end
      return table.concat(t, " ")
    end

    it("returns the plan and writes nothing; the real run then does what it said", function()
      local names = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
        location = "westus", dry_run = true }
      local seq = H.seq()
      local r = assert(setup_pb.setup(H.opts(names)))
      local writes = H.writes(seq)
      assert.equal(0, #writes, H.describe(writes))
      assert.is_true(r.dry_run)
      assert.is_false(r.changed)
      assert.equal(6, r.changes)
      assert.equal("resource_group=create identity=create vault=create access=grant key=create "
        .. "registry=create", plan_of(r))
      local vault = r.plan[3]
      assert.is_true(vault.irreversible)
      assert.matches("purge protection", vault.description)
      assert.matches("^PUT /subscriptions/.+/providers/Microsoft%.KeyVault/vaults/"
        .. names.vault:gsub("%-", "%%-")
        .. "$", vault.request)
      for i, a in ipairs(r.plan) do
        assert.equal(i, a.order)
        assert.is_true(a.writes)
        assert.truthy(a.description and a.request and a.reason, a.step)
      end
      assert.is_nil(c.resource_groups:get({ name = names.resource_group }))
      names.dry_run = nil
      local r2 = assert(setup_pb.setup(H.opts(names)))
      assert.equal("resource_group=created identity=created vault=created access=granted key=created "
        .. "registry=created", actions(r2))
      assert_end_state(c, names, r2)
      -- planned again: every action reuses, and still nothing is written
      names.dry_run = true
      seq = H.seq()
      local r3 = assert(setup_pb.setup(H.opts(names)))
      assert.equal(0, r3.changes)
      assert.equal("resource_group=reuse identity=reuse vault=reuse access=reuse key=reuse registry=reuse",
        plan_of(r3))
      assert.equal(0, #H.writes(seq))
    end)

    it("after an interrupted run, shows only what is left (RBAC: the caller's role, then the key)", function()
      local names = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
        location = "westus", access = "rbac" }
      local rg_ = "/subscriptions/" .. seed.subscription_id .. "/resourceGroups/" .. names.resource_group
      H.E.control("POST", "faults", { rules = { { host = "management.azure.com", method = "PUT", status = 400,
        code = "InjectedFault", count = 1, path = rg_ .. "/providers/Microsoft.KeyVault/vaults/"
          .. names.vault
          .. "/providers/Microsoft.Authorization/roleAssignments/" } } })
      local r, err = setup_pb.setup(H.opts(names))
      H.E.control("DELETE", "faults")
      assert.is_nil(r)
      assert.equal("InjectedFault", err.code)
      assert.matches("Crypto Officer", err.action)
      names.dry_run = true
      local seq = H.seq()
      local p = assert(setup_pb.setup(H.opts(names)))
      assert.equal(0, #H.writes(seq), H.describe(H.writes(seq)))
      assert.equal("resource_group=reuse identity=reuse vault=reuse access=grant access=grant key=create "
        .. "registry=create", plan_of(p))
      assert.equal("caller", p.plan[4].name)
      names.dry_run = nil
      assert_end_state(c, names, assert(setup_pb.setup(H.opts(names))))
    end)
  end)

  describe("interrupted at each step, a re-run resumes and reaches the same end state", function()
    local function fault_for(step, names, sub)
      local arm = "/subscriptions/" .. sub .. "/resourcegroups/" .. names.resource_group
      local rg_ = "/subscriptions/" .. sub .. "/resourceGroups/" .. names.resource_group
      local t = {
        resource_group = { host = "management.azure.com", path = arm, method = "PUT" },
        identity = { host = "management.azure.com", method = "PUT",
          path = rg_ .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" },
        vault = { host = "management.azure.com", method = "PUT",
          path = rg_ .. "/providers/Microsoft.KeyVault/vaults/" .. names.vault },
        caller_role = { host = "management.azure.com", method = "PUT",
          path = rg_ .. "/providers/Microsoft.KeyVault/vaults/" .. names.vault
            .. "/providers/Microsoft.Authorization/roleAssignments/" },
        key = { host = names.vault .. ".vault.azure.net", method = "POST", path = "/keys/" },
        registry = { host = "management.azure.com", method = "PUT",
          path = rg_ .. "/providers/Microsoft.ContainerRegistry/registries/" .. names.registry },
      }
      local f = t[step]
      f.status, f.code, f.message, f.count = 400, "InjectedFault", "injected by the spec", 1
      return f
    end

    for _, case in ipairs({
      { "resource_group", "policy" }, { "identity", "policy" }, { "vault", "policy" }, { "key", "policy" },
      { "registry", "policy" }, { "vault", "rbac" }, { "caller_role", "rbac" }, { "key", "rbac" },
      { "registry", "rbac" },
    }) do
      local step, model = case[1], case[2]
      it("fails at " .. step .. " (" .. model .. " vault), then resumes", function()
        local names = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
          location = "westus", access = model }
        H.E.control("POST", "faults", { rules = { fault_for(step, names, seed.subscription_id) } })
        local r, err = setup_pb.setup(H.opts(names))
        H.E.control("DELETE", "faults")
        assert.is_nil(r)
        assert.truthy(err, "setup should fail at " .. step)
        assert.equal(400, err.status)
        assert.equal("InjectedFault", err.code)
        local r2 = assert(setup_pb.setup(H.opts(names)))
        assert.is_true(r2.changed)
        assert_end_state(c, names, r2)
        local seq = H.seq()
        local r3 = assert(setup_pb.setup(H.opts(names)))
        assert.is_false(r3.changed)
        assert.equal(0, #H.writes(seq))
      end)
    end
  end)

  describe("interrupted at the identity's access or while the registry is polled", function()
    local function run_with_fault(names, rule, already_done)
      H.E.control("POST", "faults", { rules = { rule } })
      local r, err = setup_pb.setup(H.opts(names))
      H.E.control("DELETE", "faults")
      assert.is_nil(r)
      assert.equal("InjectedFault", err.code)
      local r2 = assert(setup_pb.setup(H.opts(names)))
      -- a registry whose operation completed meanwhile needs nothing more
      assert.equal(not already_done, r2.changed)
      assert_end_state(c, names, r2)
      local seq = H.seq()
      assert.is_false(assert(setup_pb.setup(H.opts(names))).changed)
      assert.equal(0, #H.writes(seq))
      return r2
    end

    it("access policy of an existing vault (accessPolicies/add fails once)", function()
      local names = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
        location = "westus" }
      assert(c.resource_groups:create_or_update({ name = names.resource_group, location = "westus" }))
      local v = assert(c.vaults:create({ resource_group = names.resource_group, name = names.vault,
        location = "westus", tenant_id = seed.tenant_id, access_policies = { { tenantId = seed.tenant_id,
          objectId = seed.owner.object_id, permissions = { keys = { "all" } } } } }))
      local r = run_with_fault(names, { host = "management.azure.com", method = "PUT",
        path = v.id .. "/accessPolicies/add", status = 400, code = "InjectedFault", count = 1 })
      local granted = false
      for _, st in ipairs(r.steps) do if st.step == "access"
        and st.action == "granted" then granted = true end end
      assert.is_true(granted)
    end)

    it("role assignment of the identity on an existing RBAC vault (fails once)", function()
      local names = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
        location = "westus", identity = "pre-made-id" }
      assert(c.resource_groups:create_or_update({ name = names.resource_group, location = "westus" }))
      local ident = assert(c.identities:create({ resource_group = names.resource_group, name = "pre-made-id",
        location = "westus" }))
      local v = assert(c.vaults:create({ resource_group = names.resource_group, name = names.vault,
        location = "westus", tenant_id = seed.tenant_id, enable_rbac = true }))
      assert(c.role_assignments:create({ scope = v.id, principal_id = seed.owner.object_id,
        role = "crypto_officer" }))
      local RA = require("azcmk.client.role_assignments")
      local name = RA.stable_guid(v.id:lower() .. "|" .. ident.properties.principalId:lower() .. "|"
        .. RA.ROLES.crypto_service_encryption_user)
      run_with_fault(names, { host = "management.azure.com", method = "PUT", status = 400,
        code = "InjectedFault",
        path = v.id .. "/providers/Microsoft.Authorization/roleAssignments/" .. name, count = 1 })
    end)

    it("while polling the registry's creation (operation status fails once)", function()
      local names = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
        location = "westus" }
      run_with_fault(names, { host = "management.azure.com", method = "GET", status = 400,
        code = "InjectedFault",
        path = "/subscriptions/" .. seed.subscription_id .. "/resourceGroups/" .. names.resource_group
          .. "/providers/Microsoft.ContainerRegistry/registries/" .. names.registry .. "/operationStatuses",
        count = 1 }, true)
    end)
  end)

  it("a dropped connection while creating the key (a POST, not sent again blindly) is read back: "
    .. "one key version, setup completes", function()
    -- before the reconcile (docs/read-back.md) this failed with a network error and needed a re-run
    local names = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
      location = "westus" }
    H.E.control("POST", "faults", { rules = { { host = names.vault .. ".vault.azure.net", method = "POST",
      path = "/keys/", drop = true, count = 2 } } })
    local r, err = setup_pb.setup(H.opts(names))
    H.E.control("DELETE", "faults")
    if not r then  -- both drops met before the create went through: a network error, then a re-run
      assert.equal("network", err.kind)
      r = assert(setup_pb.setup(H.opts(names)))
    end
    assert_end_state(c, names, r)
    local key = names.registry:lower() .. "-cmk"
    assert.equal(1, #assert(c.keys:versions({ vault = names.vault, name = key })))
  end)

  it("a re-run while the registry of an interrupted run is still being created waits for it", function()
    local names = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
      location = "westus" }
    H.E.control("POST", "config", { lro = { polls = 1, seconds = 2, retry_after = 0 } })
    H.E.control("POST", "faults", { rules = { { host = "management.azure.com", method = "GET", status = 400,
      code = "InjectedFault", count = 1, path = "/subscriptions/" .. seed.subscription_id
        .. "/resourceGroups/"
        .. names.resource_group .. "/providers/Microsoft.ContainerRegistry/registries/" .. names.registry
        .. "/operationStatuses" } } })
    local r, err = setup_pb.setup(H.opts(names))
    H.E.control("DELETE", "faults")
    assert.is_nil(r)
    assert.equal("InjectedFault", err.code)
    local raw = assert(c.registries:get({ resource_group = names.resource_group, name = names.registry }))
    assert.equal("Creating", raw.properties.provisioningState)
    local said = {}
    local o = H.opts(names)
    o.interval = 0.3
    o.progress = function(ev) said[#said + 1] = ev.message end
    local r2 = assert(setup_pb.setup(o))
    H.fast()
    assert.truthy(table.concat(said, "\n"):find("is creating (an earlier run); waiting", 1, true))
    assert_end_state(c, names, r2)
  end)

  describe("refuses before any write", function()
    local function refused(opts, code, message_pat, hint_pat)
      return H.refused(setup_pb.setup, opts, code, message_pat, hint_pat)
    end
    local function base(extra)
      local o = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
        location = "westus" }
      for k, v in pairs(extra or {}) do o[k] = v end
      return o
    end

    it("invalid names, each naming its option", function()
      assert.equal("registry", refused(base({ registry = "my-registry" }), "InvalidName", "registry name",
        "alphanumeric").param)
      assert.equal("vault", refused(base({ vault = "a--b" }), "InvalidName", "Key Vault name").param)
      assert.equal("resource_group", refused(base({ resource_group = "bad/rg" }), "InvalidName",
        "resource group").param)
      refused(base({ registry = "abc" }), "InvalidName", "registry name")
      refused(base({ vault = "1vault" }), "InvalidName", "Key Vault name", "3%-24")
      refused(base({ vault = "a--b" }), "InvalidName", "Key Vault name")
      refused(base({ key = "my_key" }), "InvalidName", "key name")
      refused(base({ resource_group = "bad/rg" }), "InvalidName", "resource group")
      refused(base({ identity = "x" }), "InvalidName", "identity name")
    end)

    it("a non-Premium SKU, an EC key type, the system identity at creation", function()
      refused(base({ sku = "Standard" }), "NonPremiumSku", "Premium")
      refused(base({ key_type = "EC" }), "UnsupportedKeyType", "RSA", "RSA")
      refused(base({ identity = "[system]" }), "SystemIdentityAtCreation", "user%-assigned", "rotate")
      refused(base({ access = "acl" }), "InvalidAccessModel", "policy or rbac")
    end)

    it("an identity given by its principal id, or an unknown client id", function()
      local other = H.unique("rg-")
      assert(c.resource_groups:create_or_update({ name = other, location = "westus" }))
      local ident = assert(c.identities:create({ resource_group = other, name = "pid-id",
        location = "westus" }))
      refused(base({ identity = ident.properties.principalId }), "PrincipalIdGiven", "principal", "client id")
      refused(base({ identity = "00000000-0000-4000-8000-000000000000" }), "IdentityNotFound", "client id")
    end)

    it("a new resource group without a location", function()
      local o = base()
      o.location = nil
      local err = refused(o, "MissingArgument", "no location", "`location`")
      assert.equal("location", err.param)
    end)

    it("an existing registry without CMK, or not Premium", function()
      local o = base()
      assert(c.resource_groups:create_or_update({ name = o.resource_group, location = "westus" }))
      assert(c.registries:create({ resource_group = o.resource_group, name = o.registry, location = "westus",
        sku = "Premium" }))
      refused(o, "CmkOnlyAtCreation", "without a customer%-managed key", "new registry")
      local o2 = base({ resource_group = o.resource_group })
      assert(c.registries:create({ resource_group = o.resource_group, name = o2.registry, location = "westus",
        sku = "Standard" }))
      refused(o2, "NonPremiumSku", "SKU Standard")
    end)

    it("a vault without purge protection (offers enable_purge_protection, irreversible), then enables it",
      function()
      local o = base()
      assert(c.resource_groups:create_or_update({ name = o.resource_group, location = "westus" }))
      assert(c.vaults:create({ resource_group = o.resource_group, name = o.vault, location = "westus",
        tenant_id = seed.tenant_id, enable_purge_protection = false,
          access_policies = { { tenantId = seed.tenant_id,
          objectId = seed.owner.object_id, permissions = { keys = { "all" } } } } }))
      local err = refused(o, "PurgeProtectionRequired", "no purge protection",
        "`enable_purge_protection = true`")
      assert.equal("enable_purge_protection", err.param)
      assert.matches("irreversible", err.hint)
      o.enable_purge_protection = true
      local r = assert(setup_pb.setup(H.opts(o)))
      local vstep
      for _, s in ipairs(r.steps) do if s.step == "vault" then vstep = s end end
      assert.equal("updated", vstep.action)
      assert.matches("irreversible", vstep.detail)
      assert_end_state(c, o, r)
    end)

    it("an access model other than the vault's", function()
      local o = base({ access = "policy" })
      assert(c.resource_groups:create_or_update({ name = o.resource_group, location = "westus" }))
      assert(c.vaults:create({ resource_group = o.resource_group, name = o.vault, location = "westus",
        tenant_id = seed.tenant_id, enable_rbac = true }))
      assert.equal("access", refused(o, "AccessModelMismatch", "Azure RBAC", "`access = rbac`").param)
    end)

    it("a vault firewall a user-assigned identity cannot pass", function()
      local o = base()
      assert(c.resource_groups:create_or_update({ name = o.resource_group, location = "westus" }))
      local v = assert(c.vaults:create({ resource_group = o.resource_group, name = o.vault,
        location = "westus",
        tenant_id = seed.tenant_id }))
      assert(c.vaults:set_network_acls({ id = v.id, default_action = "Deny", bypass = "AzureServices" }))
      refused(o, "VaultFirewallBlocksUserIdentity", "firewall", "%[system%]")
    end)

    it("an EC key of that name, a soft-deleted key, a soft-deleted vault", function()
      local o = base({ key = "ec-key" })
      assert(c.resource_groups:create_or_update({ name = o.resource_group, location = "westus" }))
      assert(c.vaults:create({ resource_group = o.resource_group, name = o.vault, location = "westus",
        tenant_id = seed.tenant_id, access_policies = { { tenantId = seed.tenant_id,
          objectId = seed.owner.object_id,
          permissions = { keys = { "all" } } } } }))
      assert(c.keys:create({ vault = o.vault, name = "ec-key", kty = "EC", crv = "P-256" }))
      refused(o, "UnsupportedKeyType", "EC key", "RSA")
      assert(c.keys:create({ vault = o.vault, name = "gone" }))
      assert(c.keys:delete({ vault = o.vault, name = "gone" }))
      os.execute("sleep 1.2")
      o.key = "gone"
      refused(o, "KeyDeleted", "soft%-deleted", "`recover{vault = \"" .. o.vault:gsub("%-", "%%-")
        .. "\", key = \"gone\"}`")
      local o2 = base({ resource_group = o.resource_group })
      assert(c.vaults:create({ resource_group = o.resource_group, name = o2.vault, location = "westus",
        tenant_id = seed.tenant_id }))
      assert(c.vaults:delete({ resource_group = o.resource_group, name = o2.vault }))
      refused(o2, "VaultDeleted", "soft%-deleted", "`recover{vault = ")
    end)
  end)
end)
