/* fuzz_jwk - pkey_from_jwk through the real Lua entry point, then every method on a key
 * it accepts. Input: '|'-separated values for kty, n, e, d, p, q, dp, dq, qi; an empty
 * value leaves the member out (nil). */
#include <stdint.h>
#include <string.h>
#include "fuzz_lua.h"

static const char *const FIELDS[] = {"kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = fuzz_state();
  size_t start = 0, i, f = 0;
  int key;
  fuzz_fn(L, "pkey_from_jwk");
  lua_newtable(L);
  for (i = 0; i <= size && f < sizeof FIELDS / sizeof FIELDS[0]; i++) {
    if (i == size || data[i] == '|') {
      if (i > start) {
        lua_pushlstring(L, (const char *)data + start, i - start);
        lua_setfield(L, -2, FIELDS[f]);
      }
      f++;
      start = i + 1;
    }
  }
  if (fuzz_call(L, 1) >= 1 && lua_type(L, 2) == LUA_TUSERDATA) {
    key = 2;
    fuzz_method(L, key, "jwk"); lua_pushboolean(L, 1); fuzz_call(L, 2);
    fuzz_method(L, key, "pem"); lua_pushboolean(L, 1); fuzz_call(L, 2);
    fuzz_method(L, key, "pem"); fuzz_call(L, 1);
    fuzz_method(L, key, "bits"); fuzz_call(L, 1);
    fuzz_method(L, key, "encrypt"); lua_pushliteral(L, "RSA-OAEP-256"); lua_pushliteral(L, "k");
    if (fuzz_call(L, 3) == 1 && lua_type(L, -1) == LUA_TSTRING) {
      int ct = lua_gettop(L);
      fuzz_method(L, key, "decrypt"); lua_pushliteral(L, "RSA-OAEP-256"); lua_pushvalue(L, ct);
      fuzz_call(L, 3);
    }
    fuzz_method(L, key, "sign"); lua_pushliteral(L, "PS256"); lua_pushliteral(L, "m");
    if (fuzz_call(L, 3) == 1 && lua_type(L, -1) == LUA_TSTRING) {
      int sig = lua_gettop(L);
      fuzz_method(L, key, "verify"); lua_pushliteral(L, "PS256"); lua_pushliteral(L, "m");
      lua_pushvalue(L, sig);
      fuzz_call(L, 4);
    }
    fuzz_method(L, key, "decrypt"); lua_pushliteral(L, "RSA1_5"); lua_pushlstring(L, (const char *)data, size);
    fuzz_call(L, 3);
    fuzz_method(L, key, "close"); fuzz_call(L, 1);
  }
  fuzz_done(L);
  return 0;
}
