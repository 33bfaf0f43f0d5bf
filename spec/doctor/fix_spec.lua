-- doctor --fix against the emulator: every safe repair brings a registry that was broken for
-- real back to healthy (and its data plane from 403 back to 401); without yes nothing is
-- written; nothing is ever deleted or purged.
local H = require("support.cmk_helper")
local W = require("support.cmk_world")
local E = H.E
local doctor = require("azcmk.playbook.doctor")

local function get(r, id)
  for _, c in ipairs(r.checks) do if c.id == id then return c end end
  error("no check " .. id)
end

local function describe_report(r)
  local l = {}
  for _, c in ipairs(r.checks) do l[#l + 1] = c.status .. " " .. c.id .. ": " .. tostring(c.summary) end
  if r.fix and r.fix.error then l[#l + 1] = "repair error: " .. tostring(r.fix.error.message) end
  return table.concat(l, "\n")
end

local function repairs(r)
  local t = {}
  for _, p in ipairs(r.fix.plan) do t[#t + 1] = p.repair end
  return table.concat(t, " ")
end

local function login(w) return w.reg:lower() .. ".azurecr.io" end

-- nothing deleted or purged since seq
local function assert_nothing_destroyed(seq)
  for _, e in ipairs(H.log(seq)) do
    assert.is_not.equal("DELETE", e.method, e.method .. " " .. e.host .. e.path)
    assert.is_nil(tostring(e.path):lower():find("purge", 1, true), e.path)
  end
end

-- Breaks nothing itself: runs doctor (must find check_id failed), then doctor --fix --yes.
local function fix(w, check_id, want_repairs, dp_before)
  local before = assert(doctor.doctor(H.opts({ registry = w.reg })))
  assert.is_false(before.healthy)
  assert.equal("fail", get(before, check_id).status, describe_report(before))
  if dp_before then assert.equal(dp_before, (H.data_plane(login(w)))) end
  local seq = H.seq()
  local r = assert(doctor.doctor(H.opts({ registry = w.reg, fix = true, yes = true })))
  assert.is_true(r.fix.applied)
  assert.equal(want_repairs, repairs(r))
  assert.is_true(r.healthy, describe_report(r))
  assert.equal("ok", get(r, "registry.data_plane").status)
  assert.equal(401, (H.data_plane(login(w))))
  assert_nothing_destroyed(seq)
  -- and a plain run agrees
  local again = assert(doctor.doctor(H.opts({ registry = w.reg })))
  assert.is_true(again.healthy, describe_report(again))
  return r
end

local function advance(s)
  E.control("POST", "clock", { advance = s })
  W.reset_tokens()
end

describe("doctor --fix", function()
  setup(function()
    H.env()
    H.reset()
    H.p = H.pipeline()
  end)

  teardown(function()
    E.control("DELETE", "faults")
    E.assert_no_internal_errors()
    H.reset()
  end)

  it("without yes shows the plan and writes nothing", function()
    local w = W.world()
    W.policy(w.sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
    local seq = H.seq()
    local r = assert(doctor.doctor(H.opts({ registry = w.reg, fix = true })))
    assert.is_false(r.fix.applied)
    assert.is_true(r.fix.needs_confirmation)
    assert.equal("grant", repairs(r))
    assert.matches("access policy keys get, wrapKey, unwrapKey", r.fix.plan[1].description)
    local writes = H.writes(seq)
    assert.equal(0, #writes, H.describe(writes))
    -- a confirm function that says no changes nothing either
    r = assert(doctor.doctor(H.opts({ registry = w.reg, fix = true, confirm = function() return false end })))
    assert.is_false(r.fix.applied)
    assert.equal(0, #H.writes(seq))
    assert.equal(403, (H.data_plane(login(w))))
  end)

  it("re-grants a removed access policy", function()
    local w = W.world()
    W.policy(w.sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
    fix(w, "access", "grant", 403)
  end)

  it("re-grants a missing RBAC role", function()
    local w = W.world({ rbac = true })
    assert.equal(200, E.arm("DELETE", w.assignment, nil, { api_version = W.AUTH_API }).status)
    local r = fix(w, "access", "grant", 403)
    local found = false
    for _, s in ipairs(r.fix.steps) do if s.step == "access" and s.model == "rbac" then found = true end end
    assert.is_true(found)
  end)

  it("re-assigns an identity removed from the registry", function()
    local w = W.world()
    E.control("POST", "registries/remove-identity", { id = W.reg_path(w.sub, w.rg, w.reg),
        identity = w.uai.id })
    fix(w, "identity.binding", "reassign_identity", 403)
  end)

  it("moves the encryption to the system identity when the user-assigned one was deleted", function()
    local w = W.world()
    assert.equal(200, E.arm("DELETE", w.uai.id, nil, { api_version = W.MI_API }).status)
    fix(w, "identity.exists", "use_system_identity")
    local reg = W.get_registry(w.sub, w.rg, w.reg).json
    assert.equal("system", reg.properties.encryption.keyVaultProperties.identity)
    assert.truthy(reg.identity.principalId)
  end)

  it("allows trusted services and switches to the system identity behind a vault firewall", function()
    local w = W.world()
    local res = E.arm("PATCH", W.vault_path(w.sub, w.rg, w.vault), { properties = { networkAcls = {
      defaultAction = "Deny", bypass = "None" } } }, { api_version = W.KV_API })
    assert.equal(200, res.status, res.body)
    fix(w, "vault.network", "use_system_identity", 403)
    local v = E.arm("GET", W.vault_path(w.sub, w.rg, w.vault), nil, { api_version = W.KV_API }).json
    assert.equal("Deny", v.properties.networkAcls.defaultAction)
    assert.equal("AzureServices", v.properties.networkAcls.bypass)
    assert.equal("system", W.get_registry(w.sub, w.rg,
        w.reg).json.properties.encryption.keyVaultProperties.identity)
  end)

  it("allows trusted services for a registry already on its system identity", function()
    local w = W.world()
    local path = W.reg_path(w.sub, w.rg, w.reg)
    local res = E.arm("PATCH", path, { identity = { type = "SystemAssigned, UserAssigned",
      userAssignedIdentities = { [w.uai.id] = {} } } }, { api_version = W.ACR_API })
    W.wait(res)
    W.policy(w.sub, w.rg, w.vault, "add", W.get_registry(w.sub, w.rg, w.reg).json.identity.principalId)
    res = E.arm("PATCH", path,
        { properties = { encryption = { keyVaultProperties = { identity = "system" } } } },
      { api_version = W.ACR_API })
    W.wait(res)
    res = E.arm("PATCH", W.vault_path(w.sub, w.rg, w.vault), { properties = { networkAcls = {
      defaultAction = "Deny", bypass = "None" } } }, { api_version = W.KV_API })
    assert.equal(200, res.status, res.body)
    fix(w, "vault.network", "enable_trusted_services", 403)
  end)

  it("recovers a deleted key", function()
    local w = W.world()
    assert.equal(200, W.kv("DELETE", w.vault, "/keys/cmkkey").status)
    advance(5)
    fix(w, "key.deleted", "recover_key", 403)
  end)

  it("recovers a deleted vault, then re-grants the role its deletion took away (RBAC)", function()
    local w = W.world({ rbac = true })
    assert.equal(200, E.arm("DELETE", W.vault_path(w.sub, w.rg, w.vault), nil,
        { api_version = W.KV_API }).status)
    local r = fix(w, "vault", "recover_vault grant", 403)
    assert.equal(2, r.fix.rounds)
  end)

  it("re-runs a rotation stuck for more than an hour", function()
    local w = W.world({ versionless = true })
    local new = W.create_key(w.vault, "cmkkey")
    W.set_key_enabled(w.kid, false)
    advance(2 * 3600)
    fix(w, "rotation", "rerun_rotation", 403)
    assert.equal(new:lower(),
      W.get_registry(w.sub, w.rg,
          w.reg).json.properties.encryption.keyVaultProperties.versionedKeyIdentifier:lower())
  end)

  it("re-runs the rotation when the old version was disabled before the registry moved", function()
    local w = W.world({ versionless = true })
    W.create_key(w.vault, "cmkkey")
    W.set_key_enabled(w.kid, false)
    fix(w, "rotation", "rerun_rotation", 403)
  end)

  it("has no safe repair for a disabled key without a newer version: it says how, and changes nothing",
      function()
    local w = W.world()
    W.set_key_enabled(w.kid, false)
    local seq = H.seq()
    local r = assert(doctor.doctor(H.opts({ registry = w.reg, fix = true, yes = true })))
    assert.is_false(r.fix.applied)
    assert.equal(0, #r.fix.plan)
    assert.matches("no safe repair", r.fix.reason)
    assert.matches("attributes.enabled=true", get(r, "key").fix)
    assert.equal(0, #H.writes(seq))
  end)
end)
