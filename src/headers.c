/* headers.c - HTTP response header-line parser (see headers.h). */
#include <string.h>
#include "headers.h"

/* RFC 9110 tchar: "!#$%&'*+-.^_`|~", DIGIT, ALPHA (a constant table, not state) */
static const unsigned char tchar[256] = {
  ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
  ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
  ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
  ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
  ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
  ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
  ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
  ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
  ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

int azcmk_header_is_tchar(unsigned char c) { return tchar[c]; }

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* Trims SP/HTAB on both sides of [*p, *p + *n) and rejects NUL, CR and LF inside. */
static int trim_value(const char **p, size_t *n) {
  const char *s = *p, *e = *p + *n;
  while (s < e && is_ows(*s)) s++;
  while (e > s && is_ows(e[-1])) e--;
  for (const char *q = s; q < e; q++) {
    unsigned char c = (unsigned char)*q;
    if (c <= '\r' && (c == '\0' || c == '\r' || c == '\n')) return 0; /* one test for most bytes */
  }
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
  if (line[0] == 'H' && len >= 5 && memcmp(line, "HTTP/", 5) == 0) return AZCMK_HDR_STATUS;
  if (is_ows(line[0])) {
    const char *v = line;
    size_t n = len;
    if (!trim_value(&v, &n)) return AZCMK_HDR_INVALID;
    out->value = v;
    out->value_len = n;
    return AZCMK_HDR_CONT;
  }
  size_t i = 0;
  while (i < len && tchar[(unsigned char)line[i]]) i++;
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
