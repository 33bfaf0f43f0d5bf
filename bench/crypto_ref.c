/* crypto_ref.c - OpenSSL called directly from C, same parameters as azcmk, for
 * bench/crypto.sh: RSA-2048 RSA-OAEP-256 encrypt/s of 32 bytes (one prepared EVP_PKEY_CTX),
 * which `openssl speed` cannot measure. Usage: crypto_ref SECONDS */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 3, t0, t;
  EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  char oaep[] = "oaep", sha256[] = "SHA256";
  OSSL_PARAM p[] = {
    OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, oaep, 0),
    OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, sha256, 0),
    OSSL_PARAM_construct_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, sha256, 0),
    OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX *c = pk ? EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL) : NULL;
  unsigned char in[32] = {0}, out[256];
  size_t ol;
  long n = 0;
  int k;
  if (!c || EVP_PKEY_encrypt_init_ex(c, p) != 1) return 1;
  t0 = now();
  do {
    for (k = 0; k < 50; k++) {
      ol = sizeof out;
      if (EVP_PKEY_encrypt(c, out, &ol, in, sizeof in) != 1) return 1;
    }
    n += 50;
    t = now();
  } while (t - t0 < secs);
  printf("c_oaep256_encrypt %.1f\n", (double)n / (t - t0));
  EVP_PKEY_CTX_free(c);
  EVP_PKEY_free(pk);
  return 0;
}
