-- Conformance sweeps over EVERY registered route (GET /_emulator/routes), so that a route added
-- later is covered by itself: unknown and missing api-versions are refused as Azure does for
-- every ARM resource type and on the Key Vault data plane; malformed JSON, wrong types, odd
-- query strings and oversized bodies never give a 500 and never change state; the second
-- seeded subscription (a vault in another subscription than the registry); the generic
-- resource list's filter grammar over every tracked type.
local E = require("support.emulator")
local W = require("support.cmk_world")
local core = require("azcmk.core")

local function routes()
  return E.control("GET", "routes").json.routes
end

describe("emulator: conformance sweeps", function()
  local seed, sub, w, version, vtok

  setup(function()
    seed = W.fresh()
    sub = seed.subscription_id
    w = W.world()
    version = w.kid:match("/(%x+)$")
    vtok = E.token("https://vault.azure.net")
  end)

  teardown(function()
    E.assert_no_internal_errors()
    E.reset()
  end)

  -- Fills a route pattern with the world's values.
  local function fill(r)
    local p = r.path
    local name = "x"
    if p:find("userAssignedIdentities/{name}", 1, true) then name = "cmk-uai"
    elseif p:find("vaults/{name}", 1, true) or p:find("deletedVaults/{name}", 1, true) then name = w.vault
    elseif p:find("registries/{name}", 1, true) then name = w.reg
    elseif p:find("deployments/{name}", 1, true) then name = "nodeployment"
    elseif p:find("roleAssignments/{name}", 1, true) then name = core.uuid4()
    elseif r.kind == "vault" then name = "cmkkey" end
    local vals = { sub = sub, rg = w.rg, name = name, kind = "add", loc = "westus", key = "cmkkey",
      version = version, ns = "Microsoft.KeyVault", operationId = "1", opid = "x",
      guid = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
      ["*scope"] = "subscriptions/" .. sub .. "/resourceGroups/" .. w.rg,
      ["*prefix"] = W.reg_path(sub, w.rg, w.reg):sub(2), op = "wrapkey", ["*rest"] = "_catalog",
      tenant = seed.tenant_id }
    return (p:gsub("{([^}]+)}", function(k) return assert(vals[k], "no value for {" .. k .. "} in " .. p) end))
  end

  local function base(r)
    if r.kind == "arm" then return "https://management.azure.com", { Authorization = "Bearer " .. E.arm_token() } end
    if r.kind == "vault" then
      return "https://" .. w.vault .. ".vault.azure.net", { Authorization = "Bearer " .. vtok }
    end
    if r.kind == "acr" then return "https://" .. w.reg .. ".azurecr.io", {} end
    if r.kind == "login" then return "https://login.microsoftonline.com", {} end
    if r.kind == "msi" then
      if r.path == "/msi/token" then
        return seed.appservice.identity_endpoint:gsub("/msi/token$", ""),
          { ["X-IDENTITY-HEADER"] = seed.appservice.identity_header }
      end
      return "http://169.254.169.254", { Metadata = "true" }
    end
    return "https://management.azure.com", {}
  end

  local function methods(r)
    local out = {}
    for _, m in ipairs(r.methods) do out[#out + 1] = m end
    return out
  end

  it("every ARM route refuses a missing and an unknown api-version in ARM's envelope", function()
    local n = 0
    for _, r in ipairs(routes()) do
      if r.kind == "arm" and not r.path:find("operation[SR]") then
        assert.truthy(r.type, "ARM route without a resource type (no api-version check): " .. r.path)
        local url, h = base(r)
        for _, m in ipairs(methods(r)) do
          h["Content-Type"] = "application/json"
          local res = assert(E.request({ method = m, url = url .. fill(r) .. "?api-version=1999-01-01",
            headers = h, body = m ~= "GET" and m ~= "HEAD" and m ~= "DELETE" and "{}" or nil }))
          assert.equal(400, res.status, m .. " " .. r.path .. ": " .. tostring(res.body))
          if m ~= "HEAD" then
            local code = res.json.error.code
            assert.truthy(code == "NoRegisteredProviderFound" or code == "InvalidApiVersionParameter",
              m .. " " .. r.path .. ": " .. res.body)
            assert.matches("1999-01-01", res.json.error.message, 1, true)
          end
          res = assert(E.request({ method = m, url = url .. fill(r), headers = h }))
          assert.equal(400, res.status, m .. " " .. r.path .. " without api-version: " .. tostring(res.body))
          if m ~= "HEAD" then assert.equal("MissingApiVersionParameter", res.json.error.code) end
          n = n + 1
        end
      end
    end
    assert.truthy(n > 40, "only " .. n .. " ARM routes")
  end)

  it("every Key Vault data-plane route refuses a missing and an unknown api-version", function()
    local n = 0
    for _, r in ipairs(routes()) do
      if r.kind == "vault" then
        local url, h = base(r)
        for _, m in ipairs(methods(r)) do
          for _, q in ipairs({ "?api-version=1.0", "?api-version=2099-01-01", "" }) do
            local res = assert(E.request({ method = m, url = url .. fill(r) .. q, headers = h,
              body = (m == "POST" or m == "PUT" or m == "PATCH") and "{}" or nil }))
            assert.equal(400, res.status, m .. " " .. r.path .. q .. ": " .. tostring(res.body))
            assert.equal("BadParameter", res.json.error.code)
            if q ~= "" then
              assert.equal("The specified version (" .. q:match("=(.*)") .. ") is not recognized. Consider using " ..
                "the latest supported version (2025-07-01).", res.json.error.message)
            end
          end
          n = n + 1
        end
      end
    end
    assert.truthy(n >= 19, "only " .. n .. " vault routes")
  end)

  -- State the sweep must leave untouched (decoded bodies; `updated` stamps left out, since a
  -- PATCH that names no known field is a valid no-op that still touches them).
  local function strip(v)
    if type(v) ~= "table" then return v end
    local out = {}
    for k, x in pairs(v) do
      if k ~= "updated" then out[k] = strip(x) end
    end
    return out
  end
  local function snapshot()
    local out = {}
    local function keep(label, res, pick)
      out[label] = { res.status, strip(pick(res.json or {})) }
    end
    local all = function(j) return j end
    keep("rg", E.arm("GET", W.rg_path(sub, w.rg), nil, { api_version = W.RG_API }), all)
    keep("uai", E.arm("GET", "/subscriptions/" .. sub .. "/resourceGroups/" .. w.rg ..
      "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/cmk-uai", nil, { api_version = W.MI_API }), all)
    keep("vault", E.arm("GET", W.vault_path(sub, w.rg, w.vault), nil, { api_version = W.KV_API }),
      function(j) return { j.properties and j.properties.accessPolicies, j.properties and j.properties.networkAcls,
        j.tags, j.properties and j.properties.sku } end)
    keep("registry", W.get_registry(sub, w.rg, w.reg),
      function(j) return { j.identity, j.properties and j.properties.encryption, j.sku, j.tags } end)
    keep("key", W.kv("GET", w.vault, "/keys/cmkkey"), all)
    keep("versions", W.kv("GET", w.vault, "/keys/cmkkey/versions"), all)
    keep("policy", W.kv("GET", w.vault, "/keys/cmkkey/rotationpolicy"), all)
    keep("assignments", E.arm("GET", "/subscriptions/" .. sub ..
      "/providers/Microsoft.Authorization/roleAssignments", nil, { api_version = W.AUTH_API }), all)
    keep("deployments", E.arm("GET", W.rg_path(sub, w.rg) .. "/providers/Microsoft.Resources/deployments", nil,
      { api_version = "2025-04-01" }), all)
    return out
  end

  -- The first difference between two snapshots ("" when equal).
  local function diff(a, b, path)
    path = path or ""
    if type(a) ~= "table" or type(b) ~= "table" then
      if a ~= b then return path .. ": " .. tostring(a) .. " -> " .. tostring(b) end
      return ""
    end
    for k, v in pairs(a) do
      local d = diff(v, b[k], path .. "." .. tostring(k))
      if d ~= "" then return d end
    end
    for k, v in pairs(b) do
      if a[k] == nil then return path .. "." .. tostring(k) .. ": nil -> " .. tostring(v) end
    end
    return ""
  end

  -- Routes that take no body (actions): a body is ignored as Azure ignores it.
  local function bodyless(r)
    return r.path:match("/rotate$") or r.path:match("/recover$") or r.path:match("/purge$") or
      r.path:match("/register$")
  end

  -- Bad for every route of the kind: malformed JSON, or each field a route reads has the wrong
  -- type (so a body a route partly ignores is still refused somewhere).
  local GARBAGE = { "{", "[]", '"x"', "5", "null", '{"a":1,}', "\239\187\191{}", string.rep("[", 300) }
  local BAD_BODIES = {
    arm = {
      '{"location":5,"tags":"t","sku":[],"identity":7,"properties":"x","kind":{}}',
      '{"location":"westus","tags":"t","sku":{"name":5},"identity":{"type":[],"userAssignedIdentities":"x"},' ..
        '"properties":{"accessPolicies":"x","tenantId":7,"encryption":[],"networkAcls":5,"template":"x",' ..
        '"parameters":5,"mode":[],"roleDefinitionId":{},"principalId":[],"principalType":5},"name":5,"type":[]}',
      '{"tags":"t","properties":{"encryption":{"status":5,"keyVaultProperties":{"keyIdentifier":[],"identity":{}}},' ..
        '"accessPolicies":[{"tenantId":[],"objectId":5,"permissions":{"keys":"get"}}]},"name":5,"type":[]}',
    },
    vault = {
      '{"kty":5,"key_size":"x","key_ops":"wrapKey","attributes":[],"tags":"t","crv":{},"alg":{},"value":5,' ..
        '"lifetimeActions":"x","key":[]}',
      '{"kty":"RSA","key_size":1e308,"attributes":{"enabled":"yes","nbf":"x","exp":-1e308},"tags":{"a":{}},' ..
        '"lifetimeActions":"x"}',
      '{"alg":"RSA-OAEP","value":"!!!","attributes":[],"lifetimeActions":[{"trigger":5,"action":"x"}]}',
    },
  }

  local ODD_QUERIES = { "&api-version=2099-01-01", "&$filter=%00'", "&maxresults=abc", "&maxresults=-1",
    "&$skiptoken=%FF%FE", "&$top=x&$skipToken=zz", "&" .. string.rep("q", 2000) .. "=1", "&%ZZ=%ZZ" }

  local function api_for(r, url, h)
    if r.kind ~= "arm" then return r.kind == "vault" and "7.4" or nil end
    local res = E.request({ method = "GET", url = url .. fill(r) .. "?api-version=1999-01-01", headers = h })
    local v = res.json and res.json.error and res.json.error.message:match("supported [%w%-]*%s?versions are '([^,']+)")
    return v
  end

  local function envelope_ok(r, res)
    if res.status < 400 or res.status == 405 then return true end
    local j = res.json
    if r.kind == "acr" then return j and j.errors end
    if r.kind == "login" then return j and j.error and j.error_codes end
    if r.kind == "msi" then return j and (j.error or j.message) end
    return j and j.error and j.error.code
  end

  it("bad bodies and odd queries on every route: never a 500, the service's envelope, no state change",
    function()
    local before = snapshot()
    local n = 0
    for _, r in ipairs(routes()) do
      if r.kind ~= "control" then
        local url, h = base(r)
        local api = api_for(r, url, h)
        local path = url .. fill(r)
        local q0 = api and ("?api-version=" .. api) or "?x=1"
        for _, m in ipairs(methods(r)) do
          local hh = {}
          for k, v in pairs(h) do hh[k] = v end
          hh["Content-Type"] = r.kind == "login" and "application/x-www-form-urlencoded" or "application/json"
          if (m == "PUT" or m == "PATCH" or m == "POST") and not bodyless(r) then
            local bodies = {}
            for _, b in ipairs(GARBAGE) do bodies[#bodies + 1] = b end
            for _, b in ipairs(BAD_BODIES[r.kind] or BAD_BODIES.arm) do bodies[#bodies + 1] = b end
            for _, b in ipairs(bodies) do
              local res, err = E.request({ method = m, url = path .. q0, headers = hh, body = b })
              assert.truthy(res, err)
              assert.truthy(res.status < 500, m .. " " .. r.path .. " " .. b:sub(1, 60) .. " -> " .. res.status ..
                " " .. tostring(res.body):sub(1, 300))
              assert.truthy(envelope_ok(r, res), m .. " " .. r.path .. ": " .. tostring(res.body):sub(1, 300))
              n = n + 1
            end
          end
          if m ~= "DELETE" and not bodyless(r) then
            for _, q in ipairs(ODD_QUERIES) do
              local res, err = E.request({ method = m, url = path .. q0 .. q, headers = hh,
                body = (m == "PUT" or m == "PATCH" or m == "POST") and "{" or nil })
              assert.truthy(res, err)
              assert.truthy(res.status < 500, m .. " " .. r.path .. q .. " -> " .. res.status .. " " ..
                tostring(res.body):sub(1, 300))
              if m ~= "HEAD" then assert.truthy(envelope_ok(r, res), m .. " " .. r.path .. q .. ": " .. res.body) end
              n = n + 1
            end
          end
        end
      end
    end
    assert.truthy(n > 500, "only " .. n .. " requests")
    assert.equal("", diff(before, snapshot()))
    E.assert_no_internal_errors()
  end)

  -- PUT/POST routes whose empty object is a valid request (every field optional).
  local function empty_ok(r, m)
    return (m == "PUT" and r.path:match("/rotationpolicy$")) or r.path:match("/operationStatuses/")
  end

  it("an empty object (required fields missing) on every PUT and POST route: 4xx, no state change", function()
    local before = snapshot()
    local n = 0
    for _, r in ipairs(routes()) do
      if r.kind ~= "control" and not bodyless(r) then
        local url, h = base(r)
        local api = api_for(r, url, h)
        for _, m in ipairs(methods(r)) do
          if (m == "PUT" or m == "POST") and not empty_ok(r, m) then
            local hh = { ["Content-Type"] = r.kind == "login" and "application/x-www-form-urlencoded" or
              "application/json" }
            for k, v in pairs(h) do hh[k] = v end
            local res = assert(E.request({ method = m, url = url .. fill(r) .. (api and ("?api-version=" .. api) or ""),
              headers = hh, body = "{}" }))
            assert.truthy(res.status >= 400 and res.status < 500, m .. " " .. r.path .. " {} -> " .. res.status ..
              " " .. tostring(res.body):sub(1, 300))
            assert.truthy(envelope_ok(r, res), m .. " " .. r.path .. ": " .. tostring(res.body):sub(1, 300))
            n = n + 1
          end
        end
      end
    end
    assert.truthy(n > 20, "only " .. n .. " routes")
    assert.equal("", diff(before, snapshot()))
  end)

  it("oversized bodies get 413 in each service's envelope, and nothing changes", function()
    local before = snapshot()
    local big = '{"location":"westus","tags":{"a":"' .. string.rep("x", 5 * 1024 * 1024) .. '"}}'
    local cases = {
      { "https://management.azure.com" .. W.reg_path(sub, w.rg, w.reg) .. "?api-version=" .. W.ACR_API, "PATCH",
        { Authorization = "Bearer " .. E.arm_token() }, function(j) return j.error.code end },
      { "https://management.azure.com" .. W.vault_path(sub, w.rg, w.vault) .. "?api-version=" .. W.KV_API, "PUT",
        { Authorization = "Bearer " .. E.arm_token() }, function(j) return j.error.code end },
      { "https://" .. w.vault .. ".vault.azure.net/keys/cmkkey/create?api-version=7.4", "POST",
        { Authorization = "Bearer " .. vtok }, function(j) return j.error.code end },
      { "https://login.microsoftonline.com/" .. seed.tenant_id .. "/oauth2/v2.0/token", "POST", {},
        function(j) return j.error end },
    }
    for _, c in ipairs(cases) do
      c[3]["Content-Type"] = "application/json"
      local res = assert(E.request({ method = c[2], url = c[1], headers = c[3], body = big }))
      assert.equal(413, res.status, c[1] .. ": " .. tostring(res.body):sub(1, 200))
      assert.truthy(res.json and select(2, pcall(c[4], res.json)), c[1] .. ": " .. tostring(res.body):sub(1, 200))
    end
    -- the registry data plane takes blob layers above ARM's 4 MiB: an anonymous upload meets the challenge
    local res = assert(E.request({ method = "POST", url = "https://" .. w.reg .. ".azurecr.io/v2/x/blobs/uploads/",
      headers = { ["Content-Type"] = "application/octet-stream" }, body = big }))
    assert.equal(401, res.status)
    assert.equal("UNAUTHORIZED", res.json.errors[1].code)
    assert.equal("", diff(before, snapshot()))
  end)
end)

describe("emulator: the second subscription", function()
  local seed

  setup(function()
    seed = W.fresh()
    E.control("POST", "keyvault", { delete_seconds = 0 })
  end)

  teardown(function()
    E.assert_no_internal_errors()
    E.reset()
  end)

  it("is seeded in the same tenant, owned by the owner, invisible to the no-access principal", function()
    assert.truthy(seed.subscription2_id)
    assert.are_not.equal(seed.subscription_id, seed.subscription2_id)
    local r = E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01" })
    assert.equal(200, r.status)
    assert.equal(2, #r.json.value)
    assert.equal(seed.subscription_id, r.json.value[1].subscriptionId)
    assert.equal(seed.subscription2_id, r.json.value[2].subscriptionId)
    assert.equal(seed.tenant_id, r.json.value[2].tenantId)
    r = E.arm("GET", "/subscriptions/" .. seed.subscription2_id, nil, { api_version = "2022-12-01" })
    assert.equal(200, r.status)
    assert.equal(seed.subscription2_name, r.json.displayName)
    local none = E.arm_token("noaccess")
    r = E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01", token = none })
    assert.equal(0, #r.json.value)
    r = E.arm("PUT", W.rg_path(seed.subscription2_id, "nope"), { location = "westus" },
      { api_version = W.RG_API, token = none })
    E.assert_arm_error(r, 403, "AuthorizationFailed")
  end)

  it("a registry uses a key of a vault in the other subscription (access policy), and loses it on revoke", function()
    local w = W.world({ vault_sub = seed.subscription2_id })
    local r = W.get_registry(w.sub, w.rg, w.reg)
    assert.equal(200, r.status)
    assert.equal("enabled", r.json.properties.encryption.status)
    assert.equal(w.kid, r.json.properties.encryption.keyVaultProperties.versionedKeyIdentifier)
    assert.equal(401, W.v2(w.reg).status)
    W.policy(w.vault_sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
    r = W.v2(w.reg)
    assert.equal(403, r.status, r.body)
    W.policy(w.vault_sub, w.rg, w.vault, "add", w.uai.properties.principalId)
    assert.equal(401, W.v2(w.reg).status)
    -- the generic list of the second subscription shows the vault, the first one does not
    local l = E.arm("GET", "/subscriptions/" .. w.vault_sub .. "/resources?$filter=" ..
      E.urlencode("resourceType eq 'Microsoft.KeyVault/vaults' and name eq '" .. w.vault .. "'"), nil,
      { api_version = "2015-11-01" })
    assert.equal(1, #l.json.value)
    l = E.arm("GET", "/subscriptions/" .. w.sub .. "/resources?$filter=" ..
      E.urlencode("resourceType eq 'Microsoft.KeyVault/vaults' and name eq '" .. w.vault .. "'"), nil,
      { api_version = "2015-11-01" })
    assert.equal(0, #l.json.value)
  end)

  it("a registry uses a key of an RBAC vault in the other subscription (role at vault scope)", function()
    local w = W.world({ vault_sub = seed.subscription2_id, rbac = true })
    assert.equal(401, W.v2(w.reg).status)
    local d = E.arm("DELETE", w.assignment, nil, { api_version = W.AUTH_API })
    assert.equal(200, d.status)
    assert.equal(403, W.v2(w.reg).status)
  end)

  it("a registry create is refused when its identity cannot reach the other subscription's key", function()
    local w = W.world({ vault_sub = seed.subscription2_id, grant = false, registry = false })
    local r = E.arm("PUT", W.reg_path(w.sub, w.rg, W.uniq("xsubreg")), W.cmk_body(w.uai, w.kid),
      { api_version = W.ACR_API })
    local err = E.assert_arm_error(r, 400, "KeyVaultAccessFailed")
    assert.matches("Failed to access KeyId '" .. w.kid .. "'", err.message, 1, true)
  end)
end)

describe("emulator: resources?$filter over every tracked type", function()
  local seed, w

  setup(function()
    seed = W.fresh()
    w = W.world()
  end)

  teardown(function()
    E.assert_no_internal_errors()
    E.reset()
  end)

  local function list(filter, api)
    local r = E.arm("GET", "/subscriptions/" .. seed.subscription_id .. "/resources?$filter=" ..
      E.urlencode(filter), nil, { api_version = api or "2021-04-01" })
    assert.equal(200, r.status, r.body)
    return r.json.value
  end

  it("finds vaults, registries and identities by type, by name and by both", function()
    local cases = {
      { "Microsoft.KeyVault/vaults", w.vault },
      { "Microsoft.ContainerRegistry/registries", w.reg },
      { "Microsoft.ManagedIdentity/userAssignedIdentities", "cmk-uai" },
    }
    for _, c in ipairs(cases) do
      local v = list("resourceType eq '" .. c[1] .. "'")
      assert.equal(1, #v, c[1])
      assert.equal(c[2], v[1].name)
      assert.equal(c[1], v[1].type)
      assert.equal("westus", v[1].location)
      v = list("resourceType eq '" .. c[1] .. "' and name eq '" .. c[2] .. "'", "2015-11-01")
      assert.equal(1, #v)
      -- keywords and values case-insensitively, extra blanks
      v = list("  ResourceType EQ '" .. c[1]:upper() .. "'   AND   Name eq '" .. c[2]:upper() .. "' ")
      assert.equal(1, #v)
      v = list("name eq '" .. c[2] .. "'")
      assert.equal(1, #v)
      v = list("resourceType eq '" .. c[1] .. "' and name eq 'nothing'")
      assert.equal(0, #v)
    end
    -- the registry's identity shows in PascalCase in the generic list (the GET says userAssigned)
    local v = list("resourceType eq 'Microsoft.ContainerRegistry/registries'")
    assert.equal("UserAssigned", v[1].identity.type)
    assert.equal(3, #list(""))
  end)

  it("reads OData quotes ('' inside a value) and refuses broken grammar with InvalidFilterInQueryString", function()
    assert.equal(0, #list("name eq 'it''s'"))
    for _, f in ipairs({ "resourceType eq", "name eq 'x' and", "name ne 'x'", "name eq x", "foo eq 'x'",
      "name eq 'x' or name eq 'y'", "name eq 'unterminated" }) do
      local r = E.arm("GET", "/subscriptions/" .. seed.subscription_id .. "/resources?$filter=" ..
        E.urlencode(f), nil, { api_version = "2021-04-01" })
      E.assert_arm_error(r, 400, "InvalidFilterInQueryString")
    end
  end)
end)
