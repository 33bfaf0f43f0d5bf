/* hash.c - SHA-1, SHA-256 and HMAC-SHA256 through EVP (docs/core-api.md). */
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include "crypto.h"

static int digest(lua_State *L, const char *name) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD *m = EVP_MD_fetch(NULL, name, NULL);
  int ok = m && EVP_Digest(s, n, md, &len, m, NULL) == 1;
  EVP_MD_free(m);
  if (!ok) return azcmk_crypto_fail(L, name, NULL);
  lua_pushlstring(L, (const char *)md, len);
  return 1;
}

static int l_sha1(lua_State *L) { return digest(L, "SHA1"); }
static int l_sha256(lua_State *L) { return digest(L, "SHA256"); }

static int l_hmac_sha256(lua_State *L) {
  size_t kn, n, len = 0;
  const char *key = luaL_checklstring(L, 1, &kn);
  const char *data = luaL_checklstring(L, 2, &n);
  unsigned char mac[EVP_MAX_MD_SIZE];
  /* EVP_Q_mac: one-shot EVP_MAC (HMAC with digest SHA256); keys of any length. */
  if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, kn,
                 (const unsigned char *)data, n, mac, sizeof mac, &len))
    return azcmk_crypto_fail(L, "hmac_sha256", NULL);
  lua_pushlstring(L, (const char *)mac, len);
  OPENSSL_cleanse(mac, sizeof mac);
  return 1;
}

void azcmk_hash_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"sha1", l_sha1}, {"sha256", l_sha256}, {"hmac_sha256", l_hmac_sha256}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
