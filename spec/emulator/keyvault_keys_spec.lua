-- Key Vault data plane (keys) on the emulator, over real HTTPS: challenge, api-version, keys,
-- versions, paging, attributes, real RSA crypto, soft delete / recover / purge, rotation.
local E = require("support.emulator")
local KV = require("support.keyvault")
local core = require("azcmk.core")
local cjson = require("cjson.safe")

local function b64(s) return core.b64url_encode(s) end

local NOT_FOUND = "A key with (name/id) %s was not found in this key vault. If you recently deleted this key you " ..
  "may be able to recover it using the correct recovery command. For help resolving this issue, please see " ..
  "https://go.microsoft.com/fwlink/?linkid=2125182"

local function plain(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

describe("emulator Key Vault keys", function()
  local rg, vault, seed

  -- The specs move the simulated clock by weeks: start from and leave the seeded state.
  teardown(function() E.reset() end)

  setup(function()
    seed = E.fresh()
    rg = KV.rg(KV.uniq("rg"))
    vault = KV.uniq("kv")
    KV.vault(rg, vault)
  end)

  after_each(function() E.assert_no_internal_errors() end)

  describe("the request preamble", function()
    it("challenges a request without a token (401, exact WWW-Authenticate, AKV10000)", function()
      local res = KV.req("GET", vault, "/keys", nil, { token = false })
      KV.assert_kv_error(res, 401, "Unauthorized", nil, "^AKV10000: Request is missing a Bearer or PoP token%.$")
      -- Azure's 2023 answers name login.microsoftonline.com (older ones login.windows.net)
      assert.equal('Bearer authorization="https://login.microsoftonline.com/' .. seed.tenant_id ..
        '", resource="https://vault.azure.net"', res.headers["www-authenticate"])
      assert.is_string(res.headers["x-ms-keyvault-region"])
      assert.is_string(res.headers["x-ms-keyvault-service-version"])
      -- the SDK's first try: POST without a body
      res = KV.req("POST", vault, "/keys/k/create", nil, { token = false })
      assert.equal(401, res.status)
    end)

    it("refuses a token for another audience", function()
      local res = KV.req("GET", vault, "/keys", nil, { token = E.arm_token() })
      local e = KV.assert_kv_error(res, 401, "Unauthorized")
      assert.matches("^AKV10022: Invalid audience", e.message)
    end)

    it("needs a known api-version", function()
      KV.assert_kv_error(KV.req("GET", vault, "/keys", nil, { api_version = false }), 400, "BadParameter")
      KV.assert_kv_error(KV.req("GET", vault, "/keys", nil, { api_version = "7.9" }), 400, "BadParameter",
        nil, "^The specified version %(7%.9%) is not recognized%. Consider using the latest supported version " ..
        "%(2025%-07%-01%)%.$")
      for _, v in ipairs({ "7.0", "7.3", "7.4", "7.4-preview.1", "7.5", "7.5-preview.1", "7.6", "2025-07-01" }) do
        assert.equal(200, KV.req("GET", vault, "/keys", nil, { api_version = v }).status)
      end
    end)

    it("answers on the other clouds' suffixes with their own audience", function()
      local tr = assert(E.request({ method = "POST",
        url = "https://login.chinacloudapi.cn/" .. seed.tenant_id .. "/oauth2/v2.0/token",
        form = { grant_type = "client_credentials", client_id = seed.owner.app_id,
          client_secret = seed.owner.client_secret, scope = "https://vault.azure.cn/.default" } }))
      assert.equal(200, tr.status, tr.body)
      local cn = tr.json.access_token
      local r = KV.req("POST", vault, "/keys/cn/create", { kty = "RSA" },
        { host = vault .. ".vault.azure.cn", token = cn })
      assert.equal(200, r.status, r.body)
      assert.matches("^https://" .. vault .. "%.vault%.azure%.cn/keys/cn/%x+$", r.json.key.kid)
      local res = KV.req("GET", vault, "/keys/cn", nil, { host = vault .. ".vault.azure.cn" })
      KV.assert_kv_error(res, 401, "Unauthorized", nil, "^AKV10022")
      assert.equal('Bearer authorization="https://login.chinacloudapi.cn/' .. seed.tenant_id ..
        '", resource="https://vault.azure.cn"', res.headers["www-authenticate"])
    end)

    it("refuses an oversized body with 413 in Key Vault's envelope", function()
      local res = KV.req("POST", vault, "/keys/big/create", '{"kty":"RSA","tags":{"a":"' ..
        string.rep("x", 4 * 1024 * 1024 + 10) .. '"}}', { headers = { ["Content-Type"] = "application/json" } })
      assert.equal(413, res.status)
      assert.is_table(res.json.error)
      assert.is_string(res.json.error.code)
    end)

    it("answers 404 VaultNotFound for a vault that does not exist", function()
      KV.assert_kv_error(KV.req("GET", "nosuchvault" .. os.time(), "/keys"), 404, "VaultNotFound")
    end)
  end)

  describe("create and read", function()
    it("creates an RSA key with Azure's KeyBundle shape", function()
      local res = KV.req("POST", vault, "/keys/shape/create", { kty = "RSA", attributes = { enabled = true } })
      assert.equal(200, res.status, res.body)
      local key, a = res.json.key, res.json.attributes
      assert.matches("^https://" .. vault .. "%.vault%.azure%.net/keys/shape/%x+$", key.kid)
      assert.equal(32, #key.kid:match("/(%x+)$"))
      assert.equal("RSA", key.kty)
      assert.same({ "encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey" }, key.key_ops)
      assert.equal("AQAB", key.e)
      assert.equal(256, #core.b64url_decode(key.n))
      assert.is_nil(key.d)
      assert.is_true(a.enabled)
      assert.equal(math.floor(a.created), a.created)
      assert.is_true(a.created > 1700000000)
      assert.equal(a.created, a.updated)
      assert.equal("Recoverable+Purgeable", a.recoveryLevel)
      assert.equal(90, a.recoverableDays)
      assert.is_nil(res.json.tags)
    end)

    it("takes RSA keys from the pre-generated pool in DIR/keypool, each file once", function()
      local dir = E.own_dir() or os.getenv("AZCMK_EMULATOR_DIR")
      local pool = dir .. "/keypool/2048"
      -- the generator fills the pool in the background: wait (no timing asserted) for 3 spare keys
      for _ = 1, 300 do
        local l = io.popen("ls " .. pool .. " 2>/dev/null | grep -c '^[0-9]*\\.pem$'")
        local n = tonumber(l:read("*a"))
        l:close()
        if n and n >= 3 then break end
        os.execute("sleep 0.1")
      end
      local spare = {}
      local p = io.popen("ls " .. pool .. " 2>/dev/null")
      for f in p:lines() do
        if f:match("^%d+%.pem$") then
          local fh = io.open(pool .. "/" .. f, "rb")
          local pem = fh and fh:read("a")
          if fh then fh:close() end
          local pk = pem and core.pkey_from_pem(pem)
          if pk then spare[pk:jwk(false).n] = f pk:close() end
        end
      end
      p:close()
      local count = 0
      for _ in pairs(spare) do count = count + 1 end
      if count < 3 then pending("the key pool has " .. count .. " spare keys yet") return end
      -- claims go in the generator's order and the files present are the next ones
      local seen = {}
      for i = 1, 3 do
        local res = KV.req("POST", vault, "/keys/pooled" .. i .. "/create", { kty = "RSA" })
        assert.equal(200, res.status, res.body)
        local n = res.json.key.n
        assert.is_string(spare[n], "key " .. i .. " did not come from the pool")
        assert.is_nil(seen[n])
        seen[n] = true
        assert.is_nil(io.open(pool .. "/" .. spare[n]), "claimed file still there: " .. spare[n])
      end
    end)

    it("makes 3072 and 4096-bit keys, HSM keys only in premium vaults, EC keys with the curve's sizes", function()
      local r = KV.req("POST", vault, "/keys/big/create", { kty = "RSA", key_size = 3072 })
      assert.equal(384, #core.b64url_decode(r.json.key.n))
      r = KV.req("POST", vault, "/keys/bigger/create", { kty = "RSA", key_size = 4096, public_exponent = 65537 })
      assert.equal(512, #core.b64url_decode(r.json.key.n))
      KV.assert_kv_error(KV.req("POST", vault, "/keys/hsm/create", { kty = "RSA-HSM" }), 400, "BadParameter", nil,
        "^Hardware key operation not allowed on standard vault$")
      KV.assert_kv_error(KV.req("POST", vault, "/keys/sym/create", { kty = "oct" }), 400, "BadParameter",
        "KeyTypeNotSupported", "^Invalid kty value: oct$")
      local prem = KV.uniq("kv")
      KV.vault(rg, prem, KV.props({ sku = { family = "A", name = "premium" } }))
      r = KV.req("POST", prem, "/keys/hsm/create", { kty = "RSA-HSM" })
      assert.equal(200, r.status, r.body)
      assert.equal("RSA-HSM", r.json.key.kty)
      for crv, len in pairs({ ["P-256"] = 32, ["P-384"] = 48, ["P-521"] = 66, ["P-256K"] = 32 }) do
        r = KV.req("POST", vault, "/keys/ec" .. len .. crv:gsub("%-", "") .. "/create", { kty = "EC", crv = crv })
        assert.equal(200, r.status, r.body)
        assert.equal("EC", r.json.key.kty)
        assert.equal(crv, r.json.key.crv)
        assert.equal(len, #core.b64url_decode(r.json.key.x))
        assert.equal(len, #core.b64url_decode(r.json.key.y))
        assert.is_nil(r.json.key.n)
        assert.same({ "sign", "verify" }, r.json.key.key_ops)
      end
      r = KV.req("POST", prem, "/keys/echsm/create", { kty = "EC-HSM" })
      assert.equal("P-256", r.json.key.crv)
    end)

    it("validates the create body", function()
      local cases = {
        {}, { kty = "DSA" }, { kty = 5 }, { kty = "oct" }, { kty = "RSA", key_size = 1024 },
        { kty = "RSA", key_size = "2048" }, { kty = "RSA", public_exponent = 3 }, { kty = "EC", crv = "P-999" },
        { kty = "RSA", crv = "P-256" }, { kty = "EC", key_size = 2048 }, { kty = "RSA", key_ops = { "fly" } },
        { kty = "RSA", key_ops = "wrapKey" }, { kty = "RSA", attributes = { enabled = "yes" } },
        { kty = "RSA", attributes = { exp = "tomorrow" } }, { kty = "RSA", attributes = { nbf = 200, exp = 100 } },
        { kty = "RSA", attributes = "x" }, { kty = "RSA", tags = { a = 1 } }, { kty = "RSA", tags = "x" },
        { kty = "RSA", tags = { [string.rep("t", 257)] = "v" } },
      }
      local many = {}
      for i = 1, 16 do many["t" .. i] = "v" end
      cases[#cases + 1] = { kty = "RSA", tags = many }
      for _, body in ipairs(cases) do
        KV.assert_kv_error(KV.req("POST", vault, "/keys/bad/create", body), 400, "BadParameter")
      end
      many.t16 = nil
      assert.equal(200, KV.req("POST", vault, "/keys/tags15/create", { kty = "RSA", tags = many }).status)
      for _, raw in ipairs({ "{not json", "[1,2]", "" }) do
        local res = KV.req("POST", vault, "/keys/bad/create", raw,
          { headers = { ["Content-Type"] = "application/json" } })
        KV.assert_kv_error(res, 400, "BadParameter")
      end
    end)

    it("validates key names", function()
      for _, n in ipairs({ "a_b", "a.b", string.rep("k", 128) }) do
        KV.assert_kv_error(KV.req("POST", vault, "/keys/" .. n .. "/create", { kty = "RSA" }), 400, "BadParameter",
          nil, "^The request URI contains an invalid name: ")
      end
      assert.equal(200, KV.req("POST", vault, "/keys/" .. string.rep("k", 127) .. "/create", { kty = "RSA" }).status)
      assert.equal(200, KV.req("POST", vault, "/keys/0-Key-9/create", { kty = "RSA" }).status)
    end)

    it("creates a new version on an existing name; gets latest and by version", function()
      local v1 = KV.req("POST", vault, "/keys/ver/create", { kty = "RSA" }).json.key.kid
      local v2 = KV.req("POST", vault, "/keys/ver/create", { kty = "RSA", tags = { gen = "2" } }).json.key.kid
      assert.are_not.equal(v1, v2)
      assert.equal(v2, KV.req("GET", vault, "/keys/ver").json.key.kid)
      local slash = KV.req("GET", vault, "/keys/ver/")
      assert.equal(v2, slash.json.key.kid)
      assert.same({ gen = "2" }, slash.json.tags)
      local by = KV.req("GET", vault, "/keys/ver/" .. v1:match("(%x+)$"))
      assert.equal(v1, by.json.key.kid)
      assert.equal(v1, KV.req("GET", vault, "/keys/VER/" .. v1:match("(%x+)$"):upper()).json.key.kid)
      KV.assert_kv_error(KV.req("GET", vault, "/keys/nope"), 404, "KeyNotFound", nil,
        "^" .. plain(NOT_FOUND:format("nope")) .. "$")
      KV.assert_kv_error(KV.req("GET", vault, "/keys/ver/" .. string.rep("0", 32)), 404, "KeyNotFound", nil,
        "^" .. plain(NOT_FOUND:format("ver/" .. string.rep("0", 32))) .. "$")
    end)

    it("lists keys and versions in pages of maxresults with an opaque $skiptoken nextLink", function()
      local pv = KV.uniq("kv")
      KV.vault(rg, pv)
      for i = 1, 5 do KV.req("POST", pv, "/keys/p" .. i .. "/create", { kty = "RSA" }) end
      local seen, pages = {}, 0
      local res = KV.req("GET", pv, "/keys?maxresults=2")
      while true do
        assert.equal(200, res.status, res.body)
        pages = pages + 1
        assert.is_true(#res.json.value <= 2)
        for _, it in ipairs(res.json.value) do
          assert.matches("^https://" .. pv .. "%.vault%.azure%.net/keys/p%d$", it.kid)
          assert.is_true(it.attributes.enabled)
          seen[#seen + 1] = it.kid:match("(p%d)$")
        end
        if res.json.nextLink == cjson.null or res.json.nextLink == nil then break end
        assert.matches("%$skiptoken=", res.json.nextLink)
        assert.matches("maxresults=2", res.json.nextLink)
        res = assert(E.request({ url = res.json.nextLink, headers = { Authorization = "Bearer " .. KV.token() } }))
      end
      assert.equal(3, pages)
      assert.same({ "p1", "p2", "p3", "p4", "p5" }, seen)
      for _ = 1, 2 do KV.req("POST", pv, "/keys/p1/create", { kty = "RSA" }) end
      local vres = KV.req("GET", pv, "/keys/p1/versions?maxresults=2")
      assert.equal(2, #vres.json.value)
      assert.matches("/keys/p1/%x+$", vres.json.value[1].kid)
      local rest = assert(E.request({ url = vres.json.nextLink,
        headers = { Authorization = "Bearer " .. KV.token() } }))
      assert.equal(1, #rest.json.value)
      for _, m in ipairs({ "0", "26", "x" }) do
        KV.assert_kv_error(KV.req("GET", pv, "/keys?maxresults=" .. m), 400, "BadParameter")
      end
      KV.assert_kv_error(KV.req("GET", pv, "/keys?$skiptoken=garbage"), 400, "BadParameter")
    end)
  end)

  describe("attributes and real crypto", function()
    local kid, pub

    setup(function()
      local r = KV.req("POST", vault, "/keys/crypto/create", { kty = "RSA" })
      kid = r.json.key.kid
      pub = assert(core.pkey_from_jwk({ kty = "RSA", n = r.json.key.n, e = r.json.key.e }))
    end)

    it("unwraps and decrypts what was encrypted locally with the public JWK (every algorithm)", function()
      local ver = kid:match("(%x+)$")
      for _, alg in ipairs({ "RSA-OAEP", "RSA-OAEP-256", "RSA1_5" }) do
        local secret = core.random_bytes(32)
        local ct = pub:encrypt(alg, secret)
        local res = KV.req("POST", vault, "/keys/crypto/" .. ver .. "/unwrapkey", { alg = alg, value = b64(ct) })
        assert.equal(200, res.status, res.body)
        assert.equal(kid, res.json.kid)
        assert.equal(secret, core.b64url_decode(res.json.value))
        res = KV.req("POST", vault, "/keys/crypto/" .. ver .. "/decrypt", { alg = alg, value = core.b64_encode(ct) })
        assert.equal(secret, core.b64url_decode(res.json.value))
      end
    end)

    it("wraps with the key: only the key's private half (in the emulator) unwraps it", function()
      local secret = core.random_bytes(32)
      local res = KV.req("POST", vault, "/keys/crypto/wrapkey", { alg = "RSA-OAEP-256", value = b64(secret) })
      assert.equal(200, res.status, res.body)
      assert.equal(kid, res.json.kid)
      local ct = core.b64url_decode(res.json.value)
      assert.equal(256, #ct)
      assert.are_not.equal(secret, ct)
      local un = KV.req("POST", vault, "/keys/crypto/unwrapkey", { alg = "RSA-OAEP-256", value = res.json.value })
      assert.equal(secret, core.b64url_decode(un.json.value))
      -- another key cannot
      local other = KV.req("POST", vault, "/keys/other/create", { kty = "RSA" })
      assert.equal(200, other.status)
      KV.assert_kv_error(KV.req("POST", vault, "/keys/other/unwrapkey", { alg = "RSA-OAEP-256",
        value = res.json.value }),
        400, "BadParameter")
      local enc = KV.req("POST", vault, "/keys/crypto/encrypt", { alg = "RSA1_5", value = b64("hello") })
      assert.equal("hello", core.b64url_decode(KV.req("POST", vault, "/keys/crypto/decrypt",
        { alg = "RSA1_5", value = enc.json.value }).json.value))
    end)

    it("validates crypto requests", function()
      for _, body in ipairs({ { value = b64("x") }, { alg = "A256KW", value = b64("x") }, { alg = "RSA-OAEP" },
        { alg = "RSA-OAEP", value = "***" }, { alg = "RSA-OAEP", value = b64(string.rep("x", 300)) } }) do
        KV.assert_kv_error(KV.req("POST", vault, "/keys/crypto/wrapkey", body), 400, "BadParameter")
      end
      for _, v in ipairs({ "AQID", core.b64url_encode(string.rep("z", 256)) }) do
        KV.assert_kv_error(KV.req("POST", vault, "/keys/crypto/unwrapkey", { alg = "RSA-OAEP", value = v }), 400,
          "BadParameter")
      end
      KV.assert_kv_error(KV.req("POST", vault, "/keys/crypto/" .. string.rep("a", 32) .. "/wrapkey",
        { alg = "RSA-OAEP", value = b64("x") }), 404, "KeyNotFound")
      local ec = KV.req("POST", vault, "/keys/eckey/create", { kty = "EC", key_ops = { "wrapKey", "unwrapKey" } })
      assert.equal(200, ec.status)
      KV.assert_kv_error(KV.req("POST", vault, "/keys/eckey/wrapkey", { alg = "RSA-OAEP", value = b64("x") }), 400,
        "BadParameter")
    end)

    it("applies enabled, nbf/exp and key_ops (PATCH)", function()
      local r = KV.req("POST", vault, "/keys/attr/create", { kty = "RSA" })
      local ver = r.json.key.kid:match("(%x+)$")
      local p = KV.req("PATCH", vault, "/keys/attr/" .. ver, { attributes = { enabled = false }, tags = { a = "b" } })
      assert.equal(200, p.status, p.body)
      assert.is_false(p.json.attributes.enabled)
      assert.same({ a = "b" }, p.json.tags)
      assert.is_true(p.json.attributes.updated >= p.json.attributes.created)
      local pubk = assert(core.pkey_from_jwk({ kty = "RSA", n = r.json.key.n, e = r.json.key.e }))
      local ct = b64(pubk:encrypt("RSA-OAEP", "k"))
      KV.assert_kv_error(KV.req("POST", vault, "/keys/attr/wrapkey", { alg = "RSA-OAEP", value = b64("x") }), 403,
        "Forbidden", nil, "^Operation wrapKey is not allowed on a disabled key%.$")
      KV.assert_kv_error(KV.req("POST", vault, "/keys/attr/unwrapkey", { alg = "RSA-OAEP", value = ct }), 403,
        "Forbidden", nil, "^Operation unwrapKey is not allowed on a disabled key%.$")
      -- expired: unwrap/decrypt still work, wrap/encrypt do not
      local now = E.control("GET", "clock").json.now
      p = KV.req("PATCH", vault, "/keys/attr/", { attributes = { enabled = true, exp = math.floor(now) - 10 } })
      assert.equal(math.floor(now) - 10, p.json.attributes.exp)
      KV.assert_kv_error(KV.req("POST", vault, "/keys/attr/wrapkey", { alg = "RSA-OAEP", value = b64("x") }), 403,
        "Forbidden")
      KV.assert_kv_error(KV.req("POST", vault, "/keys/attr/encrypt", { alg = "RSA-OAEP", value = b64("x") }), 403,
        "Forbidden")
      assert.equal("k", core.b64url_decode(KV.req("POST", vault, "/keys/attr/unwrapkey",
        { alg = "RSA-OAEP", value = ct }).json.value))
      assert.equal(200, KV.req("POST", vault, "/keys/attr/decrypt", { alg = "RSA-OAEP", value = ct }).status)
      -- not yet valid
      KV.req("PATCH", vault, "/keys/attr/" .. ver, { attributes = { exp = cjson.null, nbf = math.floor(now) + 3600 } })
      KV.assert_kv_error(KV.req("POST", vault, "/keys/attr/wrapkey", { alg = "RSA-OAEP", value = b64("x") }), 403,
        "Forbidden")
      assert.equal(200, KV.req("POST", vault, "/keys/attr/unwrapkey", { alg = "RSA-OAEP", value = ct }).status)
      -- key_ops without wrapKey
      KV.req("PATCH", vault, "/keys/attr/" .. ver, { attributes = { nbf = math.floor(now) - 60 },
        key_ops = { "unwrapKey" } })
      KV.assert_kv_error(KV.req("POST", vault, "/keys/attr/wrapkey", { alg = "RSA-OAEP", value = b64("x") }), 403,
        "Forbidden")
      assert.equal(200, KV.req("POST", vault, "/keys/attr/unwrapkey", { alg = "RSA-OAEP", value = ct }).status)
      KV.assert_kv_error(KV.req("PATCH", vault, "/keys/attr/" .. ver, { attributes = { enabled = 1 } }), 400,
        "BadParameter")
      KV.assert_kv_error(KV.req("PATCH", vault, "/keys/attr/" .. string.rep("b", 32), { tags = {} }), 404,
        "KeyNotFound")
    end)
  end)

  describe("soft delete, recover, purge", function()
    it("goes being-deleted -> deleted-recoverable -> recovered, with Azure's 409s", function()
      -- a long "being deleted" window, so a slow machine still sees it
      E.control("POST", "keyvault", { delete_seconds = 60 })
      local r = KV.req("POST", vault, "/keys/gone/create", { kty = "RSA" })
      local del = KV.req("DELETE", vault, "/keys/gone")
      assert.equal(200, del.status, del.body)
      assert.equal("https://" .. vault .. ".vault.azure.net/deletedkeys/gone", del.json.recoveryId)
      assert.equal(r.json.key.kid, del.json.key.kid)
      assert.equal(del.json.deletedDate + 90 * 86400, del.json.scheduledPurgeDate)
      KV.assert_kv_error(KV.req("GET", vault, "/keys/gone"), 404, "KeyNotFound")
      KV.assert_kv_error(KV.req("DELETE", vault, "/keys/gone"), 404, "KeyNotFound")
      -- still being deleted
      KV.assert_kv_error(KV.req("GET", vault, "/deletedkeys/gone"), 404, "KeyNotFound", nil,
        "^Deleted Key not found: gone$")
      KV.assert_kv_error(KV.req("POST", vault, "/deletedkeys/gone/recover"), 409, "Conflict", "ObjectIsBeingDeleted",
        "^Key is currently being deleted%.$")
      KV.assert_kv_error(KV.req("DELETE", vault, "/deletedkeys/gone"), 409, "Conflict", "ObjectIsBeingDeleted")
      KV.assert_kv_error(KV.req("POST", vault, "/keys/gone/create", { kty = "RSA" }), 409, "Conflict",
        "ObjectIsBeingDeleted")
      E.control("POST", "clock", { advance = 61 })
      E.control("POST", "keyvault", { delete_seconds = 1 })
      local g = KV.req("GET", vault, "/deletedkeys/gone")
      assert.equal(200, g.status, g.body)
      assert.equal(del.json.recoveryId, g.json.recoveryId)
      local list = KV.req("GET", vault, "/deletedkeys")
      local seen = false
      for _, it in ipairs(list.json.value) do
        if it.kid == "https://" .. vault .. ".vault.azure.net/keys/gone" then
          seen = true
          assert.equal(del.json.recoveryId, it.recoveryId)
        end
      end
      assert.is_true(seen)
      KV.assert_kv_error(KV.req("POST", vault, "/keys/gone/create", { kty = "RSA" }), 409, "Conflict",
        "ObjectIsDeletedButRecoverable", "^Key gone is currently in a deleted but recoverable state, and its name " ..
        "cannot be reused; in this state, the key can only be recovered or purged%.$")
      local rec = KV.req("POST", vault, "/deletedkeys/gone/recover")
      assert.equal(200, rec.status, rec.body)
      assert.equal(r.json.key.kid, rec.json.key.kid)
      assert.equal(200, KV.req("GET", vault, "/keys/gone/").status)
      KV.assert_kv_error(KV.req("POST", vault, "/deletedkeys/gone/recover"), 404, "KeyNotFound", nil,
        "^Deleted Key not found: gone$")
    end)

    it("purges (204) unless purge protection is on", function()
      KV.req("POST", vault, "/keys/purgeme/create", { kty = "RSA" })
      KV.req("DELETE", vault, "/keys/purgeme")
      E.control("POST", "clock", { advance = 2 })
      local res = KV.req("DELETE", vault, "/deletedkeys/purgeme")
      assert.equal(204, res.status, res.body)
      KV.assert_kv_error(KV.req("GET", vault, "/deletedkeys/purgeme"), 404, "KeyNotFound", nil,
        "^Deleted Key not found: purgeme$")
      assert.equal(200, KV.req("POST", vault, "/keys/purgeme/create", { kty = "RSA" }).status)

      local pv = KV.uniq("kv")
      KV.vault(rg, pv, KV.props({ enablePurgeProtection = true, softDeleteRetentionInDays = 7 }))
      local k = KV.req("POST", pv, "/keys/kept/create", { kty = "RSA" })
      assert.equal("CustomizedRecoverable", k.json.attributes.recoveryLevel)
      assert.equal(7, k.json.attributes.recoverableDays)
      local del = KV.req("DELETE", pv, "/keys/kept")
      assert.equal(del.json.deletedDate + 7 * 86400, del.json.scheduledPurgeDate)
      E.control("POST", "clock", { advance = 2 })
      KV.assert_kv_error(KV.req("DELETE", pv, "/deletedkeys/kept"), 403, "Forbidden", nil,
        "^Operation \"purge\" is not allowed because purge protection is enabled for this vault%. Key Vault service " ..
        "will automatically purge it after the retention period has passed%. Vault: " .. pv .. ";location=westus$")
      -- the retention ends on the simulated clock: purged by itself
      E.control("POST", "clock", { advance = 7 * 86400 })
      KV.assert_kv_error(KV.req("GET", pv, "/deletedkeys/kept"), 404, "KeyNotFound")
      assert.equal(200, KV.req("POST", pv, "/keys/kept/create", { kty = "RSA" }).status)
    end)

    it("lets the settle time be configured", function()
      assert.equal(200, E.control("POST", "keyvault", { delete_seconds = 0 }).status)
      KV.req("POST", vault, "/keys/quick/create", { kty = "RSA" })
      KV.req("DELETE", vault, "/keys/quick")
      assert.equal(200, KV.req("GET", vault, "/deletedkeys/quick").status)
      E.control("POST", "keyvault", { delete_seconds = 1 })
      assert.equal(400, E.control("POST", "keyvault", { delete_seconds = -1 }).status)
    end)
  end)

  describe("backup and restore", function()
    it("restores a purged key with all its versions", function()
      local a = KV.req("POST", vault, "/keys/bk/create", { kty = "RSA" }).json.key.kid
      KV.req("POST", vault, "/keys/bk/create", { kty = "RSA" })
      local b = KV.req("POST", vault, "/keys/bk/backup")
      assert.equal(200, b.status, b.body)
      KV.assert_kv_error(KV.req("POST", vault, "/keys/restore", { value = b.json.value }), 409, "Conflict")
      KV.req("DELETE", vault, "/keys/bk")
      E.control("POST", "clock", { advance = 2 })
      KV.req("DELETE", vault, "/deletedkeys/bk")
      local r = KV.req("POST", vault, "/keys/restore", { value = b.json.value })
      assert.equal(200, r.status, r.body)
      assert.equal(200, KV.req("GET", vault, "/keys/bk/" .. a:match("(%x+)$")).status)
      KV.assert_kv_error(KV.req("POST", vault, "/keys/restore", { value = "AAAA" }), 400, "BadParameter")
    end)
  end)

  describe("rotation", function()
    it("rotates on demand (a new version, expiry from the policy)", function()
      local first = KV.req("POST", vault, "/keys/rot/create", { kty = "RSA", key_size = 3072 }).json
      local r = KV.req("POST", vault, "/keys/rot/rotate")
      assert.equal(200, r.status, r.body)
      assert.are_not.equal(first.key.kid, r.json.key.kid)
      assert.equal(384, #core.b64url_decode(r.json.key.n))
      assert.is_nil(r.json.attributes.exp)
      KV.req("PUT", vault, "/keys/rot/rotationpolicy", { lifetimeActions = {}, attributes = { expiryTime = "P90D" } })
      r = KV.req("POST", vault, "/keys/rot/rotate")
      assert.equal(r.json.attributes.created + 90 * 86400, r.json.attributes.exp)
      KV.assert_kv_error(KV.req("POST", vault, "/keys/nokey/rotate"), 404, "KeyNotFound")
    end)

    it("serves the default rotation policy and validates new ones", function()
      KV.req("POST", vault, "/keys/pol/create", { kty = "RSA" })
      local g = KV.req("GET", vault, "/keys/pol/rotationpolicy")
      assert.equal(200, g.status, g.body)
      assert.equal("https://" .. vault .. ".vault.azure.net/keys/pol/rotationpolicy", g.json.id)
      assert.same({ { trigger = { timeBeforeExpiry = "P30D" }, action = { type = "Notify" } } }, g.json.lifetimeActions)
      local ok = { lifetimeActions = { { trigger = { timeAfterCreate = "P90D" }, action = { type = "rotate" } },
        { trigger = { timeBeforeExpiry = "P30D" }, action = { type = "NOTIFY" } } },
          attributes = { expiryTime = "P2Y" } }
      local p = KV.req("PUT", vault, "/keys/pol/rotationpolicy", ok)
      assert.equal(200, p.status, p.body)
      assert.equal("Rotate", p.json.lifetimeActions[1].action.type)
      assert.equal("Notify", p.json.lifetimeActions[2].action.type)
      assert.equal("P2Y", p.json.attributes.expiryTime)
      assert.is_number(p.json.attributes.created)
      assert.is_number(p.json.attributes.updated)
      assert.same(p.json, KV.req("GET", vault, "/keys/pol/rotationpolicy").json)
      local rot = function(t) return { trigger = t, action = { type = "Rotate" } } end
      local notify = function(t) return { trigger = t, action = { type = "Notify" } } end
      local bad = {
        { lifetimeActions = { rot({ timeAfterCreate = "P30D" }), notify({ timeBeforeExpiry = "P30D" }),
          notify({ timeBeforeExpiry = "P10D" }) }, attributes = { expiryTime = "P1Y" } },
        { lifetimeActions = { rot({ timeAfterCreate = "P30D" }), rot({ timeAfterCreate = "P60D" }) } },
        { lifetimeActions = { notify({ timeAfterCreate = "P30D" }) } },
        { lifetimeActions = {}, attributes = { expiryTime = "P27D" } },
        { lifetimeActions = { rot({ timeAfterCreate = "P6D" }) } },
        { lifetimeActions = { rot({ timeAfterCreate = "P30D" }) }, attributes = { expiryTime = "P36D" } },
        { lifetimeActions = { rot({ timeBeforeExpiry = "P6D" }) }, attributes = { expiryTime = "P1Y" } },
        { lifetimeActions = { rot({ timeBeforeExpiry = "P30D" }) } },
        { lifetimeActions = { rot({ timeAfterCreate = "P1X" }) } },
        { lifetimeActions = { rot({ timeAfterCreate = "P30D", timeBeforeExpiry = "P30D" }) },
          attributes = { expiryTime = "P1Y" } },
        { lifetimeActions = { rot({}) } },
        { lifetimeActions = { { trigger = { timeAfterCreate = "P30D" }, action = { type = "Delete" } } } },
        { lifetimeActions = "x" },
        { attributes = { expiryTime = "two years" } },
      }
      for _, body in ipairs(bad) do
        KV.assert_kv_error(KV.req("PUT", vault, "/keys/pol/rotationpolicy", body), 400, "BadParameter")
      end
      KV.assert_kv_error(KV.req("PUT", vault, "/keys/nokey/rotationpolicy", ok), 404, "KeyNotFound")
    end)

    it("rotates automatically when the simulated clock passes timeAfterCreate (lazily, on read)", function()
      local c = KV.req("POST", vault, "/keys/auto/create", { kty = "RSA" }).json
      local p = KV.req("PUT", vault, "/keys/auto/rotationpolicy", { lifetimeActions = {
        { trigger = { timeAfterCreate = "P30D" }, action = { type = "Rotate" } } },
          attributes = { expiryTime = "P90D" } })
      assert.equal(200, p.status, p.body)
      E.control("POST", "clock", { advance = 29 * 86400 })
      assert.equal(c.key.kid, KV.req("GET", vault, "/keys/auto").json.key.kid)
      E.control("POST", "clock", { advance = 2 * 86400 })
      local now = KV.req("GET", vault, "/keys/auto")
      assert.equal(200, now.status, now.body)
      assert.are_not.equal(c.key.kid, now.json.key.kid)
      assert.equal(c.attributes.created + 30 * 86400, now.json.attributes.created)
      assert.equal(now.json.attributes.created + 90 * 86400, now.json.attributes.exp)
      assert.equal(2, #KV.req("GET", vault, "/keys/auto/versions").json.value)
      -- the new version is real RSA
      local pubk = assert(core.pkey_from_jwk({ kty = "RSA", n = now.json.key.n, e = now.json.key.e }))
      local un = KV.req("POST", vault, "/keys/auto/unwrapkey", { alg = "RSA-OAEP-256",
        value = b64(pubk:encrypt("RSA-OAEP-256", "rotated")) })
      assert.equal("rotated", core.b64url_decode(un.json.value))
      -- 65 more days: two more versions (days 60 and 90)
      E.control("POST", "clock", { advance = 60 * 86400 })
      assert.equal(4, #KV.req("GET", vault, "/keys/auto/versions").json.value)
    end)
  end)
end)
