-- Encoding, hashing, HMAC, random bytes and UUIDs against the published vectors.
local core = require "azcmk.core"
local crypto = require "azcmk.crypto"
local h = require "core.crypto_helper"

describe("crypto encoding", function()
  -- RFC 4648 section 10
  local rfc4648 = {
    { "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
  }

  it("base64 matches RFC 4648 section 10 and decodes back", function()
    for _, t in ipairs(rfc4648) do
      assert.equal(t[2], core.b64_encode(t[1]))
      assert.equal(t[1], core.b64_decode(t[2]))
    end
  end)

  it("base64url matches RFC 4648 section 10 without padding and accepts it with padding", function()
    for _, t in ipairs(rfc4648) do
      local unpadded = t[2]:gsub("=", "")
      assert.equal(unpadded, core.b64url_encode(t[1]))
      assert.equal(t[1], core.b64url_decode(unpadded))
      assert.equal(t[1], core.b64url_decode(t[2]))
      assert.equal(t[1], core.b64_decode(unpadded))
    end
  end)

  it("uses -_ for base64url and +/ for base64, and decodes both alphabets", function()
    local bytes = "\251\255\191"  -- 111110 111111 111110 111111: indexes 62 63 62 63
    assert.equal("+/+/", core.b64_encode(bytes))
    assert.equal("-_-_", core.b64url_encode(bytes))
    assert.equal(bytes, core.b64url_decode("+/+/"))
    assert.equal(bytes, core.b64_decode("-_-_"))
    assert.equal("\251\240", core.b64url_decode("-_A"))
  end)

  it("round-trips every byte value and all lengths", function()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    all = table.concat(all)
    for len = 0, 70 do
      local s = all:sub(1, len)
      assert.equal(s, core.b64url_decode(core.b64url_encode(s)))
      assert.equal(s, core.b64_decode(core.b64_encode(s)))
    end
    assert.equal(all, core.b64_decode(core.b64_encode(all)))
  end)

  it("returns nil, err on malformed input", function()
    local bad = {
      "Z", "Zg=", "Zg===", "Z===", "=", "Zm9v=", "Zg==Zg==", "Zm 9v", "Zm9v\n", "Zm9*", "Zm9v\0",
      "Zh", "Zm9", -- non-zero trailing bits
      "Zg=a",
    }
    for _, s in ipairs(bad) do
      local r, err = core.b64url_decode(s)
      assert.is_nil(r, s)
      assert.equal("invalid base64", err)
      assert.is_nil((core.b64_decode(s)))
    end
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() core.b64url_encode({}) end)
    assert.has_error(function() core.b64url_decode(nil) end)
    assert.has_error(function() core.hex() end)
    assert.has_error(function() core.sha256(true) end)
  end)

  it("hex is lower case", function()
    assert.equal("00ff10ab", core.hex("\0\255\16\171"))
    assert.equal("", core.hex(""))
  end)
end)

describe("crypto hashes", function()
  local m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

  it("SHA-1 matches the FIPS 180 examples", function()
    assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", core.hex(core.sha1("abc")))
    assert.equal("da39a3ee5e6b4b0d3255bfef95601890afd80709", core.hex(core.sha1("")))
    assert.equal("84983e441c3bd26ebaae4aa1f95129e5e54670f1", core.hex(core.sha1(m448)))
    assert.equal("34aa973cd4c4daa4f61eeb2bdbad27316534016f", core.hex(core.sha1(("a"):rep(1000000))))
  end)

  it("SHA-256 matches the FIPS 180 examples", function()
    local hex = function(s) return core.hex(core.sha256(s)) end
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex("abc"))
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex(""))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", hex(m448))
    assert.equal("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      core.hex(core.sha256(("a"):rep(1000000))))
  end)

  it("HMAC-SHA256 matches RFC 4231 test cases 1-7", function()
    local aa131 = ("\170"):rep(131)
    local cases = {
      { ("\11"):rep(20), "Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
      { "Jefe", "what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
      { ("\170"):rep(20), ("\221"):rep(50),
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
      { h.unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), ("\205"):rep(50),
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
      -- case 5 is truncated to 128 bits
      { ("\12"):rep(20), "Test With Truncation", "a3b6167473100ee06e0c796c2955552b", 16 },
      { aa131, "Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
      { aa131, "This is a test using a larger than block-size key and a larger than block-size data. "
          .. "The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
    }
    for i, t in ipairs(cases) do
      local mac = core.hmac_sha256(t[1], t[2])
      assert.equal(32, #mac)
      if t[4] then mac = mac:sub(1, t[4]) end
      assert.equal(t[3], core.hex(mac), "RFC 4231 case " .. i)
    end
  end)

  it("HMAC-SHA256 accepts an empty key", function()
    assert.equal("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
      core.hex(core.hmac_sha256("", "")))
  end)
end)

describe("crypto random", function()
  it("random_bytes returns n bytes that differ between calls", function()
    assert.equal(1, #core.random_bytes(1))
    assert.equal(65536, #core.random_bytes(65536))
    assert.not_equal(core.random_bytes(32), core.random_bytes(32))
  end)

  it("random_bytes raises outside 1..65536", function()
    assert.has_error(function() core.random_bytes(0) end)
    assert.has_error(function() core.random_bytes(65537) end)
    assert.has_error(function() core.random_bytes(-1) end)
    assert.has_error(function() core.random_bytes("x") end)
  end)

  it("uuid4 is an RFC 4122 version 4 UUID, lower case, unique", function()
    local seen = {}
    for _ = 1, 200 do
      local u = core.uuid4()
      local pattern = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-" .. ("%x"):rep(12) .. "$"
      assert.truthy(u:match(pattern), u)
      assert.equal(u:lower(), u)
      assert.is_nil(seen[u])
      seen[u] = true
    end
  end)

  it("the azcmk.crypto face exposes the core functions", function()
    assert.equal(core.b64url_encode, crypto.b64url_encode)
    assert.equal(core.jwt_verify, crypto.jwt_verify)
    assert.equal(core.load_pkcs12, crypto.load_pkcs12)
    assert.equal(crypto, require("azcmk").crypto)
  end)
end)
