-- The doctor against the emulator: every known CMK failure is produced for real (raw ARM and
-- Key Vault calls through spec/support/cmk_world.lua) and the doctor names it: check id,
-- status, evidence, fix. A healthy registry is all ok; failures come first; the doctor itself
-- never writes.
local H = require("support.cmk_helper")
local W = require("support.cmk_world")
local E = H.E
local doctor = require("azcmk.playbook.doctor")

local function get(r, id)
  for _, c in ipairs(r.checks) do if c.id == id then return c end end
  error("no check " .. id)
end

local function text(c) return table.concat(c.evidence, "\n") end

local function esc(s) return (s:gsub("%-", "%%-")) end

local function describe_report(r)
  local l = {}
  for _, c in ipairs(r.checks) do l[#l + 1] = c.status .. " " .. c.id .. ": " .. tostring(c.summary) end
  return table.concat(l, "\n")
end

-- Runs the doctor; asserts it wrote nothing; returns the report.
local function run(w, extra)
  local seq = H.seq()
  local o = H.opts({ registry = w.reg })
  for k, v in pairs(extra or {}) do o[k] = v end
  local r, err = doctor.doctor(o)
  assert(r, tostring(err))
  local writes = H.writes(seq)
  assert.equal(0, #writes, H.describe(writes))
  return r
end

local function expect(r, id, status, summary_pat, evidence_pat, fix_pat)
  local c = get(r, id)
  assert.equal(status, c.status, id .. ": " .. describe_report(r))
  if summary_pat then assert.matches(summary_pat, c.summary) end
  if evidence_pat then assert.matches(evidence_pat, text(c)) end
  if fix_pat then assert.matches(fix_pat, c.fix or "") end
  -- failures and warnings first
  local seen_ok = false
  for _, x in ipairs(r.checks) do
    if x.status == "ok" or x.status == "skip" then seen_ok = true
    elseif x.status == "fail" then assert.is_false(seen_ok, "a failure after an ok check") end
  end
  return c
end

local function vault_path(w) return W.vault_path(w.sub, w.rg, w.vault) end

local function key_path(w) return w.kid:match("^https://[^/]+(/keys/.+)$") end

local function advance(s)
  E.control("POST", "clock", { advance = s })
  W.reset_tokens()
end

describe("doctor", function()
  setup(function()
    H.env()
    H.reset()
    H.p = H.pipeline()
  end)

  teardown(function()
    E.control("DELETE", "faults")
    E.assert_no_internal_errors()
    H.reset() -- leave the seeded state (and clock) to the next spec file
  end)

  it("finds a healthy registry healthy: every check ok or not applicable", function()
    local w = W.world()
    local r = run(w)
    assert.is_true(r.healthy, describe_report(r))
    assert.equal("healthy", r.status)
    assert.equal(0, r.counts.fail)
    assert.equal(0, r.counts.warn, describe_report(r))
    for _, c in ipairs(r.checks) do
      assert.truthy(c.status == "ok" or c.status == "skip", c.id)
      assert.truthy(#c.evidence > 0 or c.status == "skip", c.id)
    end
    expect(r, "registry.data_plane", "ok", nil, "%-> 401")
    expect(r, "caller", "ok", nil, "not as the registry's identity")
    expect(r, "access", "ok", "access policy grants")
    -- the checks run in the order of the CMK chain (caller, registry, identity, vault, key)
    local order = {}
    for _, c in ipairs(r.checks) do order[#order + 1] = c.id end
    assert.equal("inputs caller registry registry.data_plane identity.binding identity.exists vault " ..
        "vault.tenant "
      .. "vault.network caller.vault access key key.deleted rotation rotation.policy vault.recoverability "
      .. "throttle limits", table.concat(order, " "))
  end)

  it("names an identity removed from the registry (forced removal)", function()
    local w = W.world()
    E.control("POST", "registries/remove-identity", { id = W.reg_path(w.sub, w.rg, w.reg),
        identity = w.uai.id })
    local r = run(w)
    assert.is_false(r.healthy)
    expect(r, "identity.binding", "fail", "not attached to the registry", esc(w.uai.properties.clientId),
      "re%-assign the identity")
    expect(r, "registry.data_plane", "fail", nil,
        "403 DENIED.*identity associated with the registry is inactive")
    assert.equal("fail", r.checks[1].status)
  end)

  it("names a deleted user-assigned identity", function()
    local w = W.world()
    assert.equal(200, E.arm("DELETE", w.uai.id, nil, { api_version = W.MI_API }).status)
    local r = run(w)
    expect(r, "identity.exists", "fail", "identity was deleted", "%-> 404", "system%-assigned identity")
    -- the registry keeps working on the identity's last credential for about three months
    expect(r, "registry.data_plane", "ok")
    advance(91 * 86400)
    r = run(w)
    expect(r, "identity.exists", "fail", "identity was deleted")
    expect(r, "registry.data_plane", "fail", nil, "identity associated with the registry is inactive")
    E.control("POST", "reset")
    H.fast()
  end)

  it("names a removed access policy", function()
    local w = W.world()
    W.policy(w.sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
    local r = run(w)
    expect(r, "access", "fail", "no access policy on the vault", "no access policy entry for "
      .. w.uai.properties.principalId:gsub("%-", "%%-"), "get, wrapKey, unwrapKey")
    expect(r, "registry.data_plane", "fail", nil, "403")
    -- the cause first, then the symptom
    assert.equal("access", r.checks[1].id)
    assert.equal("registry.data_plane", r.checks[2].id)
  end)

  it("names a registry whose last operation failed (provisioningState Failed)", function()
    local w = W.world()
    local path = W.reg_path(w.sub, w.rg, w.reg)
    E.control("POST", "faults", { rules = { { method = "PATCH", path = path, lro_fail = true, count = 1 } } })
    local r0 = E.arm("PATCH", path, { tags = { team = "blue" } }, { api_version = W.ACR_API })
    assert.equal("Failed", W.wait(r0).status)
    E.control("DELETE", "faults")
    local r = run(w)
    expect(r, "registry", "fail", "last operation failed", "provisioningState Failed", "again")
  end)

  it("names a missing RBAC role", function()
    local w = W.world({ rbac = true })
    assert.equal(200, E.arm("DELETE", w.assignment, nil, { api_version = W.AUTH_API }).status)
    local r = run(w)
    expect(r, "access", "fail", "RBAC role missing", "assignedTo%('"
        .. w.uai.properties.principalId:gsub("%-", "%%-"),
      "Key Vault Crypto Service Encryption User")
  end)

  it("names the access-model mismatch both ways", function()
    -- an access policy on an RBAC vault
    local w = W.world({ rbac = true })
    assert.equal(200, E.arm("DELETE", w.assignment, nil, { api_version = W.AUTH_API }).status)
    W.policy(w.sub, w.rg, w.vault, "add", w.uai.properties.principalId)
    local r = run(w)
    expect(r, "access", "fail", "access%-model mismatch: the vault uses Azure RBAC", "access policy for")
    -- a role on an access-policy vault
    local w2 = W.world()
    W.policy(w2.sub, w2.rg, w2.vault, "remove", w2.uai.properties.principalId)
    W.assign_role(w2.sub, vault_path(w2), W.KV_CRYPTO_SERVICE_ENCRYPTION_USER, w2.uai.properties.principalId)
    r = run(w2)
    expect(r, "access", "fail", "access%-model mismatch: the vault uses access policies",
      "role Key Vault Crypto Service Encryption User")
  end)

  it("names a vault firewall with a user-assigned identity", function()
    local w = W.world()
    local res = E.arm("PATCH", vault_path(w), { properties = { networkAcls = { defaultAction = "Deny",
      bypass = "AzureServices" } } }, { api_version = W.KV_API })
    assert.equal(200, res.status, res.body)
    local r = run(w)
    expect(r, "vault.network", "fail", "only works with the registry's system%-assigned identity",
      "defaultAction Deny", "system identity")
    -- the caller is behind the same firewall: said, and the key checks are skipped
    expect(r, "caller.vault", "warn", "firewall blocks the caller")
    assert.equal("skip", get(r, "key").status)
  end)

  it("names a vault firewall without trusted services (system identity)", function()
    local w = W.world()
    local path = W.reg_path(w.sub, w.rg, w.reg)
    local res = E.arm("PATCH", path, { identity = { type = "SystemAssigned, UserAssigned",
      userAssignedIdentities = { [w.uai.id] = {} } } }, { api_version = W.ACR_API })
    W.wait(res)
    local pid = W.get_registry(w.sub, w.rg, w.reg).json.identity.principalId
    W.policy(w.sub, w.rg, w.vault, "add", pid)
    res = E.arm("PATCH", path,
        { properties = { encryption = { keyVaultProperties = { identity = "system" } } } },
      { api_version = W.ACR_API })
    W.wait(res)
    res = E.arm("PATCH", vault_path(w), { properties = { networkAcls = { defaultAction = "Deny",
        bypass = "None" } } },
      { api_version = W.KV_API })
    assert.equal(200, res.status, res.body)
    local r = run(w)
    expect(r, "vault.network", "fail", "without 'Allow trusted Microsoft services'", "bypass None",
        "AzureServices")
    expect(r, "identity.binding", "ok", "system%-assigned")
  end)

  it("names a disabled key", function()
    local w = W.world()
    W.set_key_enabled(w.kid, false)
    local r = run(w)
    expect(r, "key", "fail", "is disabled", "enabled false", "attributes.enabled=true")
    expect(r, "registry.data_plane", "fail")
  end)

  it("warns about an expired key: unwrap still works, wrap does not", function()
    local w = W.world()
    local res = W.kv("PATCH", w.vault, key_path(w), { attributes = { exp = os.time() + 60 } })
    assert.equal(200, res.status, res.body)
    advance(180)
    local r = run(w)
    expect(r, "key", "warn", "unwrap still works, wrap does not", "exp .*ago")
    assert.is_true(r.healthy)
    expect(r, "registry.data_plane", "ok")
  end)

  it("names a deleted key (recoverable)", function()
    local w = W.world()
    assert.equal(200, W.kv("DELETE", w.vault, "/keys/cmkkey").status)
    advance(5)
    local r = run(w)
    expect(r, "key.deleted", "fail", "key was deleted %(recoverable until", "scheduledPurgeDate", "/recover")
    expect(r, "registry.data_plane", "fail")
  end)

  it("names a deleted vault (recoverable)", function()
    local w = W.world()
    assert.equal(200, E.arm("DELETE", vault_path(w), nil, { api_version = W.KV_API }).status)
    local r = run(w)
    expect(r, "vault", "fail", "is deleted %(recoverable until", "deletedVaults", "createMode 'recover'")
  end)

  it("names an EC key version behind a versionless key id", function()
    local w = W.world({ versionless = true })
    local res = W.kv("POST", w.vault, "/keys/cmkkey/create", { kty = "EC", crv = "P-256" })
    assert.equal(200, res.status, res.body)
    advance(3700)
    local r = run(w)
    expect(r, "key", "fail", "EC", "kty EC", "RSA")
  end)

  it("names a versionless key id more than an hour behind the newest version", function()
    local w = W.world({ versionless = true })
    local new = W.create_key(w.vault, "cmkkey")
    W.set_key_enabled(w.kid, false)
    advance(2 * 3600)
    local r = run(w)
    expect(r, "rotation", "fail", "behind the newest version.*rotation is stuck", new:match("[^/]+$"),
      "re%-run the rotation")
  end)

  it("names a new version less than an hour old with the old one already disabled", function()
    local w = W.world({ versionless = true })
    W.create_key(w.vault, "cmkkey")
    W.set_key_enabled(w.kid, false)
    local r = run(w)
    expect(r, "rotation", "fail", "less than an hour%) and the old version in use is already disabled",
      "enabled false", "re%-enable the old version")
  end)

  it("names a registry without CMK", function()
    local s = H.seed()
    local rg = W.uniq("plainrg")
    W.create_rg(s.subscription_id, rg)
    local name = W.uniq("plainreg")
    local res = E.arm("PUT", W.reg_path(s.subscription_id, rg, name), { location = "westus",
      sku = { name = "Premium" }, properties = { adminUserEnabled = false } }, { api_version = W.ACR_API })
    W.wait(res)
    local r = run({ reg = name })
    expect(r, "registry", "fail", "not encrypted with a customer%-managed key", "encryption.status disabled",
      "only be enabled when a registry is created")
    assert.equal("skip", get(r, "access").status)
  end)

  it("names the caller's missing permissions (the seeded no-access principal)", function()
    local w = W.world()
    local s = H.seed()
    local credential = require("azcmk.credential")
    local p = H.pipeline({ credential = credential.client_secret({ tenant_id = s.tenant_id,
      client_id = s.noaccess.app_id, client_secret = s.noaccess.client_secret }) })
    -- no role at all: it cannot even read the registry
    local r = run(w, { pipeline = p, resource_group = w.rg })
    expect(r, "registry", "fail", "lacks Microsoft.ContainerRegistry/registries/read",
        s.noaccess.object_id:gsub("%-", "%%-"),
      "Reader")
    -- Reader on the subscription: ARM reads work, the vault's keys do not (no access policy)
    W.assign_role(w.sub, "/subscriptions/" .. w.sub, "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        s.noaccess.object_id)
    local p2 = H.pipeline({ credential = credential.client_secret({ tenant_id = s.tenant_id,
      client_id = s.noaccess.app_id, client_secret = s.noaccess.client_secret }) })
    r = run(w, { pipeline = p2 })
    expect(r, "caller.vault", "warn", "lacks keys %a+ permission in an access policy", "ForbiddenByPolicy",
      s.noaccess.object_id:gsub("%-", "%%-"))
    expect(r, "access", "ok")
  end)

  it("names a token tenant that differs from the vault's tenant", function()
    local w = W.world()
    local other = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
    local res = E.arm("PATCH", vault_path(w), { properties = { tenantId = other } },
        { api_version = W.KV_API })
    assert.equal(200, res.status, res.body)
    local r = run(w)
    expect(r, "caller", "fail", "differs from the vault's tenant " .. other:gsub("%-", "%%-"),
        "tenantId = " ..
      other:gsub("%-", "%%-"), "no cross%-tenant CMK")
    expect(r, "vault.tenant", "fail", "vault is in tenant")
  end)
  it("finds the vault in another subscription the caller sees, and recovers it there", function()
    local s = H.seed()
    local sub2 = s.subscription2_id
    assert(sub2, "the emulator seeds a second subscription (subscription2_id)")
    local sub = s.subscription_id
    local w = { sub = sub, rg = W.uniq("xrg") }
    W.create_rg(sub, w.rg)
    w.uai = W.create_uai(sub, w.rg, "x-uai")
    local rg2 = W.uniq("xrg2")
    W.create_rg(sub2, rg2)
    w.vault = W.uniq("kvx")
    W.create_vault(sub2, rg2, w.vault)
    W.policy(sub2, rg2, w.vault, "add", w.uai.properties.principalId)
    w.kid = W.create_key(w.vault, "cmkkey")
    w.reg = W.uniq("xreg")
    local res = E.arm("PUT", W.reg_path(sub, w.rg, w.reg), W.cmk_body(w.uai, w.kid),
        { api_version = W.ACR_API })
    assert.equal(201, res.status, res.body)
    W.wait(res)
    local r = run(w)
    assert.is_true(r.healthy, describe_report(r))
    expect(r, "vault", "ok", nil, "found in subscription " .. esc(sub2) .. ", not the registry's")
    assert.equal(200, E.arm("DELETE", W.vault_path(sub2, rg2, w.vault), nil,
        { api_version = W.KV_API }).status)
    r = run(w)
    expect(r, "vault", "fail", "is deleted", "deletedVaults")
    r = assert(doctor.doctor(H.opts({ registry = w.reg, fix = true, yes = true })))
    assert.is_true(r.healthy, describe_report(r))
    assert.equal(200, E.arm("GET", W.vault_path(sub2, rg2, w.vault), nil, { api_version = W.KV_API }).status)
  end)
  it("warns about little throttle headroom (retried 429s with Retry-After)", function()
    local w = W.world()
    E.control("POST", "faults", { rules = { { host = "management.azure.com", path = "/subscriptions/" .. w.sub
      .. "/resourceGroups/" .. w.rg .. "/providers/Microsoft.ContainerRegistry", method = "GET", status = 429,
      retry_after = 0, count = 2 } } })
    local r = run(w)
    E.control("DELETE", "faults")
    expect(r, "throttle", "warn", "little throttle headroom",
        "had to retry %(throttling or server errors%): 2")
    assert.is_true(r.healthy)
  end)
end)
