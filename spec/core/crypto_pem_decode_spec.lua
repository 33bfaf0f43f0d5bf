-- pkey_from_pem tries a decoder narrowed to RSA first and falls back to the generic one
-- (src/pkey.c): every PEM form must still decode, to the key the `openssl` CLI sees, and
-- every failure must keep its message. Timings live in bench/, not here.
local core = require "azcmk.core"
local h = require "core.crypto_helper"

-- "Modulus=ABC..." from the openssl CLI, and the modulus of a pkey, both upper-case hex.
local function cli_modulus(args)
  return assert(h.sh("openssl rsa " .. args .. " -noout -modulus 2>/dev/null"):match("Modulus=(%x+)"))
end

local function modulus(k)
  return h.hex(assert(core.b64url_decode(k:jwk().n))):upper()
end

describe("crypto PEM decoding", function()
  local f, forms, MOD, PRIV

  setup(function()
    f = h.tmpfile()
    h.sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " .. f)
    MOD = cli_modulus("-in " .. f)
    local function form(cmd)
      local out = h.tmpfile()
      h.sh(cmd:gsub("IN", f) .. " -out " .. out)
      return h.read(out)
    end
    forms = {  -- { label, text, password, private }
      { "PKCS#8", h.read(f), nil, true },
      { "PKCS#1", form("openssl pkey -in IN -traditional"), nil, true },
      { "SubjectPublicKeyInfo", form("openssl pkey -in IN -pubout"), nil, false },
      { "PKCS#1 public", form("openssl rsa -in IN -RSAPublicKey_out"), nil, false },
      { "encrypted PKCS#8", form("openssl pkey -in IN -aes256 -passout pass:s3cret"), "s3cret", true },
      { "legacy encrypted PKCS#1", form("openssl rsa -in IN -aes128 -traditional -passout pass:s3cret"),
        "s3cret", true },
    }
    -- The encrypted forms always take the generic decoder: the reference private key.
    PRIV = assert(core.pkey_from_pem(forms[5][2], "s3cret")):jwk(true)
  end)

  teardown(function() h.cleanup() end)

  it("decodes every form to the key openssl sees", function()
    assert.matches("BEGIN PRIVATE KEY", forms[1][2])
    assert.matches("BEGIN RSA PRIVATE KEY", forms[2][2])
    assert.matches("BEGIN PUBLIC KEY", forms[3][2])
    assert.matches("BEGIN RSA PUBLIC KEY", forms[4][2])
    assert.matches("BEGIN ENCRYPTED PRIVATE KEY", forms[5][2])
    assert.matches("Proc%-Type: 4,ENCRYPTED", forms[6][2])
    assert.equal(MOD, cli_modulus("-pubin -in " .. h.tmpfile(forms[3][2])))
    for _, c in ipairs(forms) do
      local k = assert(core.pkey_from_pem(c[2], c[3]), c[1])
      assert.equal(MOD, modulus(k), c[1])
      assert.equal("AQAB", k:jwk().e, c[1])
      assert.equal(c[4], k:is_private(), c[1])
      if c[4] then assert.same(PRIV, k:jwk(true), c[1]) end
      -- a password given for an unencrypted key is ignored, as before
      if not c[3] then assert.same(k:jwk(true), assert(core.pkey_from_pem(c[2], "unused")):jwk(true)) end
    end
  end)

  it("reads the first block only, with text around it and CRLF line ends", function()
    local pem, pub = forms[1][2], forms[3][2]
    local cases = {
      "Bag Attributes\n    localKeyID: 01 02\nKey Attributes: <No Attributes>\n" .. pem,
      (pem:gsub("\n", "\r\n")),
      pem .. pub,
      pem .. h.sh("openssl req -x509 -key " .. f .. " -subj /CN=x -days 1"),
    }
    for i, s in ipairs(cases) do
      local k = assert(core.pkey_from_pem(s), "case " .. i)
      assert.same(PRIV, k:jwk(true), "case " .. i)
    end
    assert.is_false(assert(core.pkey_from_pem(pub .. pem)):is_private())
  end)

  it("refuses other key types as before: RSA-PSS, EC (SEC1, PKCS#8, public), Ed25519", function()
    local function gen(alg, opt, pub)
      local out = h.tmpfile()
      h.sh("openssl genpkey -algorithm " .. alg .. (opt and " -pkeyopt " .. opt or "") .. " -out " .. out)
      if pub then
        local p = h.tmpfile()
        h.sh("openssl pkey -in " .. out .. " -pubout -out " .. p)
        return h.read(p)
      end
      return h.read(out)
    end
    local ec = h.tmpfile(gen("EC", "ec_paramgen_curve:P-256"))
    local sec1 = h.tmpfile()
    h.sh("openssl ec -in " .. ec .. " -out " .. sec1 .. " 2>/dev/null")
    assert.matches("BEGIN EC PRIVATE KEY", h.read(sec1))
    local cases = { h.read(ec), h.read(sec1), gen("EC", "ec_paramgen_curve:P-256", true),
      gen("ED25519"), gen("ED25519", nil, true), gen("RSA-PSS", "rsa_keygen_bits:2048"),
      gen("RSA-PSS", "rsa_keygen_bits:2048", true) }
    for i, s in ipairs(cases) do
      local k, err = core.pkey_from_pem(s)
      assert.is_nil(k, "case " .. i)
      assert.equal("pkey_from_pem: PEM: not an RSA key", err, "case " .. i)
    end
  end)

  it("keeps the messages of failures, and no stale error reaches the next call", function()
    -- OpenSSL 3.0's reasons, as the generic decoder alone reported them
    local enc, legacy = forms[5][2], forms[6][2]
    local cases = {
      { "junk", nil, "PEM: unsupported" },
      { "", nil, "PEM: unsupported" },
      { forms[1][2]:sub(1, 300), nil, "PEM: unsupported" },
      { (forms[1][2]:gsub("MII", "MIJ", 1)), nil, "PEM: unsupported" },
      { "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n", nil, "PEM: unsupported" },
      { enc, "wrong", "PEM: pkcs12 cipherfinal error" },
      { enc, nil, "PEM: unable to get passphrase" },
      { legacy, "wrong", "PEM: bad decrypt" },
      { legacy, nil, "PEM: bad password read" },
    }
    for i, c in ipairs(cases) do
      local k, err = core.pkey_from_pem(c[1], c[2])
      assert.is_nil(k, "case " .. i)
      assert.equal("pkey_from_pem: " .. c[3], err, "case " .. i)
      assert.same(PRIV, assert(core.pkey_from_pem(forms[1][2])):jwk(true))
    end
  end)

  it("load_pem takes the same path for the key of a bundle", function()
    local cert = h.tmpfile()
    h.sh("openssl req -x509 -key " .. f .. " -subj /CN=leaf -days 1 -out " .. cert)
    for _, c in ipairs(forms) do
      if c[4] then
        local b = assert(core.load_pem(h.read(cert) .. c[2], c[3]), c[1])
        assert.same(PRIV, b.key:jwk(true), c[1])
        assert.equal("CN=leaf", b.cert:subject())
      end
    end
  end)
end)
