/* http.h - pieces of the HTTP client (src/http.c) that specs' fuzzers drive directly. */
#ifndef AZCMK_HTTP_H
#define AZCMK_HTTP_H

#include <stddef.h>
#include "azcmk.h"

/* Pushes a Lua table built from a block of raw header lines (as collected during a
 * transfer, status lines already removed): lower-case names, repeated names joined with
 * ", ", obsolete folded lines appended to the previous value with one space, lines that
 * are not headers skipped. Raises only on memory errors. */
void azcmk_http_push_headers(lua_State *L, const char *block, size_t len);

/* "CURLE_OPERATION_TIMEDOUT" for 28, "CURLE_UNKNOWN" outside the table. */
const char *azcmk_curl_code_name(int code);

#endif
