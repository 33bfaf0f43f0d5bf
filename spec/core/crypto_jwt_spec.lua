-- JWT (compact JWS) with RS256 / PS256: the RFC 7515 A.2 example, openssl cross-checks,
-- and refusal of "none", algorithm confusion and malformed tokens.
local core = require "azcmk.core"
local crypto = require "azcmk.crypto"
local cjson = require "cjson"
local h = require "core.crypto_helper"

local b64 = core.b64url_encode

describe("crypto JWT", function()
  local v = h.rfc7515_a2
  local pub, priv, key

  setup(function()
    pub = assert(core.pkey_from_jwk({ kty = "RSA", n = v.jwk.n, e = v.jwk.e }))
    priv = assert(core.pkey_from_jwk(v.jwk))
    key = core.rsa_generate(2048)
  end)

  teardown(function() h.cleanup() end)

  it("verifies the RFC 7515 A.2 RS256 example with the RFC's public JWK", function()
    local header, payload = core.jwt_verify(v.token, pub, "RS256")
    assert.equal(v.header, header)
    assert.equal(v.payload, payload)
  end)

  it("reproduces the RFC 7515 A.2 token byte for byte with the RFC's private JWK", function()
    assert.equal(v.token, core.jwt_sign(v.header, v.payload, priv, "RS256"))
  end)

  it("jwt_decode returns the parts without verifying", function()
    local header, payload = core.jwt_decode(v.token)
    assert.equal(v.header, header)
    assert.equal(v.payload, payload)
    local forged = v.token:gsub("%.[^.]*$", ".AAAA")
    assert.equal(v.header, (core.jwt_decode(forged)))
    assert.is_nil(core.jwt_verify(forged, pub, "RS256"))
  end)

  it("PS256 round-trips, and openssl verifies azcmk's token signature", function()
    local tok = assert(core.jwt_sign('{"alg":"PS256"}', '{"sub":"x"}', key, "PS256"))
    local hdr, payload = core.jwt_verify(tok, key, "PS256")
    assert.equal('{"alg":"PS256"}', hdr)
    assert.equal('{"sub":"x"}', payload)
    local input, sig = tok:match("^(.*)%.([^.]*)$")
    local inf, sigf, pubf = h.tmpfile(input), h.tmpfile(core.b64url_decode(sig)), h.tmpfile(key:pem())
    assert.matches("Verified OK", h.sh("openssl dgst -sha256 -verify " .. pubf
      .. " -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -signature " .. sigf .. " " .. inf))
  end)

  it("verifies tokens whose signature openssl made (RS256 and PS256)", function()
    local keyf = h.tmpfile(key:pem(true))
    local pss = "-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest"
    for alg, opts in pairs({ RS256 = "", PS256 = pss }) do
      local input = b64('{"typ":"JWT","alg":"' .. alg .. '"}') .. "." .. b64('{"iss":"openssl"}')
      local inf, sigf = h.tmpfile(input), h.tmpfile()
      h.sh("openssl dgst -sha256 -sign " .. keyf .. " " .. opts .. " -out " .. sigf .. " " .. inf)
      local tok = input .. "." .. b64(h.read(sigf))
      local _, payload = core.jwt_verify(tok, key, alg)
      assert.equal('{"iss":"openssl"}', payload)
    end
  end)

  it("refuses alg none, whatever the signature part", function()
    local body = b64('{"iss":"joe"}')
    local sig = v.token:match("[^.]*$")
    for _, tok in ipairs({
      b64('{"alg":"none"}') .. "." .. body .. ".",
      b64('{"alg":"none"}') .. "." .. body .. "." .. sig,
      b64('{"alg":"None"}') .. "." .. body .. ".",
    }) do
      local r, err = core.jwt_verify(tok, pub, "RS256")
      assert.is_nil(r)
      assert.matches("is not the expected RS256", err)
    end
    -- and "none" is not an algorithm a caller can ask for
    assert.has_error(function() core.jwt_verify(v.token, pub, "none") end)
    assert.has_error(function() core.jwt_sign("{}", "{}", key, "none") end)
  end)

  it("refuses a header alg that differs from the expected one", function()
    local tok = core.jwt_sign('{"alg":"RS256"}', "{}", key, "RS256")
    local r, err = core.jwt_verify(tok, key, "PS256")
    assert.is_nil(r)
    assert.equal('jwt_verify: header alg "RS256" is not the expected PS256', err)
    -- a header that lies about the alg: signed with PS256, header says RS256
    local liar = core.jwt_sign('{"alg":"RS256"}', "{}", key, "PS256")
    assert.is_nil(core.jwt_verify(liar, key, "RS256"))
    assert.is_nil(core.jwt_verify(liar, key, "PS256"))
    local hs = b64('{"alg":"HS256"}') .. "." .. b64("{}") .. "." .. b64(core.hmac_sha256(key:pem(), "x"))
    assert.is_nil(core.jwt_verify(hs, key, "RS256"))
  end)

  it("reads alg from the top level of the header only, once", function()
    local function verify(header)
      local tok = core.jwt_sign(header, "{}", key, "RS256")
      return core.jwt_verify(tok, key, "RS256")
    end
    assert.is_string(verify(' { "typ" : "JWT" , "alg" : "RS256" } '))
    assert.is_string(verify('{"x":{"alg":"none"},"y":[1,"]",{"a":"}"}],"alg":"RS\\u0032\\u00356"}'))
    local refused = {
      '{"alg":"RS256","alg":"none"}', '{"alg":"RS256","alg":"RS256"}', '{"x":{"alg":"RS256"}}',
      '{"alg":["RS256"]}', '{"alg":"RS256"', '["RS256"]', '{"alg":"RS256"} x', "", "null",
      '{"alg":"RS256","kid":"a\1b"}', '{"alg":"RS256",}', '{"alg" "RS256"}',
    }
    for i, header in ipairs(refused) do
      local r, err = verify(header)
      assert.is_nil(r, "case " .. i .. ": " .. header)
      assert.matches("^jwt_verify: ", err)
    end
  end)

  it("returns nil, err for tampered, wrongly keyed and malformed tokens", function()
    local tok = core.jwt_sign('{"alg":"RS256"}', '{"n":1}', key, "RS256")
    local hdr, body, sig = tok:match("^([^.]*)%.([^.]*)%.([^.]*)$")
    local cases = {
      hdr .. "." .. b64('{"n":2}') .. "." .. sig,
      hdr .. "." .. body .. "." .. sig:sub(2),
      hdr .. "." .. body .. "." .. sig:reverse(),
      hdr .. "." .. body .. ".",
      hdr .. "." .. body .. "." .. sig .. "*",
      hdr .. "." .. body .. "!." .. sig,
      "!" .. hdr .. "." .. body .. "." .. sig,
      hdr .. "." .. body,
      tok .. ".x",
      "", ".", "..", "...", "a.b.c",
    }
    for i, t in ipairs(cases) do
      local r, err = core.jwt_verify(t, key, "RS256")
      assert.is_nil(r, "case " .. i)
      assert.matches("^jwt_verify: ", err)
    end
    assert.is_nil(core.jwt_verify(tok, pub, "RS256"))  -- other key
    for _, t in ipairs({ "", "a", "a.b", "a.b.c.d", "!.a.b", "e30.!.b" }) do
      local r, err = core.jwt_decode(t)
      assert.is_nil(r)
      assert.matches("^jwt_decode: ", err)
    end
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.jwt_verify(nil, key, "RS256") end)
    assert.has_error(function() core.jwt_verify(v.token, "key", "RS256") end)
    assert.has_error(function() core.jwt_sign({}, "{}", key, "RS256") end)
    assert.has_error(function() core.jwt_sign("{}", "{}", key) end)
    assert.has_error(function() core.jwt_decode(12 > 3) end)
  end)

  it("jwt_sign with a public key is nil, err", function()
    local r, err = core.jwt_sign("{}", "{}", pub, "RS256")
    assert.is_nil(r)
    assert.matches("key is not private", err)
  end)

  describe("Lua face", function()
    it("jwt_encode sets alg and typ, jwt_decode_verified returns tables", function()
      local tok = assert(crypto.jwt_encode({ kid = "k1" }, { aud = "api://x", n = 5 }, key, "PS256"))
      local header, payload = crypto.jwt_decode_verified(tok, key, "PS256")
      assert.same({ alg = "PS256", typ = "JWT", kid = "k1" }, header)
      assert.same({ aud = "api://x", n = 5 }, payload)
      local r, err = crypto.jwt_decode_verified(tok, key, "RS256")
      assert.is_nil(r)
      assert.matches("not the expected RS256", err)
      assert.same({ alg = "PS256", typ = "JWT", kid = "k1" }, (crypto.jwt_decode_unverified(tok)))
    end)

    it("jwt_encode overrides a caller's alg and keeps a caller's typ", function()
      local tok = crypto.jwt_encode({ alg = "none", typ = "at+jwt" }, {}, key, "RS256")
      local header = cjson.decode((core.jwt_decode(tok)))
      assert.same({ alg = "RS256", typ = "at+jwt" }, header)
    end)

    it("a verified token whose payload is not a JSON object is nil, err", function()
      local tok = core.jwt_sign('{"alg":"RS256"}', "not json", key, "RS256")
      local r, err = crypto.jwt_decode_verified(tok, key, "RS256")
      assert.is_nil(r)
      assert.matches("^jwt payload is not a JSON object", err)
      assert.is_nil((crypto.jwt_decode_unverified("a.b")))
    end)

    it("jwt_encode raises on non-table claims", function()
      assert.has_error(function() crypto.jwt_encode("{}", {}, key, "RS256") end)
      assert.has_error(function() crypto.jwt_encode({}, "x", key, "RS256") end)
    end)
  end)
end)
