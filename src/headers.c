/* headers.c - HTTP response header-line parser (see headers.h). */
#include <string.h>
#include "headers.h"

int azcmk_header_is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* Trims SP/HTAB on both sides of [*p, *p + *n) and rejects NUL, CR and LF inside. */
static int trim_value(const char **p, size_t *n) {
  const char *s = *p, *e = *p + *n;
  while (s < e && is_ows(*s)) s++;
  while (e > s && is_ows(e[-1])) e--;
  for (const char *q = s; q < e; q++)
    if (*q == '\0' || *q == '\r' || *q == '\n') return 0;
  *p = s;
  *n = (size_t)(e - s);
  return 1;
}

enum azcmk_header_kind azcmk_header_parse(const char *line, size_t len, struct azcmk_header *out) {
  out->name = NULL;
  out->name_len = 0;
  out->value = NULL;
  out->value_len = 0;
  if (line == NULL) return AZCMK_HDR_INVALID;
  /* drop the line terminator: "\r\n", "\n" or a lone trailing "\r" */
  if (len > 0 && line[len - 1] == '\n') len--;
  if (len > 0 && line[len - 1] == '\r') len--;
  if (len == 0) return AZCMK_HDR_BLANK;
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) return AZCMK_HDR_STATUS;
  if (is_ows(line[0])) {
    const char *v = line;
    size_t n = len;
    if (!trim_value(&v, &n)) return AZCMK_HDR_INVALID;
    out->value = v;
    out->value_len = n;
    return AZCMK_HDR_CONT;
  }
  size_t i = 0;
  while (i < len && azcmk_header_is_tchar((unsigned char)line[i])) i++;
  if (i == 0 || i >= len || line[i] != ':') return AZCMK_HDR_INVALID;
  const char *v = line + i + 1;
  size_t n = len - i - 1;
  if (!trim_value(&v, &n)) return AZCMK_HDR_INVALID;
  out->name = line;
  out->name_len = i;
  out->value = v;
  out->value_len = n;
  return AZCMK_HDR_FIELD;
}
