/* fuzz_headers.c - libFuzzer target for the HTTP response header parser.
 * Drives the pure-C line parser (src/headers.c) on the whole input and on each line,
 * checks its invariants, then builds the Lua header table from the input as a header
 * block (azcmk_http_push_headers, what the client does after a transfer) and calls the
 * Lua binding `parse_header_line`. Run: ./scripts/fuzz.sh fuzz_headers */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "headers.h"
#include "http.h"

int luaopen_azcmk_core(lua_State *L);

static int is_ows(char c) { return c == ' ' || c == '\t'; }

static void check_line(const char *p, size_t n) {
  struct azcmk_header h;
  enum azcmk_header_kind k = azcmk_header_parse(p, n, &h);
  switch (k) {
  case AZCMK_HDR_FIELD:
    if (h.name != p || h.name_len == 0 || h.name_len >= n || p[h.name_len] != ':') abort();
    for (size_t i = 0; i < h.name_len; i++)
      if (!azcmk_header_is_tchar((unsigned char)p[i])) abort();
    /* fall through: the value checks are shared */
  case AZCMK_HDR_CONT:
    if (h.value == NULL || h.value < p || h.value + h.value_len > p + n) abort();
    if (h.value_len && (is_ows(h.value[0]) || is_ows(h.value[h.value_len - 1]))) abort();
    for (size_t i = 0; i < h.value_len; i++)
      if (h.value[i] == '\r' || h.value[i] == '\n' || h.value[i] == '\0') abort();
    if (k == AZCMK_HDR_CONT && (h.name != NULL || !is_ows(p[0]))) abort();
    break;
  case AZCMK_HDR_STATUS:
    if (n < 5 || memcmp(p, "HTTP/", 5) != 0 || h.name || h.value) abort();
    break;
  case AZCMK_HDR_BLANK:
    if (n > 2 || h.name || h.value) abort();
    break;
  case AZCMK_HDR_INVALID:
    if (h.name || h.value) abort();
    break;
  default:
    abort();
  }
}

static int build(lua_State *S) {
  size_t n;
  const char *p = lua_tolstring(S, 1, &n);
  azcmk_http_push_headers(S, p, n);
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *p = (const char *)data;
  /* a fresh state per input: everything it allocates is freed by lua_close, so libFuzzer's
   * malloc/free balance holds and it does not run a leak scan after every input */
  lua_State *L = luaL_newstate();
  if (L == NULL) abort();
  luaopen_azcmk_core(L);
  lua_setglobal(L, "core");
  check_line(p, size);
  for (size_t off = 0; off < size;) {
    const char *nl = memchr(p + off, '\n', size - off);
    size_t len = nl ? (size_t)(nl - (p + off)) + 1 : size - off;
    check_line(p + off, len);
    off += len;
  }

  /* the header table the client builds: string keys in lower case, string values */
  lua_settop(L, 0);
  lua_pushcfunction(L, build);
  lua_pushlstring(L, p, size);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) abort();
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    size_t kl;
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) abort();
    const char *k = lua_tolstring(L, -2, &kl);
    if (kl == 0) abort();
    for (size_t i = 0; i < kl; i++)
      if ((k[i] >= 'A' && k[i] <= 'Z') || !azcmk_header_is_tchar((unsigned char)k[i])) abort();
    lua_pop(L, 1);
  }

  /* the Lua binding agrees with the C parser */
  lua_settop(L, 0);
  lua_getglobal(L, "core");
  lua_getfield(L, 1, "parse_header_line");
  lua_pushlstring(L, p, size);
  if (lua_pcall(L, 1, 2, 0) != LUA_OK) abort();
  struct azcmk_header h;
  int field = azcmk_header_parse(p, size, &h) == AZCMK_HDR_FIELD;
  if (field != !lua_isnil(L, 2)) abort();
  if (field && (lua_rawlen(L, 2) != h.name_len || lua_rawlen(L, 3) != h.value_len ||
                memcmp(lua_tostring(L, 3), h.value, h.value_len) != 0))
    abort();
  lua_close(L);
  return 0;
}
