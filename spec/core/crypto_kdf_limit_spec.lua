-- Password key derivation is bounded (src/pkey.c, src/cert.c; docs/crypto.md): an encrypted
-- PKCS#8 key, or a PKCS#12 file summed over its MAC-less parts, may ask for at most 10,000,000
-- iterations (scrypt: N*r*p), refused before any derivation runs. The crafted files are real
-- `openssl` CLI output whose iteration counts are rewritten in the DER below (a count that
-- high would take the CLI seconds to write); a refusal that came after the derivation
-- would still show up, as seconds spent and a different error.
local core = require "azcmk.core"
local h = require "core.crypto_helper"

local LIMIT = 10000000

-- ---- a small DER codec: nodes are { tag = byte, value = string } or { tag, kids = {...} } ----
local der = {}

function der.decode(s)
  local function node(i)
    local tag, len, j = s:byte(i), s:byte(i + 1), i + 2
    if len >= 0x80 then
      local n = len - 0x80
      len = 0
      for k = 0, n - 1 do len = len * 256 + s:byte(j + k) end
      j = j + n
    end
    local n = { tag = tag }
    local stop = j + len
    if tag % 0x40 >= 0x20 then  -- constructed
      n.kids = {}
      while j < stop do n.kids[#n.kids + 1], j = node(j) end
    else
      n.value = s:sub(j, stop - 1)
    end
    return n, stop
  end
  local root, stop = node(1)
  assert(stop == #s + 1, "trailing bytes after DER")
  return root
end

function der.encode(n)
  local body = n.value
  if n.kids then
    local parts = {}
    for i, k in ipairs(n.kids) do parts[i] = der.encode(k) end
    body = table.concat(parts)
  end
  local len, lb = #body, ""
  if len < 0x80 then
    lb = string.char(len)
  else
    while len > 0 do lb, len = string.char(len % 256) .. lb, math.floor(len / 256) end
    lb = string.char(0x80 + #lb) .. lb
  end
  return string.char(n.tag) .. lb .. body
end

function der.int(v)  -- non-negative INTEGER content (a hex string is taken as raw octets)
  if type(v) == "string" then return h.unhex(v) end
  local s = ""
  repeat s, v = string.char(v % 256) .. s, math.floor(v / 256) until v == 0
  if s:byte(1) >= 0x80 then s = "\0" .. s end
  return s
end

local OID = {
  pbes2 = h.unhex("2a864886f70d01050d"), pbkdf2 = h.unhex("2a864886f70d01050c"),
  scrypt = h.unhex("2b06010401da47040b"), data = h.unhex("2a864886f70d010701"),
  encrypted_data = h.unhex("2a864886f70d010706"), shrouded = h.unhex("2a864886f70d010c0a0102"),
}

-- Rewrites the cost of a password-based encryption AlgorithmIdentifier node: `iter` for
-- PBKDF2 and PBES1 / PKCS#12 PBE, or { N, r, p } for scrypt.
local function set_cost(alg, iter)
  local params = alg.kids[2]
  if alg.kids[1].value == OID.pbes2 then
    local kdf = params.kids[1]
    if kdf.kids[1].value == OID.scrypt then
      for i = 1, 3 do kdf.kids[2].kids[i + 1].value = der.int(iter[i]) end
      return
    end
    assert(kdf.kids[1].value == OID.pbkdf2)
    params = kdf.kids[2]
  end
  params.kids[2].value = der.int(iter)
end

-- An encrypted PKCS#8 PEM with its cost rewritten.
local function pem_with_cost(pem, iter)
  local b64 = pem:match("%-%-%-%-%-BEGIN ENCRYPTED PRIVATE KEY%-%-%-%-%-\n(.-)%-%-%-%-%-END")
  local root = der.decode(assert(core.b64_decode((b64:gsub("%s", "")))))
  set_cost(root.kids[1], iter)
  local out = core.b64_encode(der.encode(root)):gsub(("."):rep(64), "%0\n"):gsub("\n$", "")
  return "-----BEGIN ENCRYPTED PRIVATE KEY-----\n" .. out .. "\n-----END ENCRYPTED PRIVATE KEY-----\n"
end

-- A PKCS#12 file with rewritten counts: opts.mac, opts.safe (every encrypted safe), opts.key
-- (every shrouded key bag in a plain safe). Content with a MAC over it keeps its MAC only
-- when just opts.mac changes.
local function p12_with_cost(p12, opts)
  local pfx = der.decode(p12)
  if opts.mac then pfx.kids[3].kids[3].value = der.int(opts.mac) end
  local oct = pfx.kids[2].kids[2].kids[1]  -- ContentInfo data, [0], OCTET STRING
  local safes = der.decode(oct.value)
  for _, ci in ipairs(safes.kids) do
    if ci.kids[1].value == OID.encrypted_data and opts.safe then
      set_cost(ci.kids[2].kids[1].kids[2].kids[2], opts.safe)  -- [0] EncryptedData, content info, alg
    elseif ci.kids[1].value == OID.data and opts.key then
      local o = ci.kids[2].kids[1]
      local bags = der.decode(o.value)
      for _, bag in ipairs(bags.kids) do
        if bag.kids[1].value == OID.shrouded then set_cost(bag.kids[2].kids[1].kids[1], opts.key) end
      end
      o.value = der.encode(bags)
    end
  end
  oct.value = der.encode(safes)
  return der.encode(pfx)
end

describe("crypto key-derivation limit", function()
  local keyf, certf, PRIV, CERT

  setup(function()
    keyf, certf = h.tmpfile(), h.tmpfile()
    h.sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout " .. keyf .. " -out " .. certf
      .. " -subj /CN=kdf -days 1")
    PRIV = assert(core.pkey_from_pem(h.read(keyf))):jwk(true)
    CERT = h.read(certf)
  end)

  teardown(function() h.cleanup() end)

  local function pkcs8(opts)
    local out = h.tmpfile()
    h.sh("openssl pkcs8 -topk8 -in " .. keyf .. " " .. opts .. " -passout pass:pw -out " .. out)
    return h.read(out)
  end

  local function pkcs12(opts, pass)
    local out = h.tmpfile()
    h.sh("openssl pkcs12 -export -in " .. certf .. " -inkey " .. keyf .. " " .. opts
      .. " -passout pass:" .. (pass or "pw") .. " -out " .. out)
    return h.read(out)
  end

  local function refused(pat, k, err)
    assert.is_nil(k)
    assert.matches(pat, err, 1, true)
    assert.matches("re-export it with fewer iterations", err, 1, true)
  end

  describe("encrypted PKCS#8", function()
    it("keys at common counts still load (OpenSSL's 2048, Java's 10000, PBES1)", function()
      for _, opts in ipairs({ "-v2 aes-256-cbc", "-v2 aes-256-cbc -iter 10000", "-v1 PBE-SHA1-3DES" }) do
        local pem = pkcs8(opts)
        assert.same(PRIV, assert(core.pkey_from_pem(pem, "pw")):jwk(true), opts)
        assert.same(PRIV, assert(core.load_pem(CERT .. pem, "pw")).key:jwk(true), opts)
        -- the DER rewrite itself keeps a loadable key
        local same = pem_with_cost(pem, tonumber(opts:match("%-iter (%d+)")) or 2048)
        assert.same(PRIV, assert(core.pkey_from_pem(same, "pw")):jwk(true), opts)
      end
    end)

    it("a scrypt key at OpenSSL's default cost still loads #slow", function()
      assert.same(PRIV, assert(core.pkey_from_pem(pkcs8("-scrypt"), "pw")):jwk(true))
    end)

    it("refuses a PBKDF2 count over the limit, with or without the password", function()
      local pem = pem_with_cost(pkcs8("-v2 aes-256-cbc"), LIMIT + 1)
      local want = "pkey_from_pem: PEM: the key's key-derivation iteration count 10000001 exceeds the limit "
        .. LIMIT
      for _, pass in ipairs({ "pw", "wrong", false }) do
        refused(want, core.pkey_from_pem(pem, pass or nil))
      end
      refused("load_pem: PEM: the key's key-derivation iteration count 10000001",
        core.load_pem(CERT .. pem, "pw"))
      refused("iteration count 2147483647 exceeds", core.pkey_from_pem(pem_with_cost(pem, 2147483647), "pw"))
      refused("iteration count 4294967301 exceeds", core.pkey_from_pem(pem_with_cost(pem, 4294967301), "pw"))
      refused("iteration count is out of range (limit 10000000)",
        core.pkey_from_pem(pem_with_cost(pem, "7fffffffffffffffff"), "pw"))
      -- negative counts: OpenSSL 3.0 reads them into an int (-2147483649 runs 2147483647 rounds)
      for _, neg in ipairs({ "ff7fffffff", "ff01c9c380", "ff" }) do
        refused("iteration count is out of range (limit 10000000)",
          core.pkey_from_pem(pem_with_cost(pem, neg), "pw"))
      end
    end)

    it("refuses PBES1 and scrypt costs over the limit", function()
      refused("iteration count 20000000 exceeds",
        core.pkey_from_pem(pem_with_cost(pkcs8("-v1 PBE-SHA1-3DES"), 20000000), "pw"))
      -- OpenSSL's default scrypt N=16384, r=8 with p=1000
      refused("scrypt cost N*r*p 131072000 exceeds",
        core.pkey_from_pem(pem_with_cost(pkcs8("-scrypt"), { 16384, 8, 1000 }), "pw"))
    end)

    it("looks under a legacy Proc-Type layer around the PKCS#8 block", function()
      local function wrap(pem)  -- the layer OpenSSL's decoder takes off first (EVP_BytesToKey, MD5)
        local iv = "00112233445566778899AABBCCDDEEFF"
        local key = assert(h.sh("openssl enc -aes-128-cbc -md md5 -pass pass:pw -S " .. iv:sub(1, 16)
          .. " -P 2>/dev/null"):match("key=(%x+)"))
        local b64 = pem:match("KEY%-%-%-%-%-\n(.-)%-%-%-%-%-END")
        local inner = h.tmpfile(assert(core.b64_decode((b64:gsub("%s", "")))))
        local ct = h.sh("openssl enc -aes-128-cbc -K " .. key .. " -iv " .. iv .. " -in " .. inner
          .. " | openssl base64")
        return "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC," .. iv
          .. "\n\n" .. ct .. "-----END ENCRYPTED PRIVATE KEY-----\n"
      end
      local pem = pkcs8("-v2 aes-256-cbc")
      assert.same(PRIV, assert(core.pkey_from_pem(wrap(pem), "pw")):jwk(true))
      refused("iteration count 20000000 exceeds",
        core.pkey_from_pem(wrap(pem_with_cost(pem, 20000000)), "pw"))
    end)
  end)

  describe("PKCS#12", function()
    it("files at common counts still load (OpenSSL's 2048, Java's 10000, PKCS#12 PBE)", function()
      local variants = { "", "-iter 10000", "-keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1" }
      for _, opts in ipairs(variants) do
        local b = assert(core.load_pkcs12(pkcs12(opts), "pw"), opts)
        assert.same(PRIV, b.key:jwk(true), opts)
        assert.equal("CN=kdf", b.cert:subject())
      end
    end)

    it("refuses a MAC count over the limit before the MAC is checked", function()
      local p12 = p12_with_cost(pkcs12(""), { mac = LIMIT + 1 })
      refused("load_pkcs12: the file's MAC key-derivation iteration count 10000001 exceeds the limit "
        .. LIMIT, core.load_pkcs12(p12, "pw"))
    end)

    describe("without a MAC (empty password, so the parts decrypt)", function()
      local p12

      setup(function() p12 = pkcs12("-nomac -certpbe AES-256-CBC", "") end)  -- "" alone leaves certs plain

      it("loads as made, and after a rewrite to the same counts", function()
        assert.same(PRIV, assert(core.load_pkcs12(p12)).key:jwk(true))
        local same = p12_with_cost(p12, { safe = 2048, key = 2048 })
        assert.same(PRIV, assert(core.load_pkcs12(same)).key:jwk(true))
      end)

      it("refuses an encrypted safe or a shrouded key bag over the limit", function()
        local want = "load_pkcs12: the file's key-derivation iteration count 20000000 exceeds the limit "
          .. LIMIT
        refused(want, core.load_pkcs12(p12_with_cost(p12, { safe = 20000000 })))
        refused(want, core.load_pkcs12(p12_with_cost(p12, { key = 20000000 })))
        -- a negative count is no "no work": OpenSSL would run it as up to 2^31-1 rounds
        for _, part in ipairs({ "safe", "key" }) do
          refused("load_pkcs12: the file's key-derivation iteration count is out of range",
            core.load_pkcs12(p12_with_cost(p12, { [part] = "ff7fffffff" })))
        end
      end)

      it("sums the counts of its parts", function()
        -- certificates' safe at 2048 (derived), then the key bag: 2048 + 9998000 > limit
        refused("load_pkcs12: the file's key-derivation iteration count (summed) 10000048 exceeds",
          core.load_pkcs12(p12_with_cost(p12, { key = LIMIT - 2000 })))
      end)
    end)
  end)
end)
