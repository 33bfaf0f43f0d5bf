-- setup with `vault` = a vault's resource id in the emulator's second subscription (same
-- tenant): the existing vault is used (never created), the registry identity gets access in the
-- vault's model, the key is created there and the registry is encrypted with it; a second run
-- writes nothing; an absent vault id is refused before any write. Then show, rotate, revoke,
-- restore and the doctor work on that registry (they find the vault across subscriptions).
local H = require("support.cmk_helper")
local W = require("support.cmk_world")
local pb = require("azcmk.playbook")
local Vaults = require("azcmk.client.vaults")
local RoleAssignments = require("azcmk.client.role_assignments")

local function actions(r)
  local t = {}
  for _, s in ipairs(r.steps) do t[#t + 1] = s.step .. "=" .. s.action end
  return table.concat(t, " ")
end

local function esc(s) return (s:gsub("%p", "%%%0")) end

describe("setup with a vault resource id in another subscription", function()
  local c2, seed, sub, sub2

  setup(function()
    local _
    _, seed = H.start()
    sub, sub2 = seed.subscription_id, seed.subscription2_id
    assert(sub2, "the emulator seeds a second subscription (subscription2_id)")
    c2 = require("azcmk.client").new(H.p, { subscription = sub2 })
  end)

  teardown(function() H.done() end)

  -- an existing vault in the second subscription (the owner may manage its keys); its id
  local function vault_in_sub2(opts)
    local rg2 = W.uniq("xsub")
    W.create_rg(sub2, rg2)
    local name = W.uniq("kvx")
    local v = W.create_vault(sub2, rg2, name, opts)
    return v.id, name, rg2
  end

  local function names_with(vault_id, extra)
    local n = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = vault_id,
      location = "westus" }
    for k, v in pairs(extra or {}) do n[k] = v end
    return n
  end

  for _, model in ipairs({ "policy", "rbac" }) do
    it("uses the vault, grants the identity in its model (" .. model .. "), and is idempotent", function()
      local vid, vname, rg2 = vault_in_sub2({ rbac = model == "rbac" })
      assert.matches("^/subscriptions/" .. esc(sub2) .. "/", vid)
      local names = names_with(vid)
      local r = assert(pb.setup(H.opts(names)))
      assert.equal("resource_group=created identity=created vault=reused access=granted key=created "
        .. "registry=created", actions(r))
      assert.equal(model, r.vault.access_model)
      assert.equal(vname, r.vault.name)
      assert.is_true(require("azcmk.client.ids").same_id(vid, r.vault.id))
      -- the registry's encryption points at the key in that vault
      local reg = assert(W.get_registry(sub, names.resource_group, names.registry).json)
      local kvp = reg.properties.encryption.keyVaultProperties
      assert.matches("^https://" .. esc(vname) .. "%.vault%.azure%.net/keys/" .. esc(names.registry:lower())
        .. "%-cmk/%x+$", kvp.keyIdentifier)
      assert.equal(r.identity.client_id, kvp.identity)
      assert.equal(401, (H.data_plane(reg.properties.loginServer)))
      -- the identity's access is on the vault in the second subscription; nothing was created
      -- in the registry's subscription for the vault
      local vault = assert(c2.vaults:get({ resource_group = rg2, name = vname }))
      if model == "policy" then
        assert.is_true(Vaults.policy_grants(vault, r.identity.principal_id, Vaults.CMK_KEY_PERMISSIONS))
      else
        local found = assert(c2.role_assignments:find({ scope = vault.id,
          principal_id = r.identity.principal_id,
          role = RoleAssignments.ROLES.crypto_service_encryption_user }))
        assert.equal(1, #found)
      end
      local c1 = require("azcmk.client").new(H.p, { subscription = sub })
      assert.is_nil(c1.vaults:get({ resource_group = names.resource_group, name = vname }))

      -- a second run (the id in another case: Azure ids are case-insensitive) writes nothing
      local seq = H.seq()
      local upper = vid:gsub("^/[Ss]ubscriptions/", "/SUBSCRIPTIONS/")
        :gsub("/[Rr]esource[Gg]roups/", "/RESOURCEGROUPS/")
        :gsub("/[Mm]icrosoft%.[Kk]ey[Vv]ault/vaults/", "/microsoft.keyvault/VAULTS/")
      assert.matches("^/SUBSCRIPTIONS/.*/RESOURCEGROUPS/.*/VAULTS/", upper)
      local again = assert(pb.setup(H.opts(names_with(upper, { resource_group = names.resource_group,
        registry = names.registry }))))
      assert.is_false(again.changed)
      assert.equal("resource_group=reused identity=reused vault=reused access=reused key=reused "
        .. "registry=reused", actions(again))
      assert.equal(r.key_id, again.key_id)
      assert.same({}, again.warnings)
      assert.equal(0, #H.writes(seq), H.describe(H.writes(seq)))
    end)
  end

  it("refuses a vault id that does not exist (nothing is created), and ids of other types", function()
    local missing = W.vault_path(sub2, "nowhere-rg", W.uniq("kvnone"))
    local err = H.refused(pb.setup, names_with(missing), "VaultNotFound", "does not exist",
      "az keyvault show")
    assert.equal(404, err.status)
    assert.matches('subscription = "' .. esc(sub2), err.hint)
    assert.equal("vault", err.param)
    assert.matches("plain vault name", err.hint)
    H.refused(pb.setup, names_with("/subscriptions/" .. sub2 .. "/resourceGroups/rg/providers/"
      .. "Microsoft.ManagedIdentity/userAssignedIdentities/x"), "InvalidVaultId", "not the resource id",
      "Microsoft.KeyVault/vaults")
    H.refused(pb.setup, names_with("/subscriptions/" .. sub2 .. "/resourceGroups/rg/providers/"
      .. "Microsoft.KeyVault/vaults/9bad"), "InvalidName", "Key Vault name")
  end)

  it("refuses a soft-deleted vault id with the recover command for its subscription", function()
    local vid, vname = vault_in_sub2()
    assert.equal(200, H.E.arm("DELETE", vid, nil, { api_version = W.KV_API }).status)
    local err = H.refused(pb.setup, names_with(vid), "VaultDeleted", "soft%-deleted",
      '`recover{vault = "' .. esc(vname) .. '", subscription = "' .. esc(sub2) .. '"}`')
    assert.truthy(err.hint)
  end)

  it("show, rotate, revoke, restore and the doctor work on the registry", function()
    local vid, vname = vault_in_sub2()
    local s = assert(pb.setup(H.opts(names_with(vid))))
    local name = s.registry.name

    local shown = assert(pb.show(H.opts({ registry = name })))
    assert.equal(s.key_id, shown.key_id)
    assert.is_true(shown.up_to_date)

    local r = assert(pb.rotate(H.opts({ registry = name })))
    assert.is_true(r.verified)
    assert.are_not.equal(s.versioned_key_id, r.versioned_key_id)
    assert.matches("^https://" .. esc(vname) .. "%.vault%.azure%.net/", r.versioned_key_id)
    assert.equal(401, (H.data_plane(s.registry.login_server)))

    r = assert(pb.revoke(H.opts({ registry = name, yes = true })))
    assert.is_true(r.changed)
    assert.is_true(require("azcmk.client.ids").same_id(vid, r.vault.id))
    assert.equal(403, (H.data_plane(s.registry.login_server)))
    r = assert(pb.restore(H.opts({ registry = name })))
    assert.is_true(r.changed)
    assert.equal(401, (H.data_plane(s.registry.login_server)))

    local d = assert(pb.doctor(H.opts({ registry = name })))
    assert.is_true(d.healthy)
  end)

  it("the CLI takes the id (--vault) and reports an absent one on one line, exit 2", function()
    local vid, vname = vault_in_sub2()
    local rg, reg = H.unique("rg-"), H.unique("reg")
    local res = H.cli({ "setup", "-g", rg, "-n", reg, "--vault", vid, "-l", "westus", "-o", "json" })
    assert.equal(0, res.code, res.stderr)
    local j = assert(H.json(res.stdout))
    assert.equal(vname, j.vault.name)
    res = H.cli({ "setup", "-g", rg, "-n", reg .. "x", "--vault",
      W.vault_path(sub2, "nowhere-rg", "kvnone1") })
    assert.equal(2, res.code, res.stderr)
    assert.matches("VaultNotFound 404, %-%-vault", res.stderr)
    assert.matches("%-%- next: ", res.stderr)
    -- the library's recover{...} is the command line's azcmk recover --vault ... --subscription ...
    assert.matches("`azcmk recover %-%-vault%-name kvnone1 %-%-subscription " .. esc(sub2) .. "`", res.stderr)
  end)
end)
