/* core.c - entry point of the C module `azcmk.core`.
 * Layer 1: HTTP (libcurl) and crypto (OpenSSL), no Azure knowledge. */
#include "azcmk.h"

int luaopen_azcmk_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, AZCMK_VERSION);
  lua_setfield(L, -2, "version");
#if LUA_VERSION_NUM < 502
  lua_pushliteral(L, "luajit");
#else
  lua_pushliteral(L, "lua5.4");
#endif
  lua_setfield(L, -2, "abi");
  azcmk_crypto_register(L);
  azcmk_http_register(L);
  azcmk_clock_register(L);
  return 1;
}
