-- The registry data plane (https://{registry}.azurecr.io/v2/): the normal 401 challenge, and
-- 403 while a CMK registry cannot reach its key (policy revoked, key disabled / deleted, vault
-- deleted, firewall without trusted services, identity gone), back to normal once restored.
local E = require("support.emulator")
local W = require("support.cmk_world")

describe("emulator: container registry data plane", function()
  local sub

  setup(function()
    sub = W.fresh().subscription_id
    E.control("POST", "keyvault", { delete_seconds = 0 })
  end)

  teardown(function()
    E.assert_no_internal_errors()
    E.reset() -- the clock moved; leave the seeded world to the next spec
  end)

  local function normal(name)
    local r = W.v2(name)
    assert.equal(401, r.status, r.body)
    local host = name:lower() .. ".azurecr.io"
    assert.equal('Bearer realm="https://' .. host .. '/oauth2/token",service="' .. host .. '"',
      r.headers["www-authenticate"])
    assert.equal('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required, visit ' ..
      'https://aka.ms/acr/authorization for more information.","detail":null}]}', r.body)
    assert.equal("registry/2.0", r.headers["docker-distribution-api-version"])
  end

  local function denied(name, pattern)
    local r = W.v2(name)
    assert.equal(403, r.status, r.body)
    assert.equal("DENIED", r.json.errors[1].code)
    if pattern then assert.matches(pattern, r.json.errors[1].message, 1, true) end
    return r
  end

  it("answers 404 for an unknown registry and 401 for a plain one", function()
    local r = W.v2("nosuchregistry1")
    assert.equal(404, r.status)
    assert.equal("NOT_FOUND", r.json.errors[1].code)
    local rg = W.uniq("dprg")
    W.create_rg(sub, rg)
    local name = W.uniq("plainreg")
    r = E.arm("PUT", W.reg_path(sub, rg, name), { location = "westus", sku = { name = "Basic" } },
      { api_version = W.ACR_API })
    W.wait(r)
    normal(name)
    -- also below /v2/ and with HEAD
    r = assert(E.request({ method = "GET", url = "https://" .. name .. ".azurecr.io/v2/_catalog" }))
    assert.equal(401, r.status)
    r = assert(E.request({ method = "HEAD", url = "https://" .. name .. ".azurecr.io/v2/" }))
    assert.equal(401, r.status)
  end)

  it("goes 403 when the access policy is revoked and recovers when it is restored", function()
    -- twice each: the emulator's workers keep the decoded vault between requests
    -- (emu.state.get_ro), and a changed vault must be read again
    local w = W.world()
    normal(w.reg)
    normal(w.reg)
    W.policy(sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
    denied(w.reg, "customer-managed key")
    denied(w.reg, "customer-managed key")
    W.policy(sub, w.rg, w.vault, "add", w.uai.properties.principalId)
    normal(w.reg)
    normal(w.reg)
  end)

  it("goes 403 while the key is disabled, and after it is deleted until recovered", function()
    local w = W.world()
    W.set_key_enabled(w.kid, false)
    denied(w.reg, "disabled")
    W.set_key_enabled(w.kid, true)
    normal(w.reg)
    local r = W.kv("DELETE", w.vault, "/keys/cmkkey")
    assert.equal(200, r.status, r.body)
    denied(w.reg, "deleted")
    r = W.kv("POST", w.vault, "/deletedkeys/cmkkey/recover")
    assert.equal(200, r.status, r.body)
    normal(w.reg)
  end)

  it("goes 403 while the vault is deleted, back after recovery", function()
    local w = W.world()
    local vp = W.vault_path(sub, w.rg, w.vault)
    local r = E.arm("DELETE", vp, nil, { api_version = W.KV_API })
    assert.equal(200, r.status, r.body)
    denied(w.reg, "deleted")
    local s = E.seed()
    r = E.arm("PUT", vp, { location = "westus", properties = { tenantId = s.tenant_id,
      sku = { family = "A", name = "standard" }, createMode = "recover" } }, { api_version = W.KV_API })
    assert.equal(200, r.status, r.body)
    normal(w.reg)
  end)

  it("goes 403 behind a vault firewall for a user-assigned identity; the system identity passes " ..
    "with trusted services", function()
    local w = W.world()
    local vp = W.vault_path(sub, w.rg, w.vault)
    local r = E.arm("PATCH", vp, { properties = { networkAcls = { defaultAction = "Deny", bypass = "None" } } },
      { api_version = W.KV_API })
    assert.equal(200, r.status, r.body)
    denied(w.reg, "firewall")
    -- trusted services do not help a user-assigned identity
    r = E.arm("PATCH", vp, { properties = { networkAcls = { defaultAction = "Deny", bypass = "AzureServices" } } },
      { api_version = W.KV_API })
    assert.equal(200, r.status, r.body)
    denied(w.reg, "firewall")
    -- switch to the system identity (needs the firewall open for the rotation's own check? no: trusted)
    local path = W.reg_path(sub, w.rg, w.reg)
    r = E.arm("PATCH", path, { identity = { type = "SystemAssigned, UserAssigned",
      userAssignedIdentities = { [w.uai.id] = {} } } }, { api_version = W.ACR_API })
    W.wait(r)
    local pid = W.get_registry(sub, w.rg, w.reg).json.identity.principalId
    W.policy(sub, w.rg, w.vault, "add", pid)
    r = E.arm("PATCH", path, { properties = { encryption = { keyVaultProperties = { identity = "system" } } } },
      { api_version = W.ACR_API })
    assert.equal(201, r.status, r.body)
    W.wait(r)
    normal(w.reg)
    -- without trusted services the system identity is blocked too
    r = E.arm("PATCH", vp, { properties = { networkAcls = { defaultAction = "Deny", bypass = "None" } } },
      { api_version = W.KV_API })
    assert.equal(200, r.status, r.body)
    denied(w.reg, "firewall")
    r = E.arm("PATCH", vp, { properties = { networkAcls = { defaultAction = "Allow", bypass = "AzureServices" } } },
      { api_version = W.KV_API })
    assert.equal(200, r.status, r.body)
    normal(w.reg)
  end)

  it("answers the inactive-identity 403 once a force-removed CMK identity's credential expired", function()
    local w = W.world()
    local r = E.arm("DELETE", w.uai.id, nil, { api_version = W.MI_API })
    assert.equal(200, r.status, r.body)
    -- the registry keeps working on the identity's last credential (about three months)
    normal(w.reg)
    E.control("POST", "clock", { advance = 89 * 86400 })
    normal(w.reg)
    E.control("POST", "clock", { advance = 2 * 86400 })
    denied(w.reg, "The identity associated with the registry is inactive. This could be due to attempted " ..
      "removal of the identity. Reassign the identity manually")
    E.control("POST", "reset")
  end)

  it("keeps serving with an expired key (unwrap still works)", function()
    local w = W.world()
    local vault, path = w.kid:match("^https://([^.]+)%.vault%.azure%.net(/keys/.+)$")
    local r = W.kv("PATCH", vault, path, { attributes = { exp = os.time() + 60 } })
    assert.equal(200, r.status, r.body)
    E.control("POST", "clock", { advance = 120 })
    W.reset_tokens()
    normal(w.reg)
  end)
end)
