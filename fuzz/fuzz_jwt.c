/* fuzz_jwt - jwt_decode and jwt_verify through the real Lua entry points with the RFC 7515
 * A.2 public key, plus the header "alg" scanner on the raw input. The first byte picks the
 * expected alg. */
#include <stdint.h>
#include <string.h>
#include "fuzz_lua.h"
#include "jwt.h"

static const char N[] =
  "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-"
  "SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-"
  "UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2eth"
  "FkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  char alg[32];
  if (size < 1) return 0;
  (void)azcmk_json_top_string((const char *)data + 1, size - 1, "alg", alg, sizeof alg);
  lua_getglobal(L, "rfc_key");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    fuzz_fn(L, "pkey_from_jwk");
    lua_newtable(L);
    lua_pushliteral(L, "RSA"); lua_setfield(L, -2, "kty");
    lua_pushstring(L, N); lua_setfield(L, -2, "n");
    lua_pushliteral(L, "AQAB"); lua_setfield(L, -2, "e");
    if (fuzz_call(L, 1) < 1 || lua_type(L, -1) != LUA_TUSERDATA) abort();
    lua_setglobal(L, "rfc_key");
    lua_getglobal(L, "rfc_key");
  }
  fuzz_fn(L, "jwt_verify");
  lua_pushlstring(L, (const char *)data + 1, size - 1);
  lua_pushvalue(L, 2);
  lua_pushstring(L, data[0] & 1 ? "PS256" : "RS256");
  fuzz_call(L, 3);
  fuzz_fn(L, "jwt_decode");
  lua_pushlstring(L, (const char *)data + 1, size - 1);
  fuzz_call(L, 1);
  fuzz_done(L);
  return 0;
}
