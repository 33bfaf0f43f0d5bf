/* pkey.c - RSA keys: generation, JWK and PEM in and out, OAEP/PKCS#1 v1.5 encryption,
 * RS256/PS256 signatures (docs/core-api.md, "Keys"). OpenSSL 3 EVP, OSSL_PARAM,
 * OSSL_DECODER and OSSL_ENCODER only. */
#define _GNU_SOURCE  /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "crypto.h"
#include "encoding.h"
#include "pkey.h"

const char *const azcmk_sig_algs[] = {"RS256", "PS256", NULL};
static const char *const enc_algs[] = {"RSA-OAEP", "RSA-OAEP-256", "RSA1_5", NULL};

/* JWK member names and the matching OpenSSL parameter names. The first two are public. */
static const struct { const char *jwk, *param; } FIELDS[] = {
  {"n", OSSL_PKEY_PARAM_RSA_N},
  {"e", OSSL_PKEY_PARAM_RSA_E},
  {"d", OSSL_PKEY_PARAM_RSA_D},
  {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
  {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},
  {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
  {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2},
  {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
};
#define NFIELDS (sizeof FIELDS / sizeof FIELDS[0])

#define MIN_BITS 1024
#define MAX_BITS 8192

/* ---- userdata ---- */

int azcmk_pkey_has_private(const EVP_PKEY *pk) {
  BIGNUM *d = NULL;
  int ok = EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_D, &d) == 1 && d != NULL;
  BN_clear_free(d);
  ERR_clear_error();
  return ok;
}

azcmk_pkey *azcmk_pkey_box(lua_State *L) {
  azcmk_pkey *k = (azcmk_pkey *)azcmk_newuserdata(L, sizeof *k);
  memset(k, 0, sizeof *k);
  luaL_setmetatable(L, AZCMK_PKEY_MT);
  return k;
}

void azcmk_pkey_own(azcmk_pkey *k, EVP_PKEY *pk) {
  k->pk = pk;
  k->priv = azcmk_pkey_has_private(pk);
}

azcmk_pkey *azcmk_pkey_check(lua_State *L, int idx) {
  azcmk_pkey *k = (azcmk_pkey *)luaL_checkudata(L, idx, AZCMK_PKEY_MT);
  if (!k->pk) luaL_error(L, "azcmk.pkey is closed (argument #%d)", idx);
  return k;
}

static int l_close(lua_State *L) {
  azcmk_pkey *k = (azcmk_pkey *)luaL_checkudata(L, 1, AZCMK_PKEY_MT);
  size_t i;
  for (i = 0; i < AZCMK_PKEY_NCTX; i++) {
    EVP_PKEY_CTX_free(k->ctx[i]);
    k->ctx[i] = NULL;
  }
  EVP_MD_free(k->sha256);
  k->sha256 = NULL;
  EVP_PKEY_free(k->pk);  /* the RSA provider clears private BIGNUMs on free */
  k->pk = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  azcmk_pkey *k = (azcmk_pkey *)luaL_checkudata(L, 1, AZCMK_PKEY_MT);
  if (!k->pk) lua_pushliteral(L, "azcmk.pkey (closed)");
  else lua_pushfstring(L, "azcmk.pkey RSA-%d %s", EVP_PKEY_get_bits(k->pk),
                       k->priv ? "private" : "public");
  return 1;
}

static int l_bits(lua_State *L) {
  lua_pushinteger(L, EVP_PKEY_get_bits(azcmk_pkey_check(L, 1)->pk));
  return 1;
}

static int l_is_private(lua_State *L) {
  lua_pushboolean(L, azcmk_pkey_check(L, 1)->priv);
  return 1;
}

static int l_type(lua_State *L) {
  azcmk_pkey_check(L, 1);
  lua_pushliteral(L, "RSA");
  return 1;
}

/* ---- generation ---- */

static int l_rsa_generate(lua_State *L) {
  lua_Integer bits = luaL_checkinteger(L, 1);
  azcmk_pkey *k;
  EVP_PKEY *pk;
  luaL_argcheck(L, bits == 2048 || bits == 3072 || bits == 4096, 1, "bits must be 2048, 3072 or 4096");
  k = azcmk_pkey_box(L);
  pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
  if (!pk) return azcmk_crypto_fail(L, "rsa_generate", NULL);
  azcmk_pkey_own(k, pk);
  return 1;
}

/* ---- JWK ---- */

/* Reads t[name] as a base64url big integer into *bn (left NULL when absent).
 * Returns NULL or an error message. Private values go to secure, cleared BIGNUMs. */
static const char *jwk_bn(lua_State *L, int t, const char *name, int secret, BIGNUM **bn) {
  size_t n, m = 0, cap;
  const char *s, *err = NULL;
  unsigned char *buf;
  *bn = NULL;
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
  if (lua_type(L, -1) != LUA_TSTRING) { lua_pop(L, 1); return "member is not a string"; }
  s = lua_tolstring(L, -1, &n);
  buf = OPENSSL_malloc(cap = azcmk_b64_decoded_max(n));
  if (!buf) err = "out of memory";
  else if (azcmk_b64_decode(s, n, buf, &m) != 0) err = "member is not base64url";
  else if (m == 0) err = "member is empty";
  else {
    *bn = secret ? BN_secure_new() : BN_new();
    if (!*bn || !BN_bin2bn(buf, (int)m, *bn)) { BN_free(*bn); *bn = NULL; err = "out of memory"; }
    else if (secret) BN_set_flags(*bn, BN_FLG_CONSTTIME);
  }
  OPENSSL_clear_free(buf, cap);
  lua_pop(L, 1);
  return err;
}

static int l_pkey_from_jwk(lua_State *L) {
  BIGNUM *bn[NFIELDS] = {NULL};
  OSSL_PARAM_BLD *bld = NULL;
  OSSL_PARAM *params = NULL;
  EVP_PKEY_CTX *ctx = NULL;
  EVP_PKEY *pk = NULL;
  char msg[160];
  const char *err = NULL;
  size_t i, ncrt = 0;
  azcmk_pkey *k;
  luaL_checktype(L, 1, LUA_TTABLE);
  k = azcmk_pkey_box(L);  /* before any allocation: pushing cannot leak the key */

  lua_getfield(L, 1, "kty");
  if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "RSA") != 0) err = "kty is not \"RSA\"";
  lua_pop(L, 1);
  for (i = 0; !err && i < NFIELDS; i++) {
    const char *e = jwk_bn(L, 1, FIELDS[i].jwk, i >= 2, &bn[i]);
    if (e) { snprintf(msg, sizeof msg, "%s: %s", FIELDS[i].jwk, e); err = msg; }
  }
  if (!err) {
    for (i = 3; i < NFIELDS; i++) ncrt += bn[i] != NULL;
    if (!bn[0] || !bn[1]) err = "n and e are required";
    else if (BN_num_bits(bn[0]) < MIN_BITS || BN_num_bits(bn[0]) > MAX_BITS) err = "modulus size out of range (1024..8192 bits)";
    else if (!BN_is_odd(bn[0])) err = "modulus is even";
    else if (!BN_is_odd(bn[1]) || BN_is_one(bn[1]) || BN_cmp(bn[1], bn[0]) >= 0) err = "bad public exponent";
    else if (ncrt && (!bn[2] || ncrt != NFIELDS - 3)) err = "incomplete private key (need d, or d with p, q, dp, dq, qi)";
    else if (bn[2] && BN_cmp(bn[2], bn[0]) >= 0) err = "bad private exponent";
  }
  if (!err && ncrt) {  /* the factors must multiply to n */
    BN_CTX *bctx = BN_CTX_new();
    BIGNUM *pq = BN_new();
    if (!bctx || !pq || !BN_mul(pq, bn[3], bn[4], bctx)) err = "out of memory";
    else if (BN_cmp(pq, bn[0]) != 0) err = "p * q does not equal n";
    BN_clear_free(pq);
    BN_CTX_free(bctx);
  }
  if (!err) {
    bld = OSSL_PARAM_BLD_new();
    for (i = 0; bld && i < NFIELDS; i++)
      if (bn[i] && !OSSL_PARAM_BLD_push_BN(bld, FIELDS[i].param, bn[i])) break;
    if (!bld || i < NFIELDS || !(params = OSSL_PARAM_BLD_to_param(bld))) err = "out of memory";
  }
  if (!err) {
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, bn[2] ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) != 1) {
      azcmk_crypto_errmsg(msg, sizeof msg, "invalid RSA key", "rejected");
      err = msg;
      EVP_PKEY_free(pk);
      pk = NULL;
    }
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);  /* private values sit in the secure heap, cleared on free */
  OSSL_PARAM_BLD_free(bld);
  for (i = 0; i < NFIELDS; i++) BN_clear_free(bn[i]);
  ERR_clear_error();
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "pkey_from_jwk: %s", err);
    return 2;
  }
  azcmk_pkey_own(k, pk);
  return 1;
}

/* Sets t[name] = base64url(param) when pk has it. Returns 0 on a memory failure. */
static int jwk_field(lua_State *L, EVP_PKEY *pk, const char *param, const char *name) {
  BIGNUM *bn = NULL;
  unsigned char *buf;
  char *out;
  int n, ok = 1;
  if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1 || !bn) { ERR_clear_error(); return 1; }
  n = BN_num_bytes(bn);
  buf = OPENSSL_malloc((size_t)n + 1);
  out = OPENSSL_malloc(azcmk_b64_encoded_len((size_t)n, 1) + 1);
  if (!buf || !out) ok = 0;
  else {
    size_t m;
    BN_bn2bin(bn, buf);
    m = azcmk_b64_encode(buf, (size_t)n, out, 1);
    lua_pushlstring(L, out, m);
    lua_setfield(L, -2, name);
    OPENSSL_cleanse(out, m);
  }
  OPENSSL_clear_free(buf, (size_t)n + 1);
  OPENSSL_free(out);
  BN_clear_free(bn);
  return ok;
}

static int l_jwk(lua_State *L) {
  azcmk_pkey *k = azcmk_pkey_check(L, 1);
  int priv = lua_toboolean(L, 2);
  size_t i, nf = priv && k->priv ? NFIELDS : 2;
  lua_createtable(L, 0, (int)nf + 1);
  lua_pushliteral(L, "RSA");
  lua_setfield(L, -2, "kty");
  for (i = 0; i < nf; i++)
    if (!jwk_field(L, k->pk, FIELDS[i].param, FIELDS[i].jwk)) return luaL_error(L, "out of memory");
  return 1;
}

/* ---- key-derivation work ---- */

/* absent: 1; negative or beyond int64: INT64_MAX. OpenSSL 3.0 reads PBKDF2 and PBES1 /
 * PKCS#12-PBE counts with ASN1_INTEGER_get into an int, so a negative count such as
 * -2147483649 runs as 2147483647 iterations: no negative count may pass as "no work". */
static int64_t asn1_count(const ASN1_INTEGER *a) {
  int64_t v;
  if (!a) return 1;
  if (ASN1_INTEGER_get_int64(&v, a) != 1) { ERR_clear_error(); return INT64_MAX; }
  return v < 0 ? INT64_MAX : v;
}

static int64_t mul_sat(int64_t a, int64_t b) {  /* a, b >= 0 */
  return a && b > INT64_MAX / a ? INT64_MAX : a * b;
}

int64_t azcmk_pbe_work(const X509_ALGOR *alg, const char **what) {
  const ASN1_OBJECT *obj;
  const void *pval;
  int ptype, nid;
  int64_t work = 0;
  *what = "iteration count";
  X509_ALGOR_get0(&obj, &ptype, &pval, alg);
  nid = OBJ_obj2nid(obj);
  if (ptype != V_ASN1_SEQUENCE) return 0;
  if (nid == NID_pbes2) {
    PBE2PARAM *p2 = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter);
    int kdf = p2 && p2->keyfunc ? OBJ_obj2nid(p2->keyfunc->algorithm) : NID_undef;
    if (kdf == NID_id_pbkdf2) {
      PBKDF2PARAM *k = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), p2->keyfunc->parameter);
      if (k) work = asn1_count(k->iter);
      PBKDF2PARAM_free(k);
    } else if (kdf == NID_id_scrypt) {
      SCRYPT_PARAMS *k = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(SCRYPT_PARAMS), p2->keyfunc->parameter);
      *what = "scrypt cost N*r*p";
      if (k) work = mul_sat(mul_sat(asn1_count(k->costParameter), asn1_count(k->blockSize)),
                            asn1_count(k->parallelizationParameter));
      SCRYPT_PARAMS_free(k);
    }
    PBE2PARAM_free(p2);
  } else if (EVP_PBE_find(EVP_PBE_TYPE_OUTER, nid, NULL, NULL, NULL)) {  /* PBES1, PKCS#12 PBE */
    PBEPARAM *p = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), alg->parameter);
    if (p) work = asn1_count(p->iter);
    PBEPARAM_free(p);
  }
  ERR_clear_error();
  return work;
}

void azcmk_kdf_refusal(char *err, size_t errsize, const char *whose, const char *what,
                       int64_t work, const char *howto) {
  if (work < 0 || work == INT64_MAX)
    snprintf(err, errsize, "%s key-derivation %s is out of range (limit %ld); re-export it with "
             "fewer iterations (%s)", whose, what, (long)AZCMK_MAX_KDF_ITER, howto);
  else
    snprintf(err, errsize, "%s key-derivation %s %lld exceeds the limit %ld; re-export it with "
             "fewer iterations (%s)", whose, what, (long long)work, (long)AZCMK_MAX_KDF_ITER, howto);
}

/* ---- PEM ---- */

/* Used when no password is given: fail instead of prompting on a terminal. */
static int no_passphrase(char *pass, size_t size, size_t *len, const OSSL_PARAM params[], void *arg) {
  (void)pass; (void)size; (void)params; (void)arg;
  *len = 0;
  return 0;
}

typedef struct { const char *pass; size_t len; } pem_pass;

static int pem_pass_cb(char *buf, int size, int rwflag, void *u) {
  const pem_pass *pw = (const pem_pass *)u;
  (void)rwflag;
  if (pw->len > (size_t)size) return -1;
  memcpy(buf, pw->pass, pw->len);
  return (int)pw->len;
}

/* Reads pem's first block as OpenSSL's PEM decoder does (PEM_read_bio), with a legacy
 * Proc-Type layer decrypted (EVP_BytesToKey: one MD5, no iterations). Returns 0 with a
 * message in err when it is an EncryptedPrivateKeyInfo whose key derivation asks for more
 * than AZCMK_MAX_KDF_ITER, before any key derivation runs; 1 otherwise. */
static int pem_kdf_ok(const char *pem, size_t n, const char *pass, size_t passlen,
                      char *err, size_t errsize) {
  BIO *bio = BIO_new_mem_buf(pem, (int)n);
  char *name = NULL, *header = NULL;
  unsigned char *data = NULL;
  long len = 0, dlen;
  int ok = 1;
  if (bio && PEM_read_bio(bio, &name, &header, &data, &len) > 0 &&
      strcmp(name, PEM_STRING_PKCS8) == 0) {
    EVP_CIPHER_INFO cipher;
    pem_pass pw;
    pw.pass = pass;
    pw.len = passlen;
    dlen = len;
    if (PEM_get_EVP_CIPHER_INFO(header, &cipher) &&
        (!cipher.cipher || (pass && PEM_do_header(&cipher, data, &dlen, pem_pass_cb, &pw)))) {
      const unsigned char *p = data;
      X509_SIG *sig = d2i_X509_SIG(NULL, &p, dlen);
      const X509_ALGOR *alg;
      const char *what;
      int64_t work;
      if (sig) {
        X509_SIG_get0(sig, &alg, NULL);
        if ((work = azcmk_pbe_work(alg, &what)) > AZCMK_MAX_KDF_ITER) {
          azcmk_kdf_refusal(err, errsize, "PEM: the key's", what, work,
                            "openssl pkcs8 -topk8 -v2 aes-256-cbc -iter 2048");
          ok = 0;
        }
      }
      X509_SIG_free(sig);
    }
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_clear_free(data, (size_t)len);
  BIO_free(bio);
  ERR_clear_error();
  return ok;
}

/* One OSSL_DECODER pass over pem's first block; keytype NULL: any type. Returns the key, or
 * NULL with OpenSSL's reason queued (*made is 0 when no decoder context could be made). */
static EVP_PKEY *decode_as(const char *pem, size_t n, const char *keytype, const char *pass,
                           size_t passlen, int *made) {
  EVP_PKEY *pk = NULL;
  BIO *bio = BIO_new_mem_buf(pem, (int)n);
  OSSL_DECODER_CTX *dctx = bio ? OSSL_DECODER_CTX_new_for_pkey(&pk, "PEM", NULL, keytype, 0, NULL, NULL) : NULL;
  *made = dctx != NULL;
  if (!dctx ||
      !(pass ? OSSL_DECODER_CTX_set_passphrase(dctx, (const unsigned char *)pass, passlen)
             : OSSL_DECODER_CTX_set_passphrase_cb(dctx, no_passphrase, NULL)) ||
      !OSSL_DECODER_from_bio(dctx, bio) || !pk) {
    EVP_PKEY_free(pk);
    pk = NULL;
  }
  OSSL_DECODER_CTX_free(dctx);
  BIO_free(bio);
  return pk;
}

EVP_PKEY *azcmk_pkey_decode_pem(const char *pem, size_t n, const char *pass, size_t passlen,
                                char *err, size_t errsize) {
  EVP_PKEY *pk = NULL;
  int made = 1;
  if (n > 0x7fffffff) {
    snprintf(err, errsize, "cannot read PEM");
    return NULL;
  }
  /* A decoder context narrowed to RSA is ~5x cheaper to make than one for every key type.
   * It is tried without the password, so it never derives a key: encrypted PEM (the only
   * kind with "ENCRYPTED" in it) and everything it cannot decode go to the generic one. */
  if (memmem(pem, n, "ENCRYPTED", 9)) {
    if (!pem_kdf_ok(pem, n, pass, passlen, err, errsize)) return NULL;
  } else {
    pk = decode_as(pem, n, "RSA", NULL, 0, &made);
    ERR_clear_error();
  }
  if (!pk && !(pk = decode_as(pem, n, NULL, pass, passlen, &made))) {
    if (!made) azcmk_crypto_errmsg(err, errsize, "PEM", "no decoder");
    else azcmk_crypto_errmsg(err, errsize, "PEM",
                             pass ? "no key found, or wrong password"
                                  : "no key found (or it is encrypted and no password was given)");
  } else if (!EVP_PKEY_is_a(pk, "RSA")) {
    EVP_PKEY_free(pk);
    pk = NULL;
    snprintf(err, errsize, "PEM: not an RSA key");
  }
  ERR_clear_error();
  return pk;
}

static int l_pkey_from_pem(lua_State *L) {
  size_t n, passlen = 0;
  const char *pem = luaL_checklstring(L, 1, &n);
  const char *pass = luaL_optlstring(L, 2, NULL, &passlen);
  char err[256];
  azcmk_pkey *k = azcmk_pkey_box(L);
  EVP_PKEY *pk = azcmk_pkey_decode_pem(pem, n, pass, passlen, err, sizeof err);
  if (!pk) {
    lua_pushnil(L);
    lua_pushfstring(L, "pkey_from_pem: %s", err);
    return 2;
  }
  azcmk_pkey_own(k, pk);
  return 1;
}

static int l_pem(lua_State *L) {
  azcmk_pkey *k = azcmk_pkey_check(L, 1);
  int priv = lua_toboolean(L, 2);
  unsigned char *data = NULL;
  size_t len = 0;
  OSSL_ENCODER_CTX *ectx;
  if (priv && !k->priv) {
    lua_pushnil(L);
    lua_pushliteral(L, "pem: key is not private");
    return 2;
  }
  ectx = OSSL_ENCODER_CTX_new_for_pkey(k->pk, priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, "PEM",
                                       priv ? "PrivateKeyInfo" : "SubjectPublicKeyInfo", NULL);
  if (!ectx || !OSSL_ENCODER_to_data(ectx, &data, &len)) {
    OSSL_ENCODER_CTX_free(ectx);
    return azcmk_crypto_fail(L, "pem", NULL);
  }
  OSSL_ENCODER_CTX_free(ectx);
  lua_pushlstring(L, (const char *)data, len);
  OPENSSL_clear_free(data, len);
  return 1;
}

/* ---- operation contexts ----
 * Each key keeps one initialised EVP_PKEY_CTX per operation and algorithm, made on first
 * use and reused (EVP_PKEY_encrypt/decrypt/sign/verify may be called again after one
 * *_init_ex), so a call does not fetch the provider's algorithm again. Slots: */
enum { SLOT_ENC = 0, SLOT_DEC = 3, SLOT_SIGN = 6, SLOT_VERIFY = 8 };

/* Builds the parameters of an asymmetric cipher (enc alg 0..2) or signature (alg 0..1). */
static void op_params(int slot, int alg, OSSL_PARAM p[5]) {
  static char oaep[] = OSSL_PKEY_RSA_PAD_MODE_OAEP, pkcs1[] = OSSL_PKEY_RSA_PAD_MODE_PKCSV15;
  static char pss[] = OSSL_PKEY_RSA_PAD_MODE_PSS, saltlen[] = OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST;
  static char sha1[] = "SHA1", sha256[] = "SHA256";
  int i = 0;
  if (slot >= SLOT_SIGN) {
    p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, sha256, 0);
    if (alg == AZCMK_PS256) {
      p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, pss, 0);
      p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, sha256, 0);
      p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, saltlen, 0);
    } else {
      p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, pkcs1, 0);
    }
  } else if (alg == 2) {
    p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, pkcs1, 0);
  } else {
    char *md = alg == 0 ? sha1 : sha256;
    p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, oaep, 0);
    p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, md, 0);
    p[i++] = OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, md, 0);
  }
  p[i] = OSSL_PARAM_construct_end();
}

/* The key's context for slot + alg, made and initialised on first use; NULL on failure
 * (the OpenSSL error is left queued for the caller's message). */
static EVP_PKEY_CTX *op_ctx(azcmk_pkey *k, int slot, int alg) {
  EVP_PKEY_CTX **c = &k->ctx[slot + alg];
  OSSL_PARAM p[5];
  int ok;
  if (*c) return *c;
  op_params(slot, alg, p);
  if (!(*c = EVP_PKEY_CTX_new_from_pkey(NULL, k->pk, NULL))) return NULL;
  switch (slot) {
    case SLOT_ENC: ok = EVP_PKEY_encrypt_init_ex(*c, p); break;
    case SLOT_DEC: ok = EVP_PKEY_decrypt_init_ex(*c, p); break;
    case SLOT_SIGN: ok = EVP_PKEY_sign_init_ex(*c, p); break;
    default: ok = EVP_PKEY_verify_init_ex(*c, p); break;
  }
  if (ok != 1) {
    EVP_PKEY_CTX_free(*c);
    *c = NULL;
  }
  return *c;
}

/* SHA-256 of data with the key's fetched digest. */
static int sha256(azcmk_pkey *k, const unsigned char *data, size_t n, unsigned char md[32]) {
  unsigned int len = 0;
  if (!k->sha256 && !(k->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) return 0;
  return EVP_Digest(data, n, md, &len, k->sha256, NULL) == 1 && len == 32;
}

/* ---- encryption ---- */

static int pk_crypt(lua_State *L, int enc) {
  azcmk_pkey *k = azcmk_pkey_check(L, 1);
  int alg = luaL_checkoption(L, 2, NULL, enc_algs);
  size_t n, outlen, cap;
  const unsigned char *in = (const unsigned char *)luaL_checklstring(L, 3, &n);
  unsigned char stack[1024], *out = stack;  /* up to 8192-bit keys without malloc */
  EVP_PKEY_CTX *ctx;
  int ok, size = EVP_PKEY_get_size(k->pk);
  if (!enc && !k->priv) {
    lua_pushnil(L);
    lua_pushliteral(L, "decrypt: key is not private");
    return 2;
  }
  if (size <= 0) return azcmk_crypto_fail(L, enc ? "encrypt" : "decrypt", "unusable key");
  outlen = cap = (size_t)size;
  if (cap > sizeof stack && !(out = OPENSSL_malloc(cap))) return luaL_error(L, "out of memory");
  ctx = op_ctx(k, enc ? SLOT_ENC : SLOT_DEC, alg);
  ok = ctx && (enc ? EVP_PKEY_encrypt(ctx, out, &outlen, in, n) : EVP_PKEY_decrypt(ctx, out, &outlen, in, n)) == 1;
  if (ok) lua_pushlstring(L, (const char *)out, outlen);
  OPENSSL_cleanse(out, cap);  /* a decrypted plaintext is secret */
  if (out != stack) OPENSSL_free(out);
  if (!ok) return azcmk_crypto_fail(L, enc ? "encrypt" : "decrypt", NULL);
  return 1;
}

static int l_encrypt(lua_State *L) { return pk_crypt(L, 1); }
static int l_decrypt(lua_State *L) { return pk_crypt(L, 0); }

/* ---- signatures ---- */

int azcmk_pkey_sign(azcmk_pkey *k, int alg, const unsigned char *data, size_t n,
                    unsigned char **sig, size_t *siglen, char *err, size_t errsize) {
  unsigned char md[32], *out = NULL;
  size_t len;
  EVP_PKEY_CTX *ctx;
  int size = EVP_PKEY_get_size(k->pk);
  *sig = NULL;
  if (!k->priv) {
    snprintf(err, errsize, "sign: key is not private");
    return 0;
  }
  len = size > 0 ? (size_t)size : 0;
  if (len && sha256(k, data, n, md) && (ctx = op_ctx(k, SLOT_SIGN, alg)) != NULL &&
      (out = OPENSSL_malloc(len)) != NULL && EVP_PKEY_sign(ctx, out, &len, md, sizeof md) == 1) {
    *sig = out;
    *siglen = len;
    ERR_clear_error();
    return 1;
  }
  OPENSSL_free(out);
  azcmk_crypto_errmsg(err, errsize, "sign", NULL);
  return 0;
}

int azcmk_pkey_verify(azcmk_pkey *k, int alg, const unsigned char *data, size_t n,
                      const unsigned char *sig, size_t siglen, char *err, size_t errsize) {
  unsigned char md[32];
  EVP_PKEY_CTX *ctx;
  int r;
  if (!sha256(k, data, n, md) || !(ctx = op_ctx(k, SLOT_VERIFY, alg))) {
    azcmk_crypto_errmsg(err, errsize, "verify", NULL);
    return 0;
  }
  r = EVP_PKEY_verify(ctx, sig, siglen, md, sizeof md);
  ERR_clear_error();
  if (r == 1) return 1;
  snprintf(err, errsize, "verify: signature does not match");
  return 0;
}

static int l_sign(lua_State *L) {
  azcmk_pkey *k = azcmk_pkey_check(L, 1);
  int alg = luaL_checkoption(L, 2, NULL, azcmk_sig_algs);
  size_t n, siglen = 0;
  const unsigned char *data = (const unsigned char *)luaL_checklstring(L, 3, &n);
  unsigned char *sig;
  char err[256];
  if (!azcmk_pkey_sign(k, alg, data, n, &sig, &siglen, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushlstring(L, (const char *)sig, siglen);
  OPENSSL_free(sig);
  return 1;
}

static int l_verify(lua_State *L) {
  azcmk_pkey *k = azcmk_pkey_check(L, 1);
  int alg = luaL_checkoption(L, 2, NULL, azcmk_sig_algs);
  size_t n, siglen;
  const unsigned char *data = (const unsigned char *)luaL_checklstring(L, 3, &n);
  const unsigned char *sig = (const unsigned char *)luaL_checklstring(L, 4, &siglen);
  char err[256];
  if (azcmk_pkey_verify(k, alg, data, n, sig, siglen, err, sizeof err)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushboolean(L, 0);
  lua_pushstring(L, err);
  return 2;
}

void azcmk_pkey_register(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"jwk", l_jwk}, {"pem", l_pem}, {"bits", l_bits}, {"is_private", l_is_private},
    {"type", l_type}, {"encrypt", l_encrypt}, {"decrypt", l_decrypt}, {"sign", l_sign},
    {"verify", l_verify}, {"close", l_close}, {NULL, NULL}};
  static const luaL_Reg fns[] = {
    {"rsa_generate", l_rsa_generate}, {"pkey_from_jwk", l_pkey_from_jwk},
    {"pkey_from_pem", l_pkey_from_pem}, {NULL, NULL}};
  azcmk_crypto_class(L, AZCMK_PKEY_MT, methods, l_tostring);
  luaL_setfuncs(L, fns, 0);
}
