/* encoding.h - pure C base64 / base64url / hex helpers (also driven by fuzz/fuzz_b64.c). */
#ifndef AZCMK_ENCODING_H
#define AZCMK_ENCODING_H

#include <stddef.h>

/* Encoded size of n bytes: padded standard base64 (url=0) or unpadded base64url (url=1). */
size_t azcmk_b64_encoded_len(size_t n, int url);
/* Writes the encoding of in[0..n) to out (azcmk_b64_encoded_len bytes, no NUL); returns it. */
size_t azcmk_b64_encode(const unsigned char *in, size_t n, char *out, int url);
/* Upper bound of the decoded size of n characters. */
size_t azcmk_b64_decoded_max(size_t n);
/* Decodes either alphabet (`+/` or `-_`, not mixed within one symbol set check), with or
 * without `=` padding. Rejects any other character, misplaced or excess padding, an
 * impossible length and non-zero trailing bits. Returns 0 and sets *outlen, or -1. */
int azcmk_b64_decode(const char *in, size_t n, unsigned char *out, size_t *outlen);
/* Lower-case hex: writes 2n characters. */
void azcmk_hex(const unsigned char *in, size_t n, char *out);

#endif
