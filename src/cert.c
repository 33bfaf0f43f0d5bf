/* cert.c - X.509 certificates with their key: PEM bundles, PKCS#12, thumbprints
 * (docs/core-api.md, "Certificates"). */
#define _GNU_SOURCE  /* timegm */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include "crypto.h"
#include "encoding.h"
#include "pkey.h"

#define CERT_MT "azcmk.cert"
#define P12_HOWTO "openssl pkcs12 -export -iter 2048"

typedef struct { X509 *x; } azcmk_cert;

static azcmk_cert *cert_box(lua_State *L) {
  azcmk_cert *c = (azcmk_cert *)azcmk_newuserdata(L, sizeof *c);
  c->x = NULL;
  luaL_setmetatable(L, CERT_MT);
  return c;
}

static X509 *cert_check(lua_State *L, int idx) {
  azcmk_cert *c = (azcmk_cert *)luaL_checkudata(L, idx, CERT_MT);
  if (!c->x) luaL_error(L, "azcmk.cert is closed (argument #%d)", idx);
  return c->x;
}

static int l_close(lua_State *L) {
  azcmk_cert *c = (azcmk_cert *)luaL_checkudata(L, 1, CERT_MT);
  X509_free(c->x);
  c->x = NULL;
  return 0;
}

/* Never prompt on a terminal for a PEM pass phrase. */
static int no_password(char *buf, int size, int rwflag, void *u) {
  (void)buf; (void)size; (void)rwflag; (void)u;
  return -1;
}

static int push_fail(lua_State *L, const char *fn, const char *msg) {
  ERR_clear_error();
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", fn, msg);
  return 2;
}

/* ---- loading ---- */

static X509 *x509_from_der(const unsigned char *der, size_t n, int whole) {
  const unsigned char *p = der;
  X509 *x;
  if (n > 0x7fffffff) return NULL;
  x = d2i_X509(NULL, &p, (long)n);
  if (x && whole && p != der + n) { X509_free(x); x = NULL; }
  return x;
}

static int l_cert_from_der(lua_State *L) {
  size_t n;
  const unsigned char *der = (const unsigned char *)luaL_checklstring(L, 1, &n);
  azcmk_cert *c = cert_box(L);
  if (!(c->x = x509_from_der(der, n, 1))) return push_fail(L, "cert_from_der", "not a DER certificate");
  ERR_clear_error();
  return 1;
}

static int l_cert_from_pem(lua_State *L) {
  size_t n;
  const char *pem = luaL_checklstring(L, 1, &n);
  azcmk_cert *c = cert_box(L);
  BIO *bio = n <= 0x7fffffff ? BIO_new_mem_buf(pem, (int)n) : NULL;
  if (bio) c->x = PEM_read_bio_X509(bio, NULL, no_password, NULL);
  BIO_free(bio);
  if (!c->x) return push_fail(L, "cert_from_pem", "no PEM certificate");
  ERR_clear_error();
  return 1;
}

/* Pushes {cert=, key=, chain={...}}: the certificate matching pk becomes `cert`, the others
 * form `chain` in their original order. Takes ownership of pk and of certs and their items.
 * Returns 1, or 2 (nil, err) when no certificate matches. */
static int push_bundle(lua_State *L, const char *fn, EVP_PKEY *pk, X509 *leaf, STACK_OF(X509) *certs) {
  int i, n = sk_X509_num(certs), j = 1;
  azcmk_pkey *k;
  if (!leaf) {
    for (i = 0; i < n; i++)
      if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(certs, i)), pk) == 1) {
        leaf = sk_X509_delete(certs, i);
        break;
      }
  }
  ERR_clear_error();
  if (!leaf) {
    EVP_PKEY_free(pk);
    sk_X509_pop_free(certs, X509_free);
    return push_fail(L, fn, n ? "no certificate matches the private key" : "no certificate");
  }
  lua_createtable(L, 0, 3);
  k = azcmk_pkey_box(L);
  azcmk_pkey_own(k, pk);
  lua_setfield(L, -2, "key");
  cert_box(L)->x = leaf;
  lua_setfield(L, -2, "cert");
  lua_createtable(L, n, 0);
  while (sk_X509_num(certs) > 0) {
    azcmk_cert *c = cert_box(L);
    c->x = sk_X509_shift(certs);
    lua_rawseti(L, -2, j++);
  }
  sk_X509_free(certs);
  lua_setfield(L, -2, "chain");
  return 1;
}

static int is_cert_name(const char *name) {
  return !strcmp(name, PEM_STRING_X509) || !strcmp(name, PEM_STRING_X509_OLD) ||
         !strcmp(name, PEM_STRING_X509_TRUSTED);
}

static int is_key_name(const char *name) {
  size_t n = strlen(name);
  return n >= 11 && !strcmp(name + n - 11, "PRIVATE KEY");
}

static int l_load_pem(lua_State *L) {
  size_t n, passlen = 0;
  const char *text = luaL_checklstring(L, 1, &n);
  const char *pass = luaL_optlstring(L, 2, NULL, &passlen);
  STACK_OF(X509) *certs = sk_X509_new_null();
  EVP_PKEY *pk = NULL;
  BIO *bio = n <= 0x7fffffff ? BIO_new_mem_buf(text, (int)n) : NULL;
  char err[256];
  const char *msg = NULL;
  if (!certs || !bio) msg = "out of memory";
  while (!msg) {
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long len = 0;
    if (!PEM_read_bio(bio, &name, &header, &data, &len)) {
      if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) msg = "malformed PEM block";
      break;
    }
    if (is_cert_name(name)) {
      X509 *x = x509_from_der(data, (size_t)len, 1);
      if (!x) msg = "malformed certificate";
      else if (!sk_X509_push(certs, x)) { X509_free(x); msg = "out of memory"; }
    } else if (is_key_name(name)) {
      /* Re-armour the block (with its legacy encryption headers) and decode it. */
      BIO *one = BIO_new(BIO_s_secmem());
      char *p = NULL;
      long plen;
      if (pk) msg = "more than one private key";
      else if (!one || !PEM_write_bio(one, name, header, data, len)) msg = "out of memory";
      else {
        plen = BIO_get_mem_data(one, &p);
        pk = azcmk_pkey_decode_pem(p, (size_t)plen, pass, passlen, err, sizeof err);
        if (!pk) msg = err;
      }
      BIO_free(one);
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_clear_free(data, (size_t)len);
  }
  BIO_free(bio);
  ERR_clear_error();
  if (!msg && !pk) msg = "no private key";
  if (msg) {
    EVP_PKEY_free(pk);
    sk_X509_pop_free(certs, X509_free);
    return push_fail(L, "load_pem", msg);
  }
  return push_bundle(L, "load_pem", pk, NULL, certs);
}

/* ---- PKCS#12 ----
 * Walked here rather than with PKCS12_parse, so that each encrypted part's key derivation is
 * counted before it runs: the file's total (encrypted safes and the key bag; the MAC has its
 * own check) may not pass AZCMK_MAX_KDF_ITER. Otherwise as PKCS12_parse in OpenSSL 3.0: MAC
 * first (p12_mac_ok), the first key bag is the key, X.509 certificate bags are kept in file
 * order, other bags are skipped. */
typedef struct {
  const char *pass;
  EVP_PKEY *pk;
  STACK_OF(X509) *certs;
  int64_t work;         /* iterations asked for so far */
  const char *refused;  /* the message, once over the limit */
  char msg[256];
} p12_walk;

/* Counts alg's key derivation; 0 (w->refused set) when the total passes the limit. */
static int p12_count(p12_walk *w, const X509_ALGOR *alg) {
  const char *what;
  int64_t n = alg ? azcmk_pbe_work(alg, &what) : 0;
  if (n <= 0) return 1;
  w->work = n >= INT64_MAX - w->work ? INT64_MAX : w->work + n;
  if (w->work <= AZCMK_MAX_KDF_ITER) return 1;
  if (n > AZCMK_MAX_KDF_ITER)  /* this part alone */
    azcmk_kdf_refusal(w->msg, sizeof w->msg, "the file's", what, n, P12_HOWTO);
  else
    azcmk_kdf_refusal(w->msg, sizeof w->msg, "the file's", "iteration count (summed)", w->work, P12_HOWTO);
  w->refused = w->msg;
  return 0;
}

static int p12_bags(p12_walk *w, const STACK_OF(PKCS12_SAFEBAG) *bags) {
  int i;
  for (i = 0; i < sk_PKCS12_SAFEBAG_num(bags); i++) {
    PKCS12_SAFEBAG *bag = sk_PKCS12_SAFEBAG_value(bags, i);
    const ASN1_TYPE *a;
    if (((a = PKCS12_SAFEBAG_get0_attr(bag, NID_friendlyName)) && a->type != V_ASN1_BMPSTRING) ||
        ((a = PKCS12_SAFEBAG_get0_attr(bag, NID_localKeyID)) && a->type != V_ASN1_OCTET_STRING))
      return 0;
    switch (PKCS12_SAFEBAG_get_nid(bag)) {
      case NID_keyBag:
        if (!w->pk && !(w->pk = EVP_PKCS82PKEY(PKCS12_SAFEBAG_get0_p8inf(bag)))) return 0;
        break;
      case NID_pkcs8ShroudedKeyBag: {
        const X509_SIG *sig = PKCS12_SAFEBAG_get0_pkcs8(bag);
        const X509_ALGOR *alg = NULL;
        PKCS8_PRIV_KEY_INFO *p8;
        if (w->pk) break;
        if (sig) X509_SIG_get0(sig, &alg, NULL);
        if (!p12_count(w, alg) || !(p8 = PKCS12_decrypt_skey(bag, w->pass, -1))) return 0;
        w->pk = EVP_PKCS82PKEY(p8);
        PKCS8_PRIV_KEY_INFO_free(p8);
        if (!w->pk) return 0;
        break;
      }
      case NID_certBag: {
        X509 *x;
        if (PKCS12_SAFEBAG_get_bag_nid(bag) != NID_x509Certificate) break;
        if (!(x = PKCS12_SAFEBAG_get1_cert(bag))) return 0;
        if (!sk_X509_push(w->certs, x)) { X509_free(x); return 0; }
        break;
      }
      case NID_safeContentsBag:  /* nesting is bounded by the DER decoder's depth limit */
        if (!p12_bags(w, PKCS12_SAFEBAG_get0_safes(bag))) return 0;
        break;
      default:
        break;
    }
  }
  return 1;
}

static int p12_safes(p12_walk *w, PKCS12 *p12) {
  STACK_OF(PKCS7) *safes = PKCS12_unpack_authsafes(p12);
  int i, ok = safes != NULL;
  for (i = 0; ok && i < sk_PKCS7_num(safes); i++) {
    PKCS7 *p7 = sk_PKCS7_value(safes, i);
    STACK_OF(PKCS12_SAFEBAG) *bags = NULL;
    switch (OBJ_obj2nid(p7->type)) {
      case NID_pkcs7_data:
        ok = (bags = PKCS12_unpack_p7data(p7)) != NULL;
        break;
      case NID_pkcs7_encrypted:
        ok = p12_count(w, p7->d.encrypted && p7->d.encrypted->enc_data
                              ? p7->d.encrypted->enc_data->algorithm : NULL) &&
             (bags = PKCS12_unpack_p7encdata(p7, w->pass, -1)) != NULL;
        break;
      default:
        continue;
    }
    ok = ok && p12_bags(w, bags);
    sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
  }
  sk_PKCS7_pop_free(safes, PKCS7_free);
  return ok;
}

/* PKCS12_parse's MAC check (OpenSSL 3.0): a password needs a MAC that verifies with it.
 * Without one (NULL or ""), the MAC, if any, tells which of the two the file was made with
 * (PKCS#12 tells them apart); *pass becomes that one. */
static int p12_mac_ok(PKCS12 *p12, const char **pass) {
  if (*pass && **pass) return PKCS12_verify_mac(p12, *pass, -1);
  *pass = NULL;
  if (!PKCS12_mac_present(p12) || PKCS12_verify_mac(p12, NULL, 0)) return 1;
  *pass = "";
  return PKCS12_verify_mac(p12, "", 0);
}

static int l_load_pkcs12(lua_State *L) {
  size_t n;
  const char *der = luaL_checklstring(L, 1, &n);
  const char *pass = luaL_optstring(L, 2, NULL);
  BIO *bio = n <= 0x7fffffff ? BIO_new_mem_buf(der, (int)n) : NULL;
  PKCS12 *p12 = bio ? d2i_PKCS12_bio(bio, NULL) : NULL;
  const ASN1_INTEGER *iter = NULL;
  int64_t mac_iter = 0;
  const char *msg = NULL;
  p12_walk w;
  memset(&w, 0, sizeof w);
  w.pass = pass;
  BIO_free(bio);
  if (!p12) return push_fail(L, "load_pkcs12", "not a PKCS#12 file");
  PKCS12_get0_mac(NULL, NULL, NULL, &iter, p12);
  if (iter && ASN1_INTEGER_get_int64(&mac_iter, iter) != 1) mac_iter = INT64_MAX;
  if (mac_iter < 0 || mac_iter > AZCMK_MAX_KDF_ITER) {  /* before the MAC's key derivation */
    azcmk_kdf_refusal(w.msg, sizeof w.msg, "the file's MAC", "iteration count", mac_iter, P12_HOWTO);
    msg = w.msg;
  } else if (!p12_mac_ok(p12, &w.pass)) {
    msg = "wrong password (MAC verification failed)";
  } else if (!(w.certs = sk_X509_new_null())) {
    msg = "out of memory";
  } else if (!p12_safes(&w, p12)) {
    msg = w.refused ? w.refused : "cannot parse PKCS#12";
  } else if (!w.pk) {
    msg = "no private key";
  } else if (!EVP_PKEY_is_a(w.pk, "RSA")) {
    msg = "not an RSA key";
  }
  PKCS12_free(p12);
  if (msg) {
    EVP_PKEY_free(w.pk);
    sk_X509_pop_free(w.certs, X509_free);
    return push_fail(L, "load_pkcs12", msg);
  }
  return push_bundle(L, "load_pkcs12", w.pk, NULL, w.certs);
}

/* ---- methods ---- */

static int l_der(lua_State *L) {
  X509 *x = cert_check(L, 1);
  unsigned char *der = NULL;
  int n = i2d_X509(x, &der);
  if (n <= 0) return azcmk_crypto_fail(L, "der", NULL);
  lua_pushlstring(L, (const char *)der, (size_t)n);
  OPENSSL_free(der);
  return 1;
}

static int thumbprint(lua_State *L, const char *mdname) {
  X509 *x = cert_check(L, 1);
  unsigned char md[EVP_MAX_MD_SIZE];
  char out[(EVP_MAX_MD_SIZE + 2) / 3 * 4];
  unsigned int len = 0;
  EVP_MD *m = EVP_MD_fetch(NULL, mdname, NULL);
  int ok = m && X509_digest(x, m, md, &len) == 1;
  EVP_MD_free(m);
  if (!ok) return azcmk_crypto_fail(L, "thumbprint", NULL);
  lua_pushlstring(L, out, azcmk_b64_encode(md, len, out, 1));
  return 1;
}

static int l_x5t(lua_State *L) { return thumbprint(L, "SHA1"); }
static int l_x5t_s256(lua_State *L) { return thumbprint(L, "SHA256"); }

static int l_pubkey(lua_State *L) {
  X509 *x = cert_check(L, 1);
  azcmk_pkey *k = azcmk_pkey_box(L);
  EVP_PKEY *pk = X509_get_pubkey(x);
  if (!pk || !EVP_PKEY_is_a(pk, "RSA")) {
    EVP_PKEY_free(pk);
    return push_fail(L, "pubkey", "not an RSA key");
  }
  azcmk_pkey_own(k, pk);
  return 1;
}

static int push_subject(lua_State *L, X509 *x) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p = NULL;
  long n;
  if (!b || X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) < 0) {
    BIO_free(b);
    return 0;
  }
  n = BIO_get_mem_data(b, &p);
  lua_pushlstring(L, p, (size_t)n);
  BIO_free(b);
  return 1;
}

static int l_subject(lua_State *L) {
  if (!push_subject(L, cert_check(L, 1))) return azcmk_crypto_fail(L, "subject", NULL);
  return 1;
}

static int l_not_after(lua_State *L) {
  X509 *x = cert_check(L, 1);
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  if (!ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm)) return azcmk_crypto_fail(L, "not_after", NULL);
  lua_pushinteger(L, (lua_Integer)timegm(&tm));
  return 1;
}

static int l_tostring(lua_State *L) {
  azcmk_cert *c = (azcmk_cert *)luaL_checkudata(L, 1, CERT_MT);
  if (!c->x) { lua_pushliteral(L, "azcmk.cert (closed)"); return 1; }
  lua_pushliteral(L, "azcmk.cert ");
  if (!push_subject(L, c->x)) { ERR_clear_error(); lua_pushliteral(L, "?"); }
  lua_concat(L, 2);
  return 1;
}

void azcmk_cert_register(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"der", l_der}, {"x5t", l_x5t}, {"x5t_s256", l_x5t_s256}, {"pubkey", l_pubkey},
    {"subject", l_subject}, {"not_after", l_not_after}, {"close", l_close}, {NULL, NULL}};
  static const luaL_Reg fns[] = {
    {"load_pem", l_load_pem}, {"load_pkcs12", l_load_pkcs12},
    {"cert_from_pem", l_cert_from_pem}, {"cert_from_der", l_cert_from_der}, {NULL, NULL}};
  azcmk_crypto_class(L, CERT_MT, methods, l_tostring);
  luaL_setfuncs(L, fns, 0);
}
