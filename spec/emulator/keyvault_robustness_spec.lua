-- "Never a 500 for bad input" over the Key Vault routes (management and data plane): every
-- answer is a 2xx/4xx in the service's envelope and the internal-error counter stays at 0.
local E = require("support.emulator")
local KV = require("support.keyvault")

describe("Key Vault robustness sweep", function()
  local rg, v, kid

  -- The specs move the simulated clock by weeks: start from and leave the seeded state.
  teardown(function() E.reset() end)

  setup(function()
    E.ensure()
    E.reset()
    rg = KV.rg(KV.uniq("rg"))
    v = KV.uniq("kv")
    KV.vault(rg, v)
    kid = KV.req("POST", v, "/keys/k/create", { kty = "RSA" }).json.key.kid
  end)

  after_each(function() E.assert_no_internal_errors() end)

  local BODIES = { "", "null", "{}", "[]", "[{}]", "0", "-1e999", '"x"', "{", '{"a":', "\0\1\2", "true",
    string.rep("[", 200), '{"' .. string.rep("k", 5000) .. '":1}',
    '{"location":"westus","properties":null}', '{"location":"westus","properties":[]}',
    '{"location":"westus","properties":{"tenantId":5,"sku":"x","accessPolicies":{}}}',
    '{"location":"westus","properties":{"tenantId":null,"sku":{"family":null,"name":[]},' ..
      '"accessPolicies":[1,"x",null]}}',
    '{"location":"westus","properties":{"accessPolicies":[{"tenantId":"x","objectId":[],"permissions":{"keys":[1]}}]}}',
    '{"location":"westus","properties":{"networkAcls":{"ipRules":[{"value":[]},5],"virtualNetworkRules":[{}]}}}',
    '{"location":"westus","properties":{"softDeleteRetentionInDays":"7","enablePurgeProtection":"yes",' ..
      '"createMode":5,"publicNetworkAccess":[]}}',
    '{"properties":{"accessPolicies":null}}', '{"properties":{"accessPolicies":[{"permissions":null}]}}',
    '{"name":5,"type":null}', '{"name":"abc","type":5}',
    '{"kty":null}', '{"kty":"RSA","key_size":1e400}', '{"kty":"RSA","key_size":-1}', '{"kty":"EC","crv":5}',
    '{"kty":"RSA","key_ops":[null,{}]}', '{"kty":"RSA","attributes":{"exp":-5,"nbf":1e20}}',
    '{"kty":"RSA","tags":{"a":null}}', '{"kty":"RSA","tags":[1]}', '{"key":{"kty":"RSA","n":5}}',
    '{"key":{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}}', '{"key":[]}',
    '{"alg":null,"value":null}', '{"alg":"RSA-OAEP","value":5}', '{"alg":"RSA-OAEP","value":""}',
    '{"alg":["RSA-OAEP"],"value":"AQID"}', '{"alg":"RSA-OAEP","value":"!!!!"}',
    '{"lifetimeActions":[null,5,"x"]}', '{"lifetimeActions":[{"trigger":null,"action":null}]}',
    '{"lifetimeActions":[{"trigger":{"timeAfterCreate":5},"action":{"type":5}}]}',
    '{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P"},"action":{"type":"Rotate"}}]}',
    '{"lifetimeActions":[{"trigger":{"timeAfterCreate":"PT"},"action":{"type":"Rotate"}}]}',
    '{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P99999999999999999999Y"},"action":{"type":"Rotate"}}]}',
    '{"attributes":{"expiryTime":5}}', '{"attributes":[]}', '{"value":5}', '{"value":"AAAA"}',
    '{"attributes":{"enabled":null,"exp":null,"nbf":null},"key_ops":null,"tags":null}',
  }

  local function check(res, what)
    assert.truthy(res, what)
    -- 501: sign/verify are not implemented by the emulator
    assert.truthy(res.status < 500 or res.status == 501,
      what .. " -> " .. res.status .. " " .. tostring(res.body):sub(1, 300))
    if res.status >= 400 and res.status ~= 405 then
      assert.truthy(res.json and res.json.error and res.json.error.code, what .. ": no error envelope: " ..
        tostring(res.body):sub(1, 300))
    end
  end

  it("ARM routes with odd bodies", function()
    local tok = E.arm_token()
    local S = "/subscriptions/" .. KV.sub()
    local routes = {
      { "PUT", KV.vault_path(rg, KV.uniq("kv")) }, { "PUT", KV.vault_path(rg, v) }, { "PATCH", KV.vault_path(rg, v) },
      { "PUT", KV.vault_path(rg, v) .. "/accessPolicies/add" },
      { "PUT", KV.vault_path(rg, v) .. "/accessPolicies/remove" },
      { "POST", S .. "/providers/Microsoft.KeyVault/checkNameAvailability" },
      { "POST", S .. "/providers/Microsoft.KeyVault/locations/westus/deletedVaults/" .. v .. "/purge" },
    }
    for _, r in ipairs(routes) do
      for _, b in ipairs(BODIES) do
        local res = E.request({ method = r[1], url = "https://management.azure.com" .. r[2] .. "?api-version=" ..
          KV.API, body = b, headers = { Authorization = "Bearer " .. tok, ["Content-Type"] = "application/json" } })
        check(res, r[1] .. " " .. r[2] .. " " .. b:sub(1, 60))
      end
    end
    -- the vault is still usable
    assert.equal(200, E.arm("GET", KV.vault_path(rg, v), nil, { api_version = KV.API }).status)
  end)

  it("data-plane routes with odd bodies, names and queries", function()
    local ver = kid:match("(%x+)$")
    local routes = {
      { "POST", "/keys/k2/create" }, { "PUT", "/keys/k3" }, { "PATCH", "/keys/k" }, { "PATCH", "/keys/k/" .. ver },
      { "POST", "/keys/k/wrapkey" }, { "POST", "/keys/k/" .. ver .. "/unwrapkey" }, { "POST", "/keys/k/encrypt" },
      { "POST", "/keys/k/decrypt" }, { "POST", "/keys/k/sign" }, { "PUT", "/keys/k/rotationpolicy" },
      { "POST", "/keys/restore" }, { "POST", "/deletedkeys/k/recover" }, { "POST", "/keys/k/nosuchop" },
    }
    for _, r in ipairs(routes) do
      for _, b in ipairs(BODIES) do
        local res = KV.req(r[1], v, r[2], b, { headers = { ["Content-Type"] = "application/json" } })
        check(res, r[1] .. " " .. r[2] .. " " .. b:sub(1, 60))
      end
    end
    for _, q in ipairs({ "/keys?maxresults=1e400", "/keys?maxresults=-1", "/keys?maxresults=&$skiptoken=",
      "/keys?$skiptoken=" .. E.urlencode("eyJOZXh0TWFya2VyIjo1fQ"), "/keys?$skiptoken=%00%01",
      "/keys/k/versions?maxresults=abc", "/deletedkeys?maxresults=0", "/keys/%20", "/keys/" .. string.rep("x", 300),
      "/keys/k/" .. string.rep("z", 32), "/keys/k/..", "/secrets/s", "/keys/k/rotationpolicy/extra" }) do
      check(KV.req("GET", v, q), "GET " .. q)
    end
    for _, m in ipairs({ "DELETE", "PUT", "PATCH" }) do
      check(KV.req(m, v, "/keys"), m .. " /keys")
    end
    check(KV.req("GET", v, "/keys", nil, { api_version = "7.4&api-version=7.5" }), "two api-versions")
    check(KV.req("GET", v, "/keys", nil, { token = "not.a.token" }), "bad token")
    check(KV.req("GET", v, "/keys", nil, { headers = { Authorization = "Basic abc" }, token = false }), "basic")
    -- the key still works
    assert.equal(200, KV.req("GET", v, "/keys/k").status)
  end)
end)
