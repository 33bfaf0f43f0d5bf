/* headers.h - the HTTP response header-line parser (pure C, no Lua), shared by the
 * client (src/http.c), the `parse_header_line` binding and fuzz/fuzz_headers.c. */
#ifndef AZCMK_HEADERS_H
#define AZCMK_HEADERS_H

#include <stddef.h>

enum azcmk_header_kind {
  AZCMK_HDR_INVALID = 0, /* not a header: no colon, empty or bad name, CR/LF/NUL in value */
  AZCMK_HDR_FIELD,       /* "Name: value" */
  AZCMK_HDR_STATUS,      /* a status line, "HTTP/..." (starts a new response) */
  AZCMK_HDR_BLANK,       /* the empty line that ends a header block */
  AZCMK_HDR_CONT         /* obsolete line folding: starts with SP or HTAB; value set */
};

struct azcmk_header {
  const char *name;  /* points into the line, original case; NULL unless FIELD */
  size_t name_len;
  const char *value; /* points into the line, leading/trailing SP/HTAB removed */
  size_t value_len;
};

/* Classifies one header line as libcurl hands it over (one line, usually ending in
 * CRLF). The trailing CRLF/LF is ignored. Names must be RFC 9110 tokens with nothing
 * between the name and the colon; values may not contain NUL, CR or LF. Never reads
 * outside line[0..len). */
enum azcmk_header_kind azcmk_header_parse(const char *line, size_t len, struct azcmk_header *out);

/* 1 if c is an RFC 9110 tchar. */
int azcmk_header_is_tchar(unsigned char c);

#endif
