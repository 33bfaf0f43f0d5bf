/* cipher.c - AES-256-GCM sealing and opening through EVP (docs/core-api.md).
 * seal(key32, iv12, plaintext[, aad]) -> ciphertext .. tag16
 * open(key32, iv12, sealed[, aad])    -> plaintext | nil, "aes256gcm_open: authentication failed" */
#include <string.h>
#include <openssl/evp.h>
#include <openssl/crypto.h>
#include "crypto.h"

#define TAG_LEN 16

/* Checks the key and IV arguments: wrong sizes are programmer errors (raised). */
static void key_iv(lua_State *L, const unsigned char **key, const unsigned char **iv) {
  size_t kn, ivn;
  *key = (const unsigned char *)luaL_checklstring(L, 1, &kn);
  *iv = (const unsigned char *)luaL_checklstring(L, 2, &ivn);
  luaL_argcheck(L, kn == 32, 1, "key must be 32 bytes");
  luaL_argcheck(L, ivn == 12, 2, "iv must be 12 bytes");
}

/* Runs one GCM pass; out must hold n bytes (+ TAG_LEN when sealing). Returns the output length or -1. */
static int gcm(int enc, const unsigned char *key, const unsigned char *iv, const unsigned char *in, size_t n,
               const unsigned char *aad, size_t an, const unsigned char *tag, unsigned char *out) {
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int len = 0, fin = 0, ok = ctx && n <= 0x7fffffff && an <= 0x7fffffff &&
    EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, iv, enc) == 1 &&
    (an == 0 || EVP_CipherUpdate(ctx, NULL, &len, aad, (int)an) == 1) &&
    EVP_CipherUpdate(ctx, out, &len, in, (int)n) == 1 &&
    (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)tag) == 1) &&
    EVP_CipherFinal_ex(ctx, out + len, &fin) == 1 &&
    (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + len + fin) == 1);
  EVP_CIPHER_CTX_free(ctx);
  return ok ? len + fin : -1;
}

static int l_seal(lua_State *L) {
  const unsigned char *key, *iv;
  size_t n, an = 0;
  key_iv(L, &key, &iv);
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 3, &n);
  const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 4, "", &an);
  /* scratch space as a userdata: collected with the state, so a raised error leaks nothing */
  unsigned char *out = (unsigned char *)azcmk_newuserdata(L, n + TAG_LEN);
  int len = gcm(1, key, iv, in, n, aad, an, NULL, out);
  if (len < 0) return azcmk_crypto_fail(L, "aes256gcm_seal", NULL);
  lua_pushlstring(L, (const char *)out, (size_t)len + TAG_LEN);
  return 1;
}

static int l_open(lua_State *L) {
  const unsigned char *key, *iv;
  size_t n, an = 0;
  key_iv(L, &key, &iv);
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 3, &n);
  const unsigned char *aad = (const unsigned char *)luaL_optlstring(L, 4, "", &an);
  if (n < TAG_LEN) return azcmk_crypto_fail(L, "aes256gcm_open", "input shorter than the tag");
  unsigned char *out = (unsigned char *)azcmk_newuserdata(L, n - TAG_LEN + 1);
  int len = gcm(0, key, iv, in, n - TAG_LEN, aad, an, in + n - TAG_LEN, out);
  if (len < 0) {
    OPENSSL_cleanse(out, n - TAG_LEN + 1);  /* unauthenticated output never lingers */
    return azcmk_crypto_fail(L, "aes256gcm_open", "authentication failed");
  }
  lua_pushlstring(L, (const char *)out, (size_t)len);
  OPENSSL_cleanse(out, (size_t)len);
  return 1;
}

void azcmk_cipher_register(lua_State *L) {
  static const luaL_Reg fns[] = {{"aes256gcm_seal", l_seal}, {"aes256gcm_open", l_open}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
