-- Key Vault authorization on the emulator: access policies vs RBAC data actions, the firewall,
-- and emu.keyvault.access.check_key (through GET /_emulator/keyaccess).
local E = require("support.emulator")
local KV = require("support.keyvault")

local CSEU = "e147488a-f6f5-4113-8e2d-b22465e65bf6"  -- Key Vault Crypto Service Encryption User
local OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603" -- Key Vault Crypto Officer

local function plain(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

describe("emulator Key Vault authorization", function()
  local rg, seed, owner, noaccess, caller_of

  -- The specs move the simulated clock by weeks: start from and leave the seeded state.
  teardown(function() E.reset() end)

  setup(function()
    E.ensure()
    E.reset()
    seed = E.seed()
    owner, noaccess = seed.owner.object_id, seed.noaccess.object_id
    rg = KV.rg(KV.uniq("rg"))
    caller_of = function(p)
      return "appid=" .. p.app_id .. ";oid=" .. p.object_id .. ";iss=https://sts.windows.net/" .. seed.tenant_id .. "/"
    end
  end)

  after_each(function() E.assert_no_internal_errors() end)

  describe("access-policy vaults", function()
    local v

    setup(function()
      v = KV.uniq("kv")
      KV.vault(rg, v)
      assert.equal(200, KV.req("POST", v, "/keys/k/create", { kty = "RSA" }).status)
    end)

    it("refuses a principal without a policy: 403 ForbiddenByPolicy with Azure's text", function()
      local res = KV.req("GET", v, "/keys/k", nil, { who = "noaccess" })
      KV.assert_kv_error(res, 403, "Forbidden", "ForbiddenByPolicy", "^" .. plain("The user, group or application '" ..
        caller_of(seed.noaccess) .. "' does not have keys get permission on key vault '" .. v ..
          ";location=westus'. " ..
        "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287") .. "$")
    end)

    it("needs the operation's own permission", function()
      local path = KV.vault_path(rg, v) .. "/accessPolicies/add"
      E.arm("PUT", path, { properties = { accessPolicies = { { tenantId = seed.tenant_id, objectId = noaccess,
        permissions = { keys = { "get", "wrapKey" } } } } } }, { api_version = KV.API })
      assert.equal(200, KV.req("GET", v, "/keys/k", nil, { who = "noaccess" }).status)
      assert.equal(200, KV.req("POST", v, "/keys/k/wrapkey", { alg = "RSA-OAEP", value = "AQID" },
        { who = "noaccess" }).status)
      local checks = {
        { "GET", "/keys", nil, "list" }, { "POST", "/keys/k/unwrapkey", { alg = "RSA-OAEP", value = "AQID" },
          "unwrapKey" },
        { "POST", "/keys/n/create", { kty = "RSA" }, "create" }, { "DELETE", "/keys/k", nil, "delete" },
        { "PATCH", "/keys/k", { tags = {} }, "update" }, { "POST", "/keys/k/rotate", nil, "rotate" },
        { "GET", "/keys/k/rotationpolicy", nil, "getrotationpolicy" },
        { "PUT", "/keys/k/rotationpolicy", { lifetimeActions = {} }, "setrotationpolicy" },
        { "POST", "/deletedkeys/k/recover", nil, "recover" }, { "DELETE", "/deletedkeys/k", nil, "purge" },
        { "POST", "/keys/k/encrypt", { alg = "RSA-OAEP", value = "AQID" }, "encrypt" },
        { "POST", "/keys/k/backup", nil, "backup" },
      }
      for _, c in ipairs(checks) do
        local res = KV.req(c[1], v, c[2], c[3], { who = "noaccess" })
        local e = KV.assert_kv_error(res, 403, "Forbidden", "ForbiddenByPolicy")
        assert.matches("does not have keys " .. c[4] .. " permission", e.message, 1, true)
      end
      -- the owner ("all") may do everything
      assert.equal(200, KV.req("GET", v, "/keys").status)
    end)

    it("ignores role assignments on an access-policy vault", function()
      local v2 = KV.uniq("kv")
      KV.vault(rg, v2)
      KV.role(KV.vault_path(rg, v2), OFFICER, noaccess)
      KV.assert_kv_error(KV.req("GET", v2, "/keys", nil, { who = "noaccess" }), 403, "Forbidden", "ForbiddenByPolicy")
    end)
  end)

  describe("RBAC vaults", function()
    local v

    setup(function()
      v = KV.uniq("kv")
      KV.vault(rg, v, KV.props({ enableRbacAuthorization = true }))
    end)

    it("refuses Owner (no data actions) with 403 ForbiddenByRbac and Azure's text", function()
      local res = KV.req("POST", v, "/keys/k/create", { kty = "RSA" })
      local e = KV.assert_kv_error(res, 403, "Forbidden", "ForbiddenByRbac")
      assert.equal("Caller is not authorized to perform action on resource.\r\nIf role assignments, deny " ..
        "assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: " ..
        caller_of(seed.owner) .. "\r\nAction: 'Microsoft.KeyVault/vaults/keys/create/action'\r\nResource: '" ..
        (KV.vault_path(rg, v) .. "/keys/k"):lower() .. "'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\n" ..
        "DecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: " .. v .. ";location=westus\r\n", e.message)
    end)

    it("grants data actions by role at vault scope and at key scope", function()
      KV.role(KV.vault_path(rg, v), OFFICER, owner)
      local k = KV.req("POST", v, "/keys/k/create", { kty = "RSA" })
      assert.equal(200, k.status, k.body)
      assert.equal(200, KV.req("POST", v, "/keys/other/create", { kty = "RSA" }).status)
      -- the service identity role at the key's scope: read + wrap + unwrap of that key only
      KV.role(KV.vault_path(rg, v) .. "/keys/k", CSEU, noaccess)
      assert.equal(200, KV.req("GET", v, "/keys/k", nil, { who = "noaccess" }).status)
      local w = KV.req("POST", v, "/keys/k/wrapkey", { alg = "RSA-OAEP-256", value = "AQID" }, { who = "noaccess" })
      assert.equal(200, w.status)
      assert.equal(200, KV.req("POST", v, "/keys/k/unwrapkey", { alg = "RSA-OAEP-256", value = w.json.value },
        { who = "noaccess" }).status)
      KV.assert_kv_error(KV.req("GET", v, "/keys/other", nil, { who = "noaccess" }), 403, "Forbidden",
        "ForbiddenByRbac")
      local e = KV.assert_kv_error(KV.req("POST", v, "/keys/k/encrypt", { alg = "RSA-OAEP", value = "AQID" },
        { who = "noaccess" }), 403, "Forbidden", "ForbiddenByRbac")
      assert.matches("Action: 'Microsoft.KeyVault/vaults/keys/encrypt/action'", e.message, 1, true)
      KV.assert_kv_error(KV.req("GET", v, "/keys", nil, { who = "noaccess" }), 403, "Forbidden", "ForbiddenByRbac")
      -- access policies do not count on an RBAC vault
      E.arm("PUT", KV.vault_path(rg, v) .. "/accessPolicies/add", { properties = { accessPolicies = { {
        tenantId = seed.tenant_id, objectId = noaccess, permissions = { keys = { "all" } } } } } },
        { api_version = KV.API })
      KV.assert_kv_error(KV.req("GET", v, "/keys/other", nil, { who = "noaccess" }), 403, "Forbidden",
        "ForbiddenByRbac")
    end)

    it("lets a Crypto Officer delete, list deleted, recover and purge; a Crypto User may not purge", function()
      -- the owner holds Crypto Officer at the vault (previous test); noaccess gets Crypto User there
      KV.role(KV.vault_path(rg, v), "12338af0-0e69-4776-bea7-57ae8d297424", noaccess)
      assert.equal(200, KV.req("POST", v, "/keys/tmp/create", { kty = "RSA" }).status)
      assert.equal(200, KV.req("DELETE", v, "/keys/tmp").status)
      E.control("POST", "clock", { advance = 2 })
      assert.equal(200, KV.req("GET", v, "/deletedkeys").status)
      assert.equal(200, KV.req("GET", v, "/deletedkeys/tmp", nil, { who = "noaccess" }).status)
      local e = KV.assert_kv_error(KV.req("DELETE", v, "/deletedkeys/tmp", nil, { who = "noaccess" }), 403,
        "Forbidden", "ForbiddenByRbac")
      assert.matches("Action: 'Microsoft.KeyVault/vaults/keys/purge/action'", e.message, 1, true)
      e = KV.assert_kv_error(KV.req("POST", v, "/deletedkeys/tmp/recover", nil, { who = "noaccess" }), 403,
        "Forbidden", "ForbiddenByRbac")
      assert.matches("Action: 'Microsoft.KeyVault/vaults/keys/recover/action'", e.message, 1, true)
      assert.equal(200, KV.req("POST", v, "/deletedkeys/tmp/recover").status)
      assert.equal(200, KV.req("DELETE", v, "/keys/tmp").status)
      E.control("POST", "clock", { advance = 2 })
      assert.equal(204, KV.req("DELETE", v, "/deletedkeys/tmp").status)
    end)
  end)

  describe("the firewall", function()
    it("refuses clients when defaultAction is Deny unless their address is in ipRules", function()
      local v = KV.uniq("kv")
      KV.vault(rg, v, KV.props({ networkAcls = { defaultAction = "Deny", bypass = "AzureServices" } }))
      local res = KV.req("GET", v, "/keys")
      KV.assert_kv_error(res, 403, "Forbidden", "ForbiddenByFirewall", "^" .. plain("Client address is not " ..
        "authorized and caller is not a trusted service.\r\nClient address: 127.0.0.1\r\nCaller: " ..
        caller_of(seed.owner) .. "\r\nVault: " .. v .. ";location=westus") .. "$")
      -- still 401 first without a token
      assert.equal(401, KV.req("GET", v, "/keys", nil, { token = false }).status)
      E.arm("PATCH", KV.vault_path(rg, v), { properties = { networkAcls = { defaultAction = "Deny",
        ipRules = { { value = "127.0.0.0/8" } } } } }, { api_version = KV.API })
      assert.equal(200, KV.req("GET", v, "/keys").status)
      E.arm("PATCH", KV.vault_path(rg, v), { properties = { networkAcls = { defaultAction = "Deny",
        ipRules = { { value = "127.0.0.1" } } } } }, { api_version = KV.API })
      assert.equal(200, KV.req("GET", v, "/keys").status)
      E.arm("PATCH", KV.vault_path(rg, v), { properties = { publicNetworkAccess = "Disabled" } },
        { api_version = KV.API })
      KV.assert_kv_error(KV.req("GET", v, "/keys"), 403, "Forbidden", "ForbiddenByConnection", "^" .. plain(
        "Public network access is disabled and request is not from a trusted service nor via an approved private " ..
        "link.\r\nCaller: " .. caller_of(seed.owner) .. "\r\nVault: " .. v .. ";location=westus") .. "$")
    end)
  end)

  describe("access.check_key (GET /_emulator/keyaccess)", function()
    local v, kid, ver, path

    setup(function()
      v = KV.uniq("kv")
      KV.vault(rg, v)
      path = KV.vault_path(rg, v)
      kid = KV.req("POST", v, "/keys/cmk/create", { kty = "RSA" }).json.key.kid
      ver = kid:match("(%x+)$")
      E.arm("PUT", path .. "/accessPolicies/add", { properties = { accessPolicies = { { tenantId = seed.tenant_id,
        objectId = noaccess, permissions = { keys = { "wrapKey", "get", "unwrapKey" } } } } } },
          { api_version = KV.API })
    end)

    it("says ok for a principal with get + wrapKey + unwrapKey, versioned or not, any case, any cloud", function()
      local r, newest = KV.keyaccess(kid, noaccess)
      assert.is_true(r.ok)
      assert.equal(ver, r.version)
      assert.equal(kid, r.kid)
      assert.equal("cmk", r.key.name)
      assert.equal("RSA", r.key.kty)
      assert.equal(ver, newest.version)
      r = KV.keyaccess(("https://" .. v .. ".VAULT.azure.net/keys/CMK"):upper():gsub("^HTTPS", "https"), noaccess)
      assert.is_true(r.ok)
      assert.equal(ver, r.version)
      r = KV.keyaccess("https://" .. v .. ".vault.azure.cn/keys/cmk/", noaccess)
      assert.is_true(r.ok)
      assert.equal("https://" .. v .. ".vault.azure.cn/keys/cmk/" .. ver, r.kid)
      r = KV.keyaccess("https://" .. v .. ".vault.azure.net:443/keys/cmk/" .. ver:upper(), noaccess)
      assert.is_true(r.ok)
    end)

    it("names each failure", function()
      local r = KV.keyaccess(kid, owner) -- the owner has "all"
      assert.is_true(r.ok)
      r = KV.keyaccess(kid, "00000000-0000-4000-8000-000000000001")
      assert.is_false(r.ok)
      assert.equal("no_access", r.reason)
      assert.is_false(r.can_unwrap)
      assert.matches("does not have keys get permission", r.message, 1, true)
      assert.equal("vault_not_found", KV.keyaccess("https://nosuch" .. os.time() .. ".vault.azure.net/keys/cmk",
        noaccess).reason)
      assert.equal("vault_not_found", KV.keyaccess("https://example.com/keys/cmk", noaccess).reason)
      assert.equal("key_not_found", KV.keyaccess("https://" .. v .. ".vault.azure.net/keys/none", noaccess).reason)
      assert.equal("key_not_found", KV.keyaccess("https://" .. v .. ".vault.azure.net/secrets/cmk", noaccess).reason)
      assert.equal("version_not_found", KV.keyaccess("https://" .. v .. ".vault.azure.net/keys/cmk/" ..
        string.rep("a", 32), noaccess).reason)
      -- EC key
      KV.req("POST", v, "/keys/eck/create", { kty = "EC", crv = "P-256" })
      r = KV.keyaccess("https://" .. v .. ".vault.azure.net/keys/eck", noaccess)
      assert.equal("key_not_rsa", r.reason)
      -- disabled
      KV.req("PATCH", v, "/keys/cmk/" .. ver, { attributes = { enabled = false } })
      r = KV.keyaccess(kid, noaccess)
      assert.equal("key_disabled", r.reason)
      assert.is_false(r.can_unwrap)
      -- expired: ok, flagged
      local now = math.floor(E.control("GET", "clock").json.now)
      KV.req("PATCH", v, "/keys/cmk/" .. ver, { attributes = { enabled = true, exp = now - 5 } })
      r = KV.keyaccess(kid, noaccess)
      assert.is_true(r.ok)
      assert.is_true(r.expired)
      KV.req("PATCH", v, "/keys/cmk/" .. ver, { attributes = { exp = now + 86400 * 365, nbf = now + 3600 } })
      r = KV.keyaccess(kid, noaccess)
      assert.is_true(r.ok)
      assert.is_true(r.not_yet_valid)
      KV.req("PATCH", v, "/keys/cmk/" .. ver, { attributes = { nbf = now - 60 } })
      -- only unwrap left: no_access, but can_unwrap
      E.arm("PUT", path .. "/accessPolicies/remove", { properties = { accessPolicies = { { tenantId = seed.tenant_id,
        objectId = noaccess, permissions = { keys = { "wrapKey" } } } } } }, { api_version = KV.API })
      r = KV.keyaccess(kid, noaccess)
      assert.equal("no_access", r.reason)
      assert.is_true(r.can_unwrap)
      E.arm("PUT", path .. "/accessPolicies/add", { properties = { accessPolicies = { { tenantId = seed.tenant_id,
        objectId = noaccess, permissions = { keys = { "wrapKey" } } } } } }, { api_version = KV.API })
      assert.is_true(KV.keyaccess(kid, noaccess).ok)
    end)

    it("follows the firewall: trusted services pass with bypass AzureServices only", function()
      E.arm("PATCH", path, { properties = { networkAcls = { defaultAction = "Deny", bypass = "AzureServices" } } },
        { api_version = KV.API })
      local r = KV.keyaccess(kid, noaccess, false)
      assert.equal("firewall", r.reason)
      assert.matches("^Client address is not authorized and caller is not a trusted service%.", r.message)
      assert.is_true(KV.keyaccess(kid, noaccess, true).ok)
      E.arm("PATCH", path, { properties = { networkAcls = { defaultAction = "Deny", bypass = "None" } } },
        { api_version = KV.API })
      assert.equal("firewall", KV.keyaccess(kid, noaccess, true).reason)
      E.arm("PATCH", path, { properties = { networkAcls = { defaultAction = "Allow" } } }, { api_version = KV.API })
      assert.is_true(KV.keyaccess(kid, noaccess, false).ok)
      E.arm("PATCH", path, { properties = { publicNetworkAccess = "Disabled" } }, { api_version = KV.API })
      r = KV.keyaccess(kid, noaccess, false)
      assert.equal("firewall", r.reason)
      assert.matches("^Public network access is disabled", r.message)
      assert.is_true(KV.keyaccess(kid, noaccess, true).ok)
      E.arm("PATCH", path, { properties = { publicNetworkAccess = "Enabled" } }, { api_version = KV.API })
      assert.is_true(KV.keyaccess(kid, noaccess, false).ok)
    end)

    it("uses RBAC data actions on an RBAC vault (vault or key scope)", function()
      local rv = KV.uniq("kv")
      KV.vault(rg, rv, KV.props({ enableRbacAuthorization = true }))
      KV.role(KV.vault_path(rg, rv), OFFICER, owner)
      local rkid = KV.req("POST", rv, "/keys/cmk/create", { kty = "RSA" }).json.key.kid
      local r = KV.keyaccess(rkid, noaccess)
      assert.equal("no_access", r.reason)
      assert.matches("^Caller is not authorized to perform action on resource%.", r.message)
      KV.role(KV.vault_path(rg, rv) .. "/keys/cmk", CSEU, noaccess)
      assert.is_true(KV.keyaccess(rkid, noaccess).ok)
      assert.is_true(KV.keyaccess(rkid, owner).ok)
    end)

    it("tracks deletion, vault deletion and the newest version", function()
      local r2 = KV.req("POST", v, "/keys/cmk/rotate")
      assert.equal(200, r2.status)
      local versionless = "https://" .. v .. ".vault.azure.net/keys/cmk"
      local r, newest, versions = KV.keyaccess(versionless, noaccess)
      assert.is_true(r.ok)
      assert.equal(r2.json.key.kid, r.kid)
      assert.equal(r2.json.key.kid, newest.kid)
      assert.equal(2, #versions)
      assert.equal(kid, versions[1].kid)
      assert.equal(r2.json.key.kid, versions[2].kid)
      assert.is_true(versions[2].created >= versions[1].created)
      assert.equal(ver, KV.keyaccess(kid, noaccess).version)
      KV.req("DELETE", v, "/keys/cmk")
      assert.equal("key_deleted", KV.keyaccess(kid, noaccess).reason)
      E.control("POST", "clock", { advance = 2 })
      assert.equal(200, KV.req("POST", v, "/deletedkeys/cmk/recover").status)
      assert.is_true(KV.keyaccess(kid, noaccess).ok)
      E.arm("DELETE", path, nil, { api_version = KV.API })
      assert.equal("vault_deleted", KV.keyaccess(kid, noaccess).reason)
      E.arm("PUT", path, { location = "westus", properties = { tenantId = seed.tenant_id,
        sku = { family = "A", name = "standard" }, createMode = "recover" } }, { api_version = KV.API })
      assert.is_true(KV.keyaccess(kid, noaccess).ok)
    end)

    it("picks up automatic rotation by policy on the simulated clock", function()
      local k = KV.req("POST", v, "/keys/autocmk/create", { kty = "RSA" }).json.key.kid
      KV.req("PUT", v, "/keys/autocmk/rotationpolicy", { lifetimeActions = { { trigger = { timeAfterCreate = "P7D" },
        action = { type = "Rotate" } } }, attributes = { expiryTime = "P28D" } })
      local versionless = "https://" .. v .. ".vault.azure.net/keys/autocmk"
      local _, newest = KV.keyaccess(versionless, noaccess)
      assert.equal(k, newest.kid)
      E.control("POST", "clock", { advance = 7 * 86400 + 10 })
      local r
      r, newest = KV.keyaccess(versionless, noaccess)
      assert.is_true(r.ok)
      assert.are_not.equal(k, newest.kid)
      assert.equal(newest.kid, r.kid)
      assert.is_true(newest.enabled)
    end)
  end)
end)
