-- The audit against the emulator: several registries (CMK with versioned and versionless key
-- ids, revoked, identity deleted, a newer key version pending, without CMK) in the seeded
-- subscription plus a subscription that does not exist; the playbook, the CLI's table and JSON.
local H = require("support.cmk_helper")
local W = require("support.cmk_world")
local E = H.E
local audit = require("azcmk.playbook.audit")

describe("audit", function()
  local sub, worlds, plain, sub2, other
  local missing = "00000000-0000-4000-8000-00000000dead"

  setup(function()
    H.env()
    H.reset()
    H.p = H.pipeline()
    sub = H.seed().subscription_id
    worlds = {}
    worlds.healthy = W.world()
    worlds.versionless = W.world({ versionless = true })
    worlds.revoked = W.world()
    W.policy(sub, worlds.revoked.rg, worlds.revoked.vault, "remove",
        worlds.revoked.uai.properties.principalId)
    worlds.nouai = W.world()
    assert.equal(200, E.arm("DELETE", worlds.nouai.uai.id, nil, { api_version = W.MI_API }).status)
    worlds.pending = W.world()
    W.create_key(worlds.pending.vault, "cmkkey")
    local rg = W.uniq("plainrg")
    W.create_rg(sub, rg)
    plain = W.uniq("plainreg")
    W.wait(E.arm("PUT", W.reg_path(sub, rg, plain), { location = "westus", sku = { name = "Standard" } },
      { api_version = W.ACR_API }))
    -- a second subscription, when the emulator seeds one
    sub2 = H.seed().subscription2_id
    if sub2 then
      local rg2 = W.uniq("sub2rg")
      W.create_rg(sub2, rg2)
      other = W.uniq("sub2reg")
      W.wait(E.arm("PUT", W.reg_path(sub2, rg2, other), { location = "westus", sku = { name = "Premium" } },
        { api_version = W.ACR_API }))
    end
  end)

  teardown(function()
    E.assert_no_internal_errors()
    H.reset() -- leave the seeded state (and clock) to the next spec file
  end)

  local function by_name(result)
    local t = {}
    for _, r in ipairs(result.registries) do t[r.name] = r end
    return t
  end

  it("reports every registry of the subscriptions with its encryption and key health", function()
    local seq = H.seq()
    local result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub, missing }, concurrency = 4 }))
    assert.equal(0, #H.writes(seq))
    assert.equal(2, #result.subscriptions)
    assert.equal(sub, result.subscriptions[1].id)
    assert.equal(6, result.subscriptions[1].registries)
    assert.equal("SubscriptionNotFound", result.subscriptions[2].error.code)
    assert.equal(6, result.summary.registries)
    assert.equal(5, result.summary.cmk)
    local t = by_name(result)
    local h = t[worlds.healthy.reg]
    assert.equal("ok", h.health)
    assert.equal("Premium", h.sku)
    assert.equal("enabled", h.encryption)
    assert.is_true(h.versioned)
    assert.equal(worlds.healthy.kid, h.key_id)
    assert.equal(worlds.healthy.kid:match("[^/]+$"), h.key_version_in_use)
    assert.is_true(h.up_to_date)
    assert.equal(0, h.key_age_days)
    assert.equal("user", h.identity)
    assert.equal("ok", h.identity_health)
    assert.equal(401, h.data_plane)
    local v = t[worlds.versionless.reg]
    assert.is_false(v.versioned)
    assert.is_true(v.auto_rotation)
    assert.equal("ok", v.health)
    local rv = t[worlds.revoked.reg]
    assert.equal("fail", rv.health)
    assert.equal(403, rv.data_plane)
    local nu = t[worlds.nouai.reg]
    assert.equal("deleted", nu.identity_health)
    assert.equal("fail", nu.health)
    local pe = t[worlds.pending.reg]
    assert.is_false(pe.up_to_date)
    assert.equal("warn", pe.health)
    assert.matches("newer key version", pe.problems[1])
    local pl = t[plain]
    assert.equal("disabled", pl.encryption)
    assert.equal("Standard", pl.sku)
    assert.is_false(pl.cmk)
    assert.equal("ok", pl.health)
    -- worst first
    assert.equal("fail", result.registries[1].health)
    assert.equal("fail", result.registries[2].health)
    assert.equal("warn", result.registries[3].health)
    -- the sequential loop sees the same
    local seqr = assert(audit.audit_sequential({ pipeline = H.p, subscriptions = { sub } }))
    local t2 = by_name(seqr)
    for name, r in pairs(by_name(result)) do
      assert.equal(r.health, t2[name].health, name)
      assert.equal(r.key_version_in_use, t2[name].key_version_in_use, name)
    end
  end)

  it("lists the subscriptions the caller sees when none is given", function()
    local seen = {}
    for _, x in ipairs(E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01" }).json.value) do
      seen[#seen + 1] = x.subscriptionId
    end
    local result = assert(audit.audit({ pipeline = H.p }))
    assert.equal(#seen, #result.subscriptions)
    local ids = {}
    for _, s in ipairs(result.subscriptions) do ids[s.id] = s end
    for _, id in ipairs(seen) do assert.truthy(ids[id], id) end
    assert.equal(6, ids[sub].registries)
  end)

  it("audits several subscriptions at once", function()
    assert(sub2, "the emulator seeds a second subscription (subscription2_id)")
    local result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub, sub2 } }))
    assert.equal(7, result.summary.registries)
    local t = by_name(result)
    assert.equal(sub2, t[other].subscription)
    assert.equal("disabled", t[other].encryption)
    assert.equal(sub, t[plain].subscription)
    local r = H.cli({ "audit", "--subscription", sub .. "," .. sub2, "-o", "json" })
    local j = assert(H.json(r.stdout), r.stderr)
    assert.equal(2, #j.subscriptions)
    assert.equal(7, #j.registries)
  end)

  it("prints a readable table and JSON for scripts (azcmk audit)", function()
    local r = H.cli({ "audit", "--subscription", sub, "--subscription=" .. missing })
    assert.equal(1, r.code, r.stderr)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.matches("^SUBSCRIPTION%s+RESOURCE GROUP%s+REGISTRY%s+SKU%s+CMK%s+KEY%s+VERSIONED%s+IN " ..
        "USE%s+NEWEST%s+AGE"
      .. "%s+IDENTITY%s+DATA%s+HEALTH$", lines[1])
    assert.matches(worlds.revoked.reg .. "%s+Premium%s+on%s+" .. worlds.revoked.vault .. "/cmkkey%s+yes",
        r.stdout)
    assert.matches(plain .. "%s+Standard%s+off", r.stdout)
    assert.matches("user:deleted", r.stdout)
    assert.matches("next: azcmk doctor %-n " .. worlds.revoked.reg, r.stdout)
    assert.matches("subscription " .. missing:gsub("%-", "%%-")
        .. ": cannot list registries: 404 SubscriptionNotFound", r.stdout)
    assert.matches("6 registries in 2 subscription%(s%): 5 with CMK; 3 ok, 1 warn, 2 fail", r.stdout)
    r = H.cli({ "audit", "--subscription", sub, "-o", "json", "--concurrency", "8" })
    assert.equal(1, r.code, r.stderr)
    local j = assert(H.json(r.stdout))
    assert.equal(6, #j.registries)
    assert.equal(6, j.summary.registries)
    for _, row in ipairs(j.registries) do
      assert.truthy(row.name and row.subscription and row.resourceGroup and row.health and row.encryption)
      assert.equal("table", type(row.problems))
    end
    r = H.cli({ "audit", "--concurrency", "0" })
    assert.equal(2, r.code)
  end)
end)
