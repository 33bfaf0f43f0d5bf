--- azcmk.crypto: the core's crypto functions (docs/core-api.md) plus JSON-level JWT helpers.
-- Thin face in the luaossl style: everything here is `azcmk.core`'s C function, except
-- `jwt_encode` / `jwt_decode_verified` / `jwt_decode_unverified`, which add lua-cjson.
local core = require "azcmk.core"
local cjson = require "cjson.safe"

local M = {}

local NAMES = {
  "b64url_encode", "b64url_decode", "b64_encode", "b64_decode", "hex",
  "sha1", "sha256", "hmac_sha256", "random_bytes", "uuid4",
  "rsa_generate", "pkey_from_jwk", "pkey_from_pem",
  "load_pem", "load_pkcs12", "cert_from_pem", "cert_from_der",
  "jwt_sign", "jwt_decode", "jwt_verify",
}
for _, name in ipairs(NAMES) do
  M[name] = assert(core[name], name)
end

local function decode_object(json, what)
  local t, err = cjson.decode(json)
  if type(t) ~= "table" then
    return nil, what .. " is not a JSON object" .. (err and (": " .. err) or "")
  end
  return t
end

-- The header and payload JSON of a token as tables; passes on a core failure (nil, err).
local function decode_parts(hj, pj)
  if not hj then return nil, pj end
  local h, herr = decode_object(hj, "jwt header")
  if not h then return nil, herr end
  local p, perr = decode_object(pj, "jwt payload")
  if not p then return nil, perr end
  return h, p
end

--- Signs a JWT from Lua tables. header.alg is set to alg; header.typ defaults to "JWT".
-- @return compact token, or nil, err
function M.jwt_encode(header, payload, pkey, alg)
  if type(header) ~= "table" then error("bad argument #1 to 'jwt_encode' (table expected)", 2) end
  if type(payload) ~= "table" then error("bad argument #2 to 'jwt_encode' (table expected)", 2) end
  local h = {}
  for k, v in pairs(header) do h[k] = v end
  h.alg = alg
  if h.typ == nil then h.typ = "JWT" end
  local hj, err = cjson.encode(h)
  if not hj then return nil, "jwt_encode: header: " .. tostring(err) end
  local pj, perr = cjson.encode(payload)
  if not pj then return nil, "jwt_encode: payload: " .. tostring(perr) end
  return core.jwt_sign(hj, pj, pkey, alg)
end

--- Verifies a token with pkey and alg and returns its header and payload as tables.
-- @return header, payload, or nil, err
function M.jwt_decode_verified(token, pkey, alg)
  return decode_parts(core.jwt_verify(token, pkey, alg))
end

--- Decodes a token WITHOUT verifying it (for display and troubleshooting only).
-- @return header, payload, or nil, err
function M.jwt_decode_unverified(token)
  return decode_parts(core.jwt_decode(token))
end

return M
