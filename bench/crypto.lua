--- bench/crypto.lua: RSA-2048 RS256 sign/s and RSA-OAEP-256 encrypt/s through azcmk from Lua,
-- and pkey_from_pem calls/s (PKCS#8 private, SubjectPublicKeyInfo public).
-- Usage: lua5.4 bench/crypto.lua [seconds]   (prints "name ops/s" lines; run by bench/crypto.sh)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local core = require "azcmk.core"

local seconds = tonumber(arg and arg[1]) or 3

local function rate(name, fn)
  for _ = 1, 20 do fn() end  -- warm-up
  local n, t0 = 0, os.clock()
  local deadline = t0 + seconds
  local now = t0
  while now < deadline do
    for _ = 1, 50 do fn() end
    n = n + 50
    now = os.clock()
  end
  local r = n / (now - t0)
  print(string.format("%s %.1f", name, r))
  return r
end

local key = core.rsa_generate(2048)
local pub = assert(core.pkey_from_pem(key:pem()))
local cek = core.random_bytes(32)            -- a content-encryption key, as Key Vault wraps
local input = core.b64url_encode('{"alg":"RS256","typ":"JWT"}') .. "."
  .. core.b64url_encode('{"aud":"https://vault.azure.net","iss":"x","sub":"x","exp":1}')

rate("azcmk_rs256_sign", function() key:sign("RS256", input) end)
rate("azcmk_oaep256_encrypt", function() pub:encrypt("RSA-OAEP-256", cek) end)
-- for the explanation in bench/README.md: the same public-key op without OAEP, and verify
local sig = key:sign("RS256", input)
rate("azcmk_rsa15_encrypt", function() pub:encrypt("RSA1_5", cek) end)
rate("azcmk_rs256_verify", function() pub:verify("RS256", input, sig) end)
-- PEM decoding (bench/README.md): what loading a pool key or a peer's public key costs
local privpem, pubpem = key:pem(true), key:pem()
rate("azcmk_pkey_from_pem_private", function() core.pkey_from_pem(privpem) end)
rate("azcmk_pkey_from_pem_public", function() core.pkey_from_pem(pubpem) end)
