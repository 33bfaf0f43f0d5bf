-- AES-256-GCM (core.aes256gcm_seal / aes256gcm_open) against the GCM specification's vectors.
local core = require "azcmk.core"

local function unhex(s) return (s:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end

describe("crypto aes256gcm", function()
  local zero_key, zero_iv = string.rep("\0", 32), string.rep("\0", 12)

  -- McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13, 14 and 16.
  it("matches test case 13 (empty plaintext: the tag alone)", function()
    assert.equal("530f8afbc74536b9a963b4f1c4cb738b", core.hex(core.aes256gcm_seal(zero_key, zero_iv, "")))
  end)

  it("matches test case 14 (one zero block)", function()
    local sealed = core.aes256gcm_seal(zero_key, zero_iv, string.rep("\0", 16))
    assert.equal("cea7403d4d606b6e074ec5d3baf39d18" .. "d0d1c8a799996bf0265b98b5d48ab919", core.hex(sealed))
    assert.equal(string.rep("\0", 16), core.aes256gcm_open(zero_key, zero_iv, sealed))
  end)

  it("matches test case 16 (additional data) and opens it back", function()
    local key = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
    local iv = unhex("cafebabefacedbaddecaf888")
    local pt = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" ..
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
    local aad = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    local sealed = core.aes256gcm_seal(key, iv, pt, aad)
    assert.equal("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" ..
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662" ..
      "76fc6ece0f4e1768cddf8853bb2d551b", core.hex(sealed))
    assert.equal(pt, core.aes256gcm_open(key, iv, sealed, aad))
  end)

  it("refuses a changed byte, a wrong key, other additional data or a short input", function()
    local key = core.random_bytes(32)
    local iv = core.random_bytes(12)
    local sealed = core.aes256gcm_seal(key, iv, "registry layer", "blob")
    local flipped = string.char((sealed:byte(1) + 1) % 256) .. sealed:sub(2)
    for _, case in ipairs({ { key, flipped, "blob" }, { core.random_bytes(32), sealed, "blob" },
      { key, sealed, "other" }, { key, sealed, nil }, { key, "short", "blob" } }) do
      local out, err = core.aes256gcm_open(case[1], iv, case[2], case[3])
      assert.is_nil(out)
      assert.matches("^aes256gcm_open: ", err)
    end
    assert.equal("registry layer", core.aes256gcm_open(key, iv, sealed, "blob"))
  end)

  it("round-trips binary data of several sizes", function()
    local key, iv = core.random_bytes(32), core.random_bytes(12)
    for _, n in ipairs({ 1, 15, 16, 17, 4096, 100000 }) do
      local pt = string.rep(core.random_bytes(math.min(n, 4096)), math.ceil(n / 4096)):sub(1, n)
      local sealed = core.aes256gcm_seal(key, iv, pt)
      assert.equal(n + 16, #sealed)
      assert.equal(pt, core.aes256gcm_open(key, iv, sealed))
    end
  end)

  it("raises on a key or IV of the wrong size (programmer error)", function()
    assert.has_error(function() core.aes256gcm_seal(string.rep("k", 16), zero_iv, "x") end)
    assert.has_error(function() core.aes256gcm_open(zero_key, string.rep("i", 16), string.rep("x", 20)) end)
  end)
end)
