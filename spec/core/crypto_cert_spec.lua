-- Certificates with their key: PEM bundles, PKCS#12 (OpenSSL 3 defaults: PBKDF2 + AES-256,
-- SHA-256 MAC), DER, thumbprints checked against `openssl x509 -fingerprint`.
local core = require "azcmk.core"
local h = require "core.crypto_helper"

-- "SHA1 Fingerprint=AB:CD:..." -> base64url of the bytes
local function fingerprint(pem_file, md)
  local out = h.sh("openssl x509 -in " .. pem_file .. " -noout -fingerprint -" .. md)
  return core.b64url_encode(h.unhex(assert(out:match("=([%x:]+)"))))
end

describe("crypto certificates", function()
  local ca_key, ca_pem, leaf_key, leaf_pem, other_key
  local LEAF_KEY, LEAF, CA

  setup(function()
    ca_key, ca_pem = h.tmpfile(), h.tmpfile()
    h.sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout " .. ca_key .. " -out " .. ca_pem
      .. " -subj '/CN=azcmk test CA' -days 3")
    leaf_key, leaf_pem = h.tmpfile(), h.tmpfile()
    local csr = h.tmpfile()
    h.sh("openssl req -newkey rsa:2048 -nodes -keyout " .. leaf_key .. " -out " .. csr
      .. " -subj '/O=azcmk/CN=leaf'")
    h.sh("openssl x509 -req -in " .. csr .. " -CA " .. ca_pem .. " -CAkey " .. ca_key
      .. " -set_serial 42 -days 2 -out " .. leaf_pem)
    other_key = h.tmpfile()
    h.sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. other_key)
    LEAF_KEY, LEAF, CA = h.read(leaf_key), h.read(leaf_pem), h.read(ca_pem)
  end)

  teardown(function() h.cleanup() end)

  local function check_bundle(b)
    assert.equal("CN=leaf,O=azcmk", b.cert:subject())
    assert.is_true(b.key:is_private())
    assert.same(core.pkey_from_pem(LEAF_KEY):jwk(true), b.key:jwk(true))
    assert.same(b.key:jwk(), b.cert:pubkey():jwk())
    assert.equal(1, #b.chain)
    assert.equal("CN=azcmk test CA", b.chain[1]:subject())
  end

  describe("load_pem", function()
    it("finds certificate, key and chain in any order", function()
      check_bundle(assert(core.load_pem(LEAF_KEY .. LEAF .. CA)))
      check_bundle(assert(core.load_pem(CA .. LEAF_KEY .. LEAF)))
      check_bundle(assert(core.load_pem(LEAF .. CA .. "\nsome text between blocks\n" .. LEAF_KEY)))
    end)

    it("loads an encrypted key with the right password only", function()
      local p8, legacy = h.tmpfile(), h.tmpfile()
      h.sh("openssl pkey -in " .. leaf_key .. " -aes256 -passout pass:pw123 -out " .. p8)
      h.sh("openssl rsa -in " .. leaf_key .. " -aes128 -traditional -passout pass:pw123 -out " .. legacy)
      for _, f in ipairs({ p8, legacy }) do
        local text = LEAF .. h.read(f) .. CA
        check_bundle(assert(core.load_pem(text, "pw123")))
        local b, err = core.load_pem(text, "nope")
        assert.is_nil(b)
        assert.matches("^load_pem: ", err)
        b, err = core.load_pem(text)
        assert.is_nil(b)
        assert.matches("^load_pem: ", err)
      end
    end)

    it("returns nil, err without a key, without a matching certificate, or with bad blocks", function()
      local cases = {
        { LEAF .. CA, "no private key" },
        { LEAF_KEY, "no certificate" },
        { h.read(other_key) .. LEAF .. CA, "no certificate matches the private key" },
        { LEAF_KEY .. LEAF_KEY .. LEAF, "more than one private key" },
        { LEAF_KEY .. LEAF:gsub("MII", "MIJ", 1), "malformed" },
        { LEAF_KEY .. LEAF:sub(1, 300), "malformed PEM block" },
        { "", "no private key" },
      }
      for i, c in ipairs(cases) do
        local b, err = core.load_pem(c[1])
        assert.is_nil(b, "case " .. i)
        assert.matches("^load_pem: .*" .. c[2]:gsub("%-", "%%-"), err)
      end
      assert.has_error(function() core.load_pem(nil) end)
      assert.has_error(function() core.load_pem(LEAF, {}) end)
    end)
  end)

  describe("load_pkcs12", function()
    local p12

    setup(function()
      local f = h.tmpfile()
      h.sh("openssl pkcs12 -export -in " .. leaf_pem .. " -inkey " .. leaf_key .. " -certfile " .. ca_pem
        .. " -passout pass:p12-secret -out " .. f)
      p12 = h.read(f)
    end)

    it("loads certificate, key and chain with the right password (OpenSSL 3 defaults)", function()
      check_bundle(assert(core.load_pkcs12(p12, "p12-secret")))
    end)

    it("a wrong or missing password is nil, err", function()
      local b, err = core.load_pkcs12(p12, "wrong")
      assert.is_nil(b)
      assert.equal("load_pkcs12: wrong password (MAC verification failed)", err)
      b, err = core.load_pkcs12(p12)
      assert.is_nil(b)
      assert.matches("^load_pkcs12: ", err)
    end)

    it("malformed or keyless PKCS#12 is nil, err", function()
      local nokey = h.tmpfile()
      h.sh("openssl pkcs12 -export -nokeys -in " .. leaf_pem .. " -passout pass:x -out " .. nokey)
      local cases = {
        { "", "not a PKCS#12" }, { "garbage", "not a PKCS#12" }, { p12:sub(1, math.floor(#p12 / 2)), "" },
        { h.read(nokey), "no private key" }, { LEAF, "not a PKCS#12" },
      }
      for i, c in ipairs(cases) do
        local b, err = core.load_pkcs12(c[1], "x")
        assert.is_nil(b, "case " .. i)
        assert.matches("^load_pkcs12: .*" .. c[2], err)
      end
      assert.has_error(function() core.load_pkcs12({}, "x") end)
    end)
  end)

  describe("cert", function()
    it("x5t and x5t_s256 match openssl's fingerprints", function()
      local c = assert(core.cert_from_pem(LEAF))
      assert.equal(fingerprint(leaf_pem, "sha1"), c:x5t())
      assert.equal(fingerprint(leaf_pem, "sha256"), c:x5t_s256())
      assert.equal(27, #c:x5t())
      assert.equal(43, #c:x5t_s256())
      assert.equal(core.b64url_encode(core.sha1(c:der())), c:x5t())
      local ca = assert(core.cert_from_pem(CA))
      assert.equal(fingerprint(ca_pem, "sha256"), ca:x5t_s256())
      assert.not_equal(c:x5t(), ca:x5t())
    end)

    it("der matches openssl and cert_from_der reads it back", function()
      local der = h.tmpfile()
      h.sh("openssl x509 -in " .. leaf_pem .. " -outform DER -out " .. der)
      local c = core.cert_from_pem(LEAF)
      assert.equal(h.read(der), c:der())
      assert.equal(c:x5t_s256(), assert(core.cert_from_der(h.read(der))):x5t_s256())
    end)

    it("subject, not_after, pubkey and tostring", function()
      local c = core.cert_from_pem(LEAF)
      assert.equal("CN=leaf,O=azcmk", c:subject())
      assert.is_true(math.abs(c:not_after() - (os.time() + 2 * 86400)) < 600)
      local pk = c:pubkey()
      assert.is_false(pk:is_private())
      assert.same(core.pkey_from_pem(LEAF_KEY):jwk(), pk:jwk())
      assert.equal("azcmk.cert CN=leaf,O=azcmk", tostring(c))
    end)

    it("the key of a bundle prints no key material", function()
      local b = core.load_pem(LEAF_KEY .. LEAF)
      assert.equal("azcmk.pkey RSA-2048 private", tostring(b.key))
    end)

    it("close is idempotent; a closed cert raises", function()
      local c = core.cert_from_pem(LEAF)
      c:close()
      c:close()
      assert.equal("azcmk.cert (closed)", tostring(c))
      assert.has_error(function() c:x5t() end, "azcmk.cert is closed (argument #1)")
      local mt = getmetatable(c)
      assert.equal(mt.__gc, mt.__index.close)
      assert.equal(mt.__close, mt.__index.close)
    end)

    it("malformed certificates are nil, err; wrong types raise", function()
      local der = core.cert_from_pem(LEAF):der()
      for i, s in ipairs({ "", "junk", LEAF_KEY, LEAF:sub(1, 200) }) do
        local c, err = core.cert_from_pem(s)
        assert.is_nil(c, "pem case " .. i)
        assert.matches("^cert_from_pem: ", err)
      end
      for i, s in ipairs({ "", "junk", der:sub(1, 100), der .. "\0" }) do
        local c, err = core.cert_from_der(s)
        assert.is_nil(c, "der case " .. i)
        assert.matches("^cert_from_der: ", err)
      end
      assert.has_error(function() core.cert_from_der() end)
      assert.has_error(function() core.cert_from_pem(42 > 1) end)
    end)
  end)
end)
