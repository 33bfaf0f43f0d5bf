/* jwt.h - pure C helpers of the JWT part (also driven by fuzz/fuzz_jwt.c). */
#ifndef AZCMK_JWT_H
#define AZCMK_JWT_H

#include <stddef.h>

/* Looks up `key` among the members of the top-level JSON object in json[0..n).
 * Returns 1 and copies the (unescaped) string value to out (NUL-terminated) when the key
 * is present once with a string value that fits; 0 when the key is absent; -1 when the
 * text is not a JSON object, the key is repeated, its value is not a string or too long. */
int azcmk_json_top_string(const char *json, size_t n, const char *key, char *out, size_t outsize);

/* Splits a compact JWS into its three parts: dots[0], dots[1] are the offsets of the two
 * dots. Returns 0, or -1 when there are not exactly two dots. */
int azcmk_jwt_split(const char *tok, size_t n, size_t dots[2]);

#endif
