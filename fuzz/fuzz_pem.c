/* fuzz_pem - PEM keys, PEM bundles, PKCS#12 and certificates through the real Lua entry
 * points. The first byte picks the parser; the rest is the input. Password: "pw". */
#include <stdint.h>
#include "fuzz_lua.h"

static void cert_methods(lua_State *L, int c) {
  static const char *const m[] = {"der", "x5t", "x5t_s256", "subject", "not_after", "pubkey"};
  size_t i;
  if (lua_type(L, c) != LUA_TUSERDATA) return;
  for (i = 0; i < sizeof m / sizeof m[0]; i++) {
    fuzz_method(L, c, m[i]);
    fuzz_call(L, 1);
  }
  luaL_tolstring(L, c, NULL);  /* __tostring */
  lua_pop(L, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const fns[] = {"pkey_from_pem", "load_pem", "load_pkcs12", "cert_from_pem",
                                    "cert_from_der", "pkey_from_pem"};
  lua_State *L = fuzz_state();
  int which, n;
  if (size < 1) return 0;
  which = data[0] % 6;
  fuzz_fn(L, fns[which]);
  lua_pushlstring(L, (const char *)data + 1, size - 1);
  if (which == 5) lua_pushnil(L); else lua_pushliteral(L, "pw");
  n = fuzz_call(L, which >= 3 && which <= 4 ? 1 : 2);
  if (n >= 1 && lua_type(L, 2) == LUA_TTABLE) {  /* bundle */
    lua_getfield(L, 2, "cert");
    cert_methods(L, lua_gettop(L));
    lua_getfield(L, 2, "key");
    if (lua_type(L, -1) == LUA_TUSERDATA) {
      int k = lua_gettop(L);
      fuzz_method(L, k, "jwk"); lua_pushboolean(L, 1); fuzz_call(L, 2);
    }
    lua_getfield(L, 2, "chain");
    if (lua_type(L, -1) == LUA_TTABLE) {
      int t = lua_gettop(L), i;
      for (i = 1; i <= 4; i++) {
        lua_rawgeti(L, t, i);
        cert_methods(L, lua_gettop(L));
      }
    }
  } else if (n >= 1 && lua_type(L, 2) == LUA_TUSERDATA) {
    if (which >= 3 && which <= 4) cert_methods(L, 2);
    else { fuzz_method(L, 2, "jwk"); lua_pushboolean(L, 1); fuzz_call(L, 2); }
  }
  fuzz_done(L);
  return 0;
}
