/* fuzz_b64 - the base64/base64url codec (pure C helpers) and the JSON "alg" scanner.
 * Properties: decoding never overruns its bound; whatever decodes re-encodes to the
 * canonical form of the input (url alphabet, no padding), and both encodings decode back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "encoding.h"
#include "jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  size_t cap = azcmk_b64_decoded_max(size), n = 0, m, k, i, canon_len = 0;
  unsigned char *out = malloc(cap), *back;
  char *enc, *canon, alg[16];
  if (!out) return 0;
  if (azcmk_b64_decode(in, size, out, &n) == 0) {
    if (n > cap) abort();
    /* canonical form of the input */
    canon = malloc(size + 1);
    for (i = 0; i < size; i++) {
      char c = in[i];
      if (c == '=') continue;
      canon[canon_len++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    enc = malloc(azcmk_b64_encoded_len(n, 0) + 1);
    m = azcmk_b64_encode(out, n, enc, 1);
    if (m != azcmk_b64_encoded_len(n, 1) || m != canon_len || memcmp(enc, canon, m) != 0) abort();
    back = malloc(azcmk_b64_decoded_max(azcmk_b64_encoded_len(n, 0)));
    m = azcmk_b64_encode(out, n, enc, 0);
    if (m != azcmk_b64_encoded_len(n, 0) || m % 4 != 0) abort();
    if (azcmk_b64_decode(enc, m, back, &k) != 0 || k != n || memcmp(back, out, n) != 0) abort();
    free(back);
    free(enc);
    free(canon);
  }
  /* the same bytes as a JWT header */
  if (azcmk_json_top_string(in, size, "alg", alg, sizeof alg) == 1 && strlen(alg) >= sizeof alg) abort();
  {
    size_t dots[2];
    if (azcmk_jwt_split(in, size, dots) == 0 && !(dots[0] < dots[1] && dots[1] < size)) abort();
  }
  free(out);
  return 0;
}
