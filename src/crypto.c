/* crypto.c - registers the crypto part of azcmk.core and holds its shared error helper.
 * The functions live in encoding.c, hash.c, cipher.c, pkey.c, cert.c and jwt.c (docs/core-api.md). */
#include <stdio.h>
#include <openssl/err.h>
#include "crypto.h"

const char *azcmk_crypto_errmsg(char *buf, size_t size, const char *what, const char *fallback) {
  unsigned long e = ERR_peek_last_error();
  const char *reason = e ? ERR_reason_error_string(e) : NULL;
  if (!reason) reason = fallback ? fallback : "failed";
  snprintf(buf, size, "%s: %s", what, reason);
  ERR_clear_error();
  return buf;
}

int azcmk_crypto_fail(lua_State *L, const char *what, const char *fallback) {
  char buf[256];
  azcmk_crypto_errmsg(buf, sizeof buf, what, fallback);
  lua_pushnil(L);
  lua_pushstring(L, buf);
  return 2;
}

void azcmk_crypto_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction tostring) {
  luaL_newmetatable(L, mt);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_getfield(L, -1, "close");  /* one function object for close, __gc and __close */
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "__gc");
  lua_setfield(L, -3, "__close");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, mt);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

void azcmk_crypto_register(lua_State *L) {
  azcmk_encoding_register(L);
  azcmk_hash_register(L);
  azcmk_pkey_register(L);
  azcmk_cert_register(L);
  azcmk_jwt_register(L);
  azcmk_cipher_register(L);
}
