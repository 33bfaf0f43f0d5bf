/* jwt.c - compact JWS (JWT) build, decode and verify with RS256 / PS256
 * (docs/core-api.md, "JWT"). JSON itself is written and parsed in Lua; C only finds the
 * header's "alg" so that verification can refuse "none" and algorithm confusion. */
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include "crypto.h"
#include "encoding.h"
#include "jwt.h"
#include "pkey.h"

/* ---- a minimal scanner for the top level of a JSON object ---- */

typedef struct { const char *s; size_t n, i; } scan;

static void ws(scan *c) {
  while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
    c->i++;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Parses a string at c->i (on the opening quote). Copies the unescaped text to out when
 * out is not NULL (non-ASCII \u escapes become 0x01, which never matches a name);
 * *len gets its length, or outsize when it did not fit. Returns 0 or -1. */
static int string(scan *c, char *out, size_t outsize, size_t *len) {
  size_t o = 0;
  if (c->i >= c->n || c->s[c->i] != '"') return -1;
  c->i++;
  while (c->i < c->n) {
    unsigned char ch = (unsigned char)c->s[c->i++];
    if (ch == '"') {
      if (out && o < outsize) out[o] = '\0';
      if (len) *len = o < outsize ? o : outsize;
      return 0;
    }
    if (ch < 0x20) return -1;
    if (ch == '\\') {
      if (c->i >= c->n) return -1;
      ch = (unsigned char)c->s[c->i++];
      switch (ch) {
        case '"': case '\\': case '/': break;
        case 'b': ch = '\b'; break;
        case 'f': ch = '\f'; break;
        case 'n': ch = '\n'; break;
        case 'r': ch = '\r'; break;
        case 't': ch = '\t'; break;
        case 'u': {
          int k, v = 0;
          if (c->n - c->i < 4) return -1;
          for (k = 0; k < 4; k++) {
            int h = hexval(c->s[c->i++]);
            if (h < 0) return -1;
            v = v << 4 | h;
          }
          ch = v > 0 && v < 0x80 ? (unsigned char)v : 0x01;
          break;
        }
        default: return -1;
      }
    }
    if (out && o < outsize) out[o] = (char)ch;
    if (o < outsize) o++;
  }
  return -1;
}

/* Skips one value (string, number, literal, or a nested object/array, brackets matched
 * and strings respected). Returns 0 or -1. */
static int skip_value(scan *c) {
  size_t start = c->i;
  int depth = 0;
  ws(c);
  if (c->i >= c->n) return -1;
  if (c->s[c->i] == '"') return string(c, NULL, 0, NULL);
  if (c->s[c->i] != '{' && c->s[c->i] != '[') {
    start = c->i;
    while (c->i < c->n && (strchr("+-.eE", c->s[c->i]) ||
                           (c->s[c->i] >= '0' && c->s[c->i] <= '9') ||
                           (c->s[c->i] >= 'a' && c->s[c->i] <= 'z')))
      c->i++;
    return c->i > start ? 0 : -1;
  }
  while (c->i < c->n) {
    char ch = c->s[c->i];
    if (ch == '"') { if (string(c, NULL, 0, NULL)) return -1; continue; }
    if (ch == '{' || ch == '[') { if (++depth > 64) return -1; }
    else if (ch == '}' || ch == ']') {
      if (--depth == 0) { c->i++; return 0; }
    }
    c->i++;
  }
  return -1;
}

int azcmk_json_top_string(const char *json, size_t n, const char *key, char *out, size_t outsize) {
  scan c = {json, n, 0};
  char name[64];
  size_t namelen, klen = strlen(key);
  int found = 0;
  ws(&c);
  if (c.i >= n || json[c.i] != '{') return -1;
  c.i++;
  ws(&c);
  if (c.i < n && json[c.i] == '}') { c.i++; goto end; }
  for (;;) {
    ws(&c);
    if (string(&c, name, sizeof name, &namelen)) return -1;
    ws(&c);
    if (c.i >= n || json[c.i] != ':') return -1;
    c.i++;
    ws(&c);
    if (namelen == klen && klen < sizeof name && memcmp(name, key, klen) == 0) {
      size_t vlen;
      if (found) return -1;  /* a repeated key is ambiguous: refuse */
      if (c.i >= n || json[c.i] != '"' || string(&c, out, outsize, &vlen)) return -1;
      if (vlen >= outsize) return -1;
      found = 1;
    } else if (skip_value(&c)) {
      return -1;
    }
    ws(&c);
    if (c.i < n && json[c.i] == ',') { c.i++; continue; }
    if (c.i < n && json[c.i] == '}') { c.i++; break; }
    return -1;
  }
end:
  ws(&c);
  return c.i == n ? found : -1;
}

int azcmk_jwt_split(const char *tok, size_t n, size_t dots[2]) {
  size_t i, k = 0;
  for (i = 0; i < n; i++)
    if (tok[i] == '.') {
      if (k == 2) return -1;
      dots[k++] = i;
    }
  return k == 2 ? 0 : -1;
}

/* ---- Lua functions ---- */

/* Pushes the base64url-decoded s[0..n), or returns 0 when it is not base64url. */
static int push_b64(lua_State *L, const char *s, size_t n) {
  size_t cap = azcmk_b64_decoded_max(n), m = 0;
  unsigned char *buf = OPENSSL_malloc(cap);
  if (!buf) return luaL_error(L, "out of memory");
  if (azcmk_b64_decode(s, n, buf, &m) != 0) { OPENSSL_free(buf); return 0; }
  lua_pushlstring(L, (const char *)buf, m);
  OPENSSL_free(buf);
  return 1;
}

static int fail(lua_State *L, const char *fn, const char *msg) {
  ERR_clear_error();
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", fn, msg);
  return 2;
}

static int l_jwt_sign(lua_State *L) {
  size_t hn, pn, siglen = 0, o;
  const unsigned char *h = (const unsigned char *)luaL_checklstring(L, 1, &hn);
  const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 2, &pn);
  azcmk_pkey *k = azcmk_pkey_check(L, 3);
  int alg = luaL_checkoption(L, 4, NULL, azcmk_sig_algs);
  int maxsig = EVP_PKEY_get_size(k->pk);
  size_t cap = azcmk_b64_encoded_len(hn, 1) + azcmk_b64_encoded_len(pn, 1) + 2 +
               azcmk_b64_encoded_len(maxsig > 0 ? (size_t)maxsig : 0, 1);
  char *tok = OPENSSL_malloc(cap), err[256] = "sign: failed";
  unsigned char *sig = NULL;
  if (!tok) return luaL_error(L, "out of memory");
  o = azcmk_b64_encode(h, hn, tok, 1);
  tok[o++] = '.';
  o += azcmk_b64_encode(p, pn, tok + o, 1);
  if (!azcmk_pkey_sign(k, alg, (const unsigned char *)tok, o, &sig, &siglen, err, sizeof err) ||
      siglen > (size_t)maxsig) {
    OPENSSL_free(sig);
    OPENSSL_free(tok);
    return fail(L, "jwt_sign", err);
  }
  tok[o++] = '.';
  o += azcmk_b64_encode(sig, siglen, tok + o, 1);
  lua_pushlstring(L, tok, o);
  OPENSSL_free(sig);
  OPENSSL_free(tok);
  return 1;
}

/* Pushes header and payload JSON of tok; returns 2, or 0 with *err set. */
static int push_parts(lua_State *L, const char *tok, size_t n, const size_t dots[2], const char **err) {
  if (!push_b64(L, tok, dots[0])) { *err = "header is not base64url"; return 0; }
  if (!push_b64(L, tok + dots[0] + 1, dots[1] - dots[0] - 1)) {
    lua_pop(L, 1);
    *err = "payload is not base64url";
    return 0;
  }
  (void)n;
  return 2;
}

static int l_jwt_decode(lua_State *L) {
  size_t n, dots[2];
  const char *tok = luaL_checklstring(L, 1, &n);
  const char *err = NULL;
  if (azcmk_jwt_split(tok, n, dots)) return fail(L, "jwt_decode", "not a compact JWS (need three parts)");
  if (!push_parts(L, tok, n, dots, &err)) return fail(L, "jwt_decode", err);
  return 2;
}

static int l_jwt_verify(lua_State *L) {
  size_t n, dots[2], hn, m = 0, cap;
  const char *tok = luaL_checklstring(L, 1, &n);
  azcmk_pkey *k = azcmk_pkey_check(L, 2);
  int alg = luaL_checkoption(L, 3, NULL, azcmk_sig_algs);
  const char *h, *err = NULL;
  char halg[32], msg[256];
  unsigned char *sig;
  int r;
  if (azcmk_jwt_split(tok, n, dots)) return fail(L, "jwt_verify", "not a compact JWS (need three parts)");
  if (!push_parts(L, tok, n, dots, &err)) return fail(L, "jwt_verify", err);
  h = lua_tolstring(L, -2, &hn);
  r = azcmk_json_top_string(h, hn, "alg", halg, sizeof halg);
  if (r < 0) return fail(L, "jwt_verify", "header is not a JSON object with one string \"alg\"");
  if (r == 0) return fail(L, "jwt_verify", "header has no \"alg\"");
  if (strcmp(halg, azcmk_sig_algs[alg]) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "jwt_verify: header alg \"%s\" is not the expected %s", halg, azcmk_sig_algs[alg]);
    return 2;
  }
  sig = OPENSSL_malloc(cap = azcmk_b64_decoded_max(n - dots[1] - 1));
  if (!sig) return luaL_error(L, "out of memory");
  if (azcmk_b64_decode(tok + dots[1] + 1, n - dots[1] - 1, sig, &m) != 0) {
    OPENSSL_free(sig);
    return fail(L, "jwt_verify", "signature is not base64url");
  }
  r = azcmk_pkey_verify(k, alg, (const unsigned char *)tok, dots[1], sig, m, msg, sizeof msg);
  OPENSSL_free(sig);
  if (!r) return fail(L, "jwt_verify", msg);
  return 2;
}

void azcmk_jwt_register(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"jwt_sign", l_jwt_sign}, {"jwt_decode", l_jwt_decode}, {"jwt_verify", l_jwt_verify},
    {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
