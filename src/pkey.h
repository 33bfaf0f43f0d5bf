/* pkey.h - the `azcmk.pkey` userdata and the RSA helpers cert.c and jwt.c share. */
#ifndef AZCMK_PKEY_H
#define AZCMK_PKEY_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include "azcmk.h"

#define AZCMK_PKEY_MT "azcmk.pkey"

#define AZCMK_PKEY_NCTX 10

typedef struct {
  EVP_PKEY *pk;                        /* NULL once closed */
  int priv;                            /* has the private exponent */
  EVP_PKEY_CTX *ctx[AZCMK_PKEY_NCTX];  /* per operation and alg, made on first use (pkey.c) */
  EVP_MD *sha256;                      /* fetched on first use */
} azcmk_pkey;

/* Signature algorithms, in the order of azcmk_sig_algs (for luaL_checkoption). */
enum { AZCMK_RS256 = 0, AZCMK_PS256 = 1 };
extern const char *const azcmk_sig_algs[];

/* Pushes an empty pkey userdata (closed until azcmk_pkey_own). Create the box before the
 * key, so a memory error while pushing cannot leak it. */
azcmk_pkey *azcmk_pkey_box(lua_State *L);
/* Hands pk to the box, which frees it on close / __gc. */
void azcmk_pkey_own(azcmk_pkey *k, EVP_PKEY *pk);
/* The open pkey at idx; raises on another type or a closed key. */
azcmk_pkey *azcmk_pkey_check(lua_State *L, int idx);
/* 1 when pk carries the RSA private exponent. */
int azcmk_pkey_has_private(const EVP_PKEY *pk);

/* Decodes one PEM key (public or private; PKCS#1, PKCS#8, SubjectPublicKeyInfo; encrypted
 * with pass, or pass NULL for none) into an RSA EVP_PKEY, or NULL with a message in err. */
EVP_PKEY *azcmk_pkey_decode_pem(const char *pem, size_t n, const char *pass, size_t passlen,
                                char *err, size_t errsize);

/* Key derivation from a password (encrypted PKCS#8, PKCS#12 bags and MAC) may ask for at
 * most this many iterations (scrypt: N*r*p); a PKCS#12 file its encrypted parts summed, its
 * MAC on its own. OpenSSL 3 writes 2048, Windows 2000, Java 10000; 10M PBKDF2-HMAC-SHA256
 * rounds take ~3.5 s (docs/crypto.md). */
#define AZCMK_MAX_KDF_ITER 10000000L

/* The key-derivation work a password-based encryption AlgorithmIdentifier (PBES2 with PBKDF2
 * or scrypt, PBES1, PKCS#12 PBE) asks for: its iteration count, or N*r*p for scrypt (*what
 * names which), INT64_MAX when a value does not fit; 0 for other algorithms and parameters
 * that do not parse (OpenSSL refuses those without deriving a key). */
int64_t azcmk_pbe_work(const X509_ALGOR *alg, const char **what);
/* Writes "<whose> key-derivation <what> <work> exceeds the limit ...; re-export ... (<howto>)". */
void azcmk_kdf_refusal(char *err, size_t errsize, const char *whose, const char *what,
                       int64_t work, const char *howto);

/* Signs data (hashed inside with SHA-256) with alg; *sig is OPENSSL_malloc'ed.
 * Returns 1, or 0 with a message in err (queue cleared). */
int azcmk_pkey_sign(azcmk_pkey *k, int alg, const unsigned char *data, size_t n,
                    unsigned char **sig, size_t *siglen, char *err, size_t errsize);
/* 1 if sig verifies, 0 if not (reason in err; queue cleared). */
int azcmk_pkey_verify(azcmk_pkey *k, int alg, const unsigned char *data, size_t n,
                      const unsigned char *sig, size_t siglen, char *err, size_t errsize);

#endif
