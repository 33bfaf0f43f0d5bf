/* encoding.c - base64, base64url, hex, random bytes and UUID v4 (docs/core-api.md). */
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include "crypto.h"
#include "encoding.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t azcmk_b64_encoded_len(size_t n, int url) {
  if (!url) return (n + 2) / 3 * 4;
  return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t azcmk_b64_encode(const unsigned char *in, size_t n, char *out, int url) {
  const char *a = url ? B64URL : B64;
  size_t i = 0, o = 0;
  for (; i + 3 <= n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
    out[o++] = a[v >> 18 & 63]; out[o++] = a[v >> 12 & 63];
    out[o++] = a[v >> 6 & 63];  out[o++] = a[v & 63];
  }
  if (n - i == 1) {
    unsigned v = (unsigned)in[i] << 16;
    out[o++] = a[v >> 18 & 63]; out[o++] = a[v >> 12 & 63];
    if (!url) { out[o++] = '='; out[o++] = '='; }
  } else if (n - i == 2) {
    unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
    out[o++] = a[v >> 18 & 63]; out[o++] = a[v >> 12 & 63]; out[o++] = a[v >> 6 & 63];
    if (!url) out[o++] = '=';
  }
  return o;
}

size_t azcmk_b64_decoded_max(size_t n) { return n / 4 * 3 + 3; }

static int b64val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

int azcmk_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen) {
  size_t pad = 0, i, o = 0, rem;
  unsigned acc = 0;
  while (n > 0 && in[n - 1] == '=' && pad < 2) { n--; pad++; }
  rem = n % 4;
  if (rem == 1) return -1;                               /* 6 bits cannot make a byte */
  if (pad && (rem == 0 || (4 - rem) != pad)) return -1;  /* padding must complete a quantum */
  for (i = 0; i < n; i++) {
    int v = b64val((unsigned char)in[i]);
    if (v < 0) return -1;                                /* includes '=' inside the text */
    acc = acc << 6 | (unsigned)v;
    if (i % 4 == 3) {
      out[o++] = (unsigned char)(acc >> 16); out[o++] = (unsigned char)(acc >> 8);
      out[o++] = (unsigned char)acc; acc = 0;
    }
  }
  if (rem == 2) {
    if (acc & 0xf) return -1;                            /* non-zero trailing bits */
    out[o++] = (unsigned char)(acc >> 4);
  } else if (rem == 3) {
    if (acc & 0x3) return -1;
    out[o++] = (unsigned char)(acc >> 10); out[o++] = (unsigned char)(acc >> 2);
  }
  *outlen = o;
  return 0;
}

void azcmk_hex(const unsigned char *in, size_t n, char *out) {
  static const char H[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; i++) { out[2 * i] = H[in[i] >> 4]; out[2 * i + 1] = H[in[i] & 15]; }
}

static int encode(lua_State *L, int url) {
  size_t n, m;
  const char *s = luaL_checklstring(L, 1, &n);
  char *out = OPENSSL_malloc(azcmk_b64_encoded_len(n, url) + 1);
  if (!out) return luaL_error(L, "out of memory");
  m = azcmk_b64_encode((const unsigned char *)s, n, out, url);
  lua_pushlstring(L, out, m);
  OPENSSL_free(out);
  return 1;
}

/* Decoded bytes may be key material (JWK fields): wiped before free. */
static int decode(lua_State *L) {
  size_t n, m = 0, cap;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char *out = OPENSSL_malloc(cap = azcmk_b64_decoded_max(n));
  if (!out) return luaL_error(L, "out of memory");
  if (azcmk_b64_decode(s, n, out, &m) != 0) {
    OPENSSL_clear_free(out, cap);
    lua_pushnil(L);
    lua_pushliteral(L, "invalid base64");
    return 2;
  }
  lua_pushlstring(L, (const char *)out, m);
  OPENSSL_clear_free(out, cap);
  return 1;
}

static int l_b64url_encode(lua_State *L) { return encode(L, 1); }
static int l_b64_encode(lua_State *L) { return encode(L, 0); }
static int l_b64_decode(lua_State *L) { return decode(L); }

static int l_hex(lua_State *L) {
  size_t n;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
  char *out = OPENSSL_malloc(2 * n + 1);
  if (!out) return luaL_error(L, "out of memory");
  azcmk_hex(s, n, out);
  lua_pushlstring(L, out, 2 * n);
  OPENSSL_free(out);
  return 1;
}

static int l_random_bytes(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  unsigned char *buf;
  luaL_argcheck(L, n >= 1 && n <= 65536, 1, "size must be between 1 and 65536");
  buf = OPENSSL_malloc((size_t)n);
  if (!buf) return luaL_error(L, "out of memory");
  if (RAND_bytes(buf, (int)n) != 1) {
    OPENSSL_clear_free(buf, (size_t)n);
    return azcmk_crypto_fail(L, "random_bytes", "CSPRNG failure");
  }
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  OPENSSL_clear_free(buf, (size_t)n);
  return 1;
}

static int l_uuid4(lua_State *L) {
  unsigned char b[16];
  char hex[32], out[36];
  size_t i, o = 0;
  if (RAND_bytes(b, sizeof b) != 1) return azcmk_crypto_fail(L, "uuid4", "CSPRNG failure");
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);  /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);  /* RFC 4122 variant */
  azcmk_hex(b, sizeof b, hex);
  for (i = 0; i < 32; i++) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[o++] = '-';
    out[o++] = hex[i];
  }
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

void azcmk_encoding_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"b64url_encode", l_b64url_encode}, {"b64url_decode", l_b64_decode},
    {"b64_encode", l_b64_encode},       {"b64_decode", l_b64_decode},
    {"hex", l_hex}, {"random_bytes", l_random_bytes}, {"uuid4", l_uuid4},
    {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
