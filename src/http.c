/* http.c - the core's HTTP client on libcurl (docs/core-api.md, "HTTP").
 *
 * A client (userdata "azcmk.http") owns everything C-side: one easy handle for
 * `request`, a pool of easy handles plus one multi handle for `batch`, another pool and multi
 * handle for the stream (`submit` / `collect` / `abandon`), one share handle
 * (connections, DNS, TLS sessions) that all of them use, and every buffer a transfer
 * fills. So a Lua error after a transfer (e.g. out of memory while building the result)
 * leaks nothing: the buffers are reused by the next call and freed by close/__gc.
 *
 * No Lua code runs during a transfer: libcurl callbacks only append to C buffers, Lua
 * tables are built afterwards. Arguments are validated (and may raise) before any I/O.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "azcmk.h"
#include "headers.h"
#include "http.h"

#define CLIENT_MT "azcmk.http"
#define DEFAULT_UA "azcmk/" AZCMK_VERSION
/* Never proxied: loopback and every allow_http host (the caller's list: azcmk's transports
 * pass IMDS and loopback, lua/azcmk/transport/contract.lua). Plain-http requests carry
 * secrets in the clear (the App Service X-IDENTITY-HEADER, tokens in replies), so a proxy
 * must not see them. */
#define ALWAYS_DIRECT "127.0.0.1,localhost,::1"
#define DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define DEFAULT_TIMEOUT_MS 30000L
#define MAX_TIMEOUT_MS (24L * 3600L * 1000L)
#define DEFAULT_MAX_BODY (64L * 1024L * 1024L)
#define MAX_HEADER_BYTES (1024 * 1024)
#define DEFAULT_PARALLEL 16
#define MAX_PARALLEL 256
#define REFUSED "AZCMK_HTTP_REFUSED"

/* ---------------------------------------------------------------- code names */

#define N(x) [x] = #x
static const char *const curle_names[] = {
  N(CURLE_OK), N(CURLE_UNSUPPORTED_PROTOCOL), N(CURLE_FAILED_INIT), N(CURLE_URL_MALFORMAT),
  N(CURLE_NOT_BUILT_IN), N(CURLE_COULDNT_RESOLVE_PROXY), N(CURLE_COULDNT_RESOLVE_HOST),
  N(CURLE_COULDNT_CONNECT), N(CURLE_WEIRD_SERVER_REPLY), N(CURLE_REMOTE_ACCESS_DENIED),
  N(CURLE_FTP_ACCEPT_FAILED), N(CURLE_FTP_WEIRD_PASS_REPLY), N(CURLE_FTP_ACCEPT_TIMEOUT),
  N(CURLE_FTP_WEIRD_PASV_REPLY), N(CURLE_FTP_WEIRD_227_FORMAT), N(CURLE_FTP_CANT_GET_HOST),
  N(CURLE_HTTP2), N(CURLE_FTP_COULDNT_SET_TYPE), N(CURLE_PARTIAL_FILE),
  N(CURLE_FTP_COULDNT_RETR_FILE), N(CURLE_OBSOLETE20), N(CURLE_QUOTE_ERROR),
  N(CURLE_HTTP_RETURNED_ERROR), N(CURLE_WRITE_ERROR), N(CURLE_OBSOLETE24),
  N(CURLE_UPLOAD_FAILED), N(CURLE_READ_ERROR), N(CURLE_OUT_OF_MEMORY),
  N(CURLE_OPERATION_TIMEDOUT), N(CURLE_OBSOLETE29), N(CURLE_FTP_PORT_FAILED),
  N(CURLE_FTP_COULDNT_USE_REST), N(CURLE_OBSOLETE32), N(CURLE_RANGE_ERROR),
  N(CURLE_HTTP_POST_ERROR), N(CURLE_SSL_CONNECT_ERROR), N(CURLE_BAD_DOWNLOAD_RESUME),
  N(CURLE_FILE_COULDNT_READ_FILE), N(CURLE_LDAP_CANNOT_BIND), N(CURLE_LDAP_SEARCH_FAILED),
  N(CURLE_OBSOLETE40), N(CURLE_FUNCTION_NOT_FOUND), N(CURLE_ABORTED_BY_CALLBACK),
  N(CURLE_BAD_FUNCTION_ARGUMENT), N(CURLE_OBSOLETE44), N(CURLE_INTERFACE_FAILED),
  N(CURLE_OBSOLETE46), N(CURLE_TOO_MANY_REDIRECTS), N(CURLE_UNKNOWN_OPTION),
  N(CURLE_SETOPT_OPTION_SYNTAX), N(CURLE_OBSOLETE50), N(CURLE_OBSOLETE51),
  N(CURLE_GOT_NOTHING), N(CURLE_SSL_ENGINE_NOTFOUND), N(CURLE_SSL_ENGINE_SETFAILED),
  N(CURLE_SEND_ERROR), N(CURLE_RECV_ERROR), N(CURLE_OBSOLETE57), N(CURLE_SSL_CERTPROBLEM),
  N(CURLE_SSL_CIPHER), N(CURLE_PEER_FAILED_VERIFICATION), N(CURLE_BAD_CONTENT_ENCODING),
  N(CURLE_OBSOLETE62), N(CURLE_FILESIZE_EXCEEDED), N(CURLE_USE_SSL_FAILED),
  N(CURLE_SEND_FAIL_REWIND), N(CURLE_SSL_ENGINE_INITFAILED), N(CURLE_LOGIN_DENIED),
  N(CURLE_TFTP_NOTFOUND), N(CURLE_TFTP_PERM), N(CURLE_REMOTE_DISK_FULL), N(CURLE_TFTP_ILLEGAL),
  N(CURLE_TFTP_UNKNOWNID), N(CURLE_REMOTE_FILE_EXISTS), N(CURLE_TFTP_NOSUCHUSER),
  N(CURLE_OBSOLETE75), N(CURLE_OBSOLETE76), N(CURLE_SSL_CACERT_BADFILE),
  N(CURLE_REMOTE_FILE_NOT_FOUND), N(CURLE_SSH), N(CURLE_SSL_SHUTDOWN_FAILED), N(CURLE_AGAIN),
  N(CURLE_SSL_CRL_BADFILE), N(CURLE_SSL_ISSUER_ERROR), N(CURLE_FTP_PRET_FAILED),
  N(CURLE_RTSP_CSEQ_ERROR), N(CURLE_RTSP_SESSION_ERROR), N(CURLE_FTP_BAD_FILE_LIST),
  N(CURLE_CHUNK_FAILED), N(CURLE_NO_CONNECTION_AVAILABLE), N(CURLE_SSL_PINNEDPUBKEYNOTMATCH),
  N(CURLE_SSL_INVALIDCERTSTATUS), N(CURLE_HTTP2_STREAM), N(CURLE_RECURSIVE_API_CALL),
  N(CURLE_AUTH_ERROR), N(CURLE_HTTP3), N(CURLE_QUIC_CONNECT_ERROR), N(CURLE_PROXY),
  N(CURLE_SSL_CLIENTCERT), N(CURLE_UNRECOVERABLE_POLL),
};
static const char *const curlm_names[] = {
  N(CURLM_OK), N(CURLM_BAD_HANDLE), N(CURLM_BAD_EASY_HANDLE), N(CURLM_OUT_OF_MEMORY),
  N(CURLM_INTERNAL_ERROR), N(CURLM_BAD_SOCKET), N(CURLM_UNKNOWN_OPTION),
  N(CURLM_ADDED_ALREADY), N(CURLM_RECURSIVE_API_CALL), N(CURLM_WAKEUP_FAILURE),
  N(CURLM_BAD_FUNCTION_ARGUMENT), N(CURLM_ABORTED_BY_CALLBACK), N(CURLM_UNRECOVERABLE_POLL),
};
#undef N

const char *azcmk_curl_code_name(int code) {
  if (code >= 0 && (size_t)code < sizeof(curle_names) / sizeof(curle_names[0]) && curle_names[code])
    return curle_names[code];
  return "CURLE_UNKNOWN";
}

static const char *curlm_code_name(CURLMcode code) {
  if ((int)code >= 0 && (size_t)code < sizeof(curlm_names) / sizeof(curlm_names[0]) && curlm_names[code])
    return curlm_names[code];
  return "CURLM_UNKNOWN";
}

/* ---------------------------------------------------------------- buffers */

struct buf {
  char *p;
  size_t len, cap;
};

/* Grows with OPENSSL_clear_realloc: response bodies carry tokens, so old copies are wiped. */
static int buf_append(struct buf *b, const char *s, size_t n) {
  if (n == 0) return 0;
  if (n > b->cap - b->len) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < n) {
      if (cap > ((size_t)-1) / 2) return -1;
      cap *= 2;
    }
    char *p = OPENSSL_clear_realloc(b->p, b->cap, cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  return 0;
}

static int buf_appends(struct buf *b, const char *s) { return buf_append(b, s, strlen(s)); }

/* Empties the buffer, wiping what it held. */
static void buf_clear(struct buf *b) {
  if (b->p && b->len) OPENSSL_cleanse(b->p, b->len);
  b->len = 0;
}

static void buf_free(struct buf *b) {
  if (b->p) OPENSSL_clear_free(b->p, b->cap);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* Request headers may hold bearer tokens: wipe them before libcurl frees the list. */
static void slist_wipe_free(struct curl_slist *l) {
  for (struct curl_slist *i = l; i; i = i->next)
    if (i->data) OPENSSL_cleanse(i->data, strlen(i->data));
  curl_slist_free_all(l);
}

/* ---------------------------------------------------------------- types */

enum { X_IDLE = 0, X_PENDING, X_RUNNING, X_DONE, X_FAILED };

struct xfer {
  CURL *easy;
  struct buf body, hdr;
  struct curl_slist *req_headers;
  CURLU *url;       /* parsed and checked ... */
  char *url_str;    /* ... from this string: reused while requests repeat it */
  int url_http;     /* that URL is plain http (to an allow_http host) */
  unsigned np_gen;  /* the client's no_proxy generation last set on this handle */
  size_t max_body;
  int oom;
  int hdr_lines;       /* lines in hdr (sizes the Lua table) */
  const char *too_big; /* why a transfer was cut short by a size limit */
  int state;
  CURLcode rc;
  const char *fail_code; /* X_FAILED: a static code name; the message is in errbuf */
  const char *ca_error;  /* set by on_ssl_ctx: the CA file that could not be loaded */
  char errbuf[CURL_ERROR_SIZE];
};

struct client {
  int closed;
  CURLSH *share;
  CURLM *multi;
  struct xfer one;   /* `request` */
  struct xfer **bx;  /* `batch`: kept (with their easy handles) for the next batch */
  size_t bx_n;
  CURLM *smulti;     /* `submit` / `collect`: a multi handle of its own (connections are shared) */
  struct xfer **sx;  /* their transfers, by slot; X_IDLE ones are free */
  size_t sx_n;
  /* configuration */
  char *ca_file;
  X509_STORE *store; /* the CAs, built on the first connection (trust_store) */
  char *user_agent;
  char *no_proxy; /* comma-separated: ALWAYS_DIRECT, the allow_http hosts, the caller's */
  struct curl_slist *connect_to;
  char **allow_http;
  size_t n_allow;
  long connect_timeout_ms, timeout_ms, http_version;
  size_t max_body;
  struct buf noproxy; /* no_proxy + the environment's, rebuilt when the environment changes */
  char *np_env;       /* the environment's no_proxy it was built from (NULL: none) */
  unsigned np_gen;    /* generation of the current list; 0 = not built */
  unsigned np_count;  /* generations handed out */
};

/* A request table read and checked, before anything is allocated. */
struct reqspec {
  const char *url;
  char method[32];
  const char *body;
  size_t body_len;
  long timeout_ms, connect_timeout_ms;
};

/* ---------------------------------------------------------------- argument checks */

static int curl_inited; /* the one piece of global state: curl_global_init ran */

static void ensure_global_init(lua_State *L) {
  /* libcurl 7.84+ makes curl_global_init itself thread-safe (CURL_VERSION_THREADSAFE,
   * reported by bookworm's build); the flag only avoids calling it per client. */
  if (!curl_inited) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      luaL_error(L, "azcmk.http: curl_global_init failed");
    curl_inited = 1;
  }
}

static const char *typename_at(lua_State *L, int idx) { return luaL_typename(L, idx); }

/* Optional string field t[key]; raises on another type. Leaves the value on the stack, so
 * the string stays alive whatever happens to the table (a finalizer may change it). */
static const char *opt_string_keep(lua_State *L, int t, const char *key, const char *where) {
  lua_getfield(L, t, key);
  const char *s = NULL;
  if (lua_type(L, -1) == LUA_TSTRING)
    s = lua_tostring(L, -1);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "%s: '%s' must be a string (got %s)", where, key, typename_at(L, -1));
  return s;
}

/* Optional integral number field within [lo, hi]; def when absent. */
static long opt_int_field(lua_State *L, int t, const char *key, long def, long lo, long hi,
                          const char *where) {
  lua_getfield(L, t, key);
  long v = def;
  if (lua_type(L, -1) == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, -1);
    if (!(n >= (lua_Number)lo && n <= (lua_Number)hi) || n != (lua_Number)(long)n) {
      char range[64];
      snprintf(range, sizeof range, "[%ld, %ld]", lo, hi);
      luaL_error(L, "%s: '%s' must be an integer in %s", where, key, range);
    }
    v = (long)n;
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "%s: '%s' must be a number (got %s)", where, key, typename_at(L, -1));
  }
  lua_pop(L, 1);
  return v;
}

/* Optional array-of-strings field: returns its length (0 if absent), raises on bad types.
 * Leaves the table on the stack when present (returns its index in *idx), else *idx = 0. */
static size_t opt_string_list(lua_State *L, int t, const char *key, int *idx, const char *where) {
  lua_getfield(L, t, key);
  *idx = 0;
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_istable(L, -1))
    luaL_error(L, "%s: '%s' must be a list of strings (got %s)", where, key, typename_at(L, -1));
  size_t n = lua_rawlen(L, -1);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, (int)i);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "%s: '%s'[%d] must be a string (got %s)", where, key, (int)i, typename_at(L, -1));
    lua_pop(L, 1);
  }
  *idx = lua_gettop(L);
  return n;
}

static int has_ctl(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
  return 0;
}

/* Validates a request table at `t`; raises with `where` on programmer errors. Leaves two
 * values on the stack, the url and the body (or nil), which r->url and r->body point into. */
static void read_request(lua_State *L, int t, struct reqspec *r, const char *where, const struct client *c) {
  t = lua_absindex(L, t);
  if (!lua_istable(L, t)) luaL_error(L, "%s: request must be a table (got %s)", where, typename_at(L, t));
  memset(r, 0, sizeof *r);
  r->url = opt_string_keep(L, t, "url", where);
  if (r->url == NULL) luaL_error(L, "%s: 'url' is required", where);
  int url_idx = lua_gettop(L);
  const char *m = opt_string_keep(L, t, "method", where);
  if (m == NULL) m = "GET";
  size_t ml = strlen(m);
  if (ml == 0 || ml >= sizeof r->method) luaL_error(L, "%s: bad method '%s'", where, m);
  for (size_t i = 0; i < ml; i++) {
    if (!azcmk_header_is_tchar((unsigned char)m[i])) luaL_error(L, "%s: bad method '%s'", where, m);
    r->method[i] = (char)toupper((unsigned char)m[i]);
  }
  lua_pop(L, 1); /* method */
  r->timeout_ms = opt_int_field(L, t, "timeout_ms", c->timeout_ms, 1, MAX_TIMEOUT_MS, where);
  r->connect_timeout_ms =
      opt_int_field(L, t, "connect_timeout_ms", c->connect_timeout_ms, 1, MAX_TIMEOUT_MS, where);
  lua_getfield(L, t, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      size_t nl, vl;
      if (lua_type(L, -2) != LUA_TSTRING)
        luaL_error(L, "%s: header names must be strings (got %s)", where, typename_at(L, -2));
      const char *name = lua_tolstring(L, -2, &nl);
      for (size_t i = 0; i < nl; i++)
        if (!azcmk_header_is_tchar((unsigned char)name[i]))
          luaL_error(L, "%s: bad header name '%s'", where, name);
      if (nl == 0) luaL_error(L, "%s: empty header name", where);
      int vt = lua_type(L, -1);
      if (vt == LUA_TSTRING) {
        const char *v = lua_tolstring(L, -1, &vl);
        if (has_ctl(v, vl)) luaL_error(L, "%s: header '%s' has CR, LF or NUL in its value", where, name);
      } else if (!(vt == LUA_TNUMBER || (vt == LUA_TBOOLEAN && !lua_toboolean(L, -1)))) {
        luaL_error(L, "%s: header '%s' must be a string, a number or false (got %s)", where, name,
                   typename_at(L, -1));
      }
      lua_pop(L, 1);
    }
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "%s: 'headers' must be a table (got %s)", where, typename_at(L, -1));
  }
  lua_pop(L, 1);
  lua_getfield(L, t, "body");
  if (lua_type(L, -1) == LUA_TSTRING) {
    r->body = lua_tolstring(L, -1, &r->body_len);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "%s: 'body' must be a string (got %s)", where, typename_at(L, -1));
  }
  if (lua_gettop(L) != url_idx + 1) luaL_error(L, "%s: internal stack error", where);
}

/* ---------------------------------------------------------------- libcurl callbacks */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  struct xfer *x = ud;
  size_t n = size * nmemb;
  if (n > x->max_body - x->body.len) {
    x->too_big = "response body larger than max_body_bytes";
    return 0;
  }
  if (buf_append(&x->body, ptr, n)) {
    x->oom = 1;
    return 0;
  }
  return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
  struct xfer *x = ud;
  size_t n = size * nmemb;
  /* A new status line starts a new response (100-continue, proxy CONNECT, auth rounds):
   * keep only the final response's headers. (The same test as azcmk_header_parse's.) */
  if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
    buf_clear(&x->hdr);
    x->hdr_lines = 0;
    return n;
  }
  if (n > MAX_HEADER_BYTES - x->hdr.len) {
    x->too_big = "response headers larger than 1 MiB";
    return 0;
  }
  if (buf_append(&x->hdr, ptr, n)) {
    x->oom = 1;
    return 0;
  }
  x->hdr_lines++;
  return n;
}

/* ---------------------------------------------------------------- transfers */

/* Which CAs to trust: the client's ca_file (if any) plus the system's CA directory (libcurl's
 * built-in CURLOPT_CAPATH, Debian's /etc/ssl/certs), or libcurl's built-in bundle where there is
 * no directory. The client builds one X509_STORE on its first connection and hands it to every
 * later connection (CURLOPT_SSL_CTX_FUNCTION), so the file is parsed once per client and each
 * issuer read from the directory once, instead of libcurl re-reading them per connection: ~35 ms
 * of CPU per connection with Debian's 146-CA bundle, ~0.3 ms with one CA (bench/newconn.sh). */
static X509_STORE *trust_store(struct client *c, CURL *curl) {
  if (c->store) return c->store;
  X509_STORE *st = X509_STORE_new();
  if (st == NULL) return NULL;
  char *dir = NULL, *bundle = NULL;
  struct stat sb;
  int ok = 1;
  if (c->ca_file) ok = X509_STORE_load_file(st, c->ca_file) == 1;
  if (ok && curl_easy_getinfo(curl, CURLINFO_CAPATH, &dir) == CURLE_OK && dir && stat(dir, &sb) == 0 &&
      S_ISDIR(sb.st_mode))
    ok = X509_STORE_load_path(st, dir) == 1;
  else if (ok && !c->ca_file && curl_easy_getinfo(curl, CURLINFO_CAINFO, &bundle) == CURLE_OK && bundle)
    ok = X509_STORE_load_file(st, bundle) == 1;
  /* as libcurl sets on its own stores: a CA file may hold an intermediate to trust */
  if (ok) ok = X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_TRUSTED_FIRST) == 1;
  if (!ok) {
    X509_STORE_free(st);
    ERR_clear_error();
    return NULL;
  }
  c->store = st;
  return st;
}

static CURLcode on_ssl_ctx(CURL *curl, void *ssl_ctx, void *arg) {
  struct client *c = (struct client *)arg;
  X509_STORE *st = trust_store(c, curl);
  if (st == NULL) {
    struct xfer *x = NULL;
    if (curl_easy_getinfo(curl, CURLINFO_PRIVATE, (char **)&x) == CURLE_OK && x)
      x->ca_error = c->ca_file ? c->ca_file : "the system CA certificates";
    return CURLE_SSL_CACERT_BADFILE;
  }
  SSL_CTX_set1_cert_store((SSL_CTX *)ssl_ctx, st);
  return CURLE_OK;
}

/* libcurl loads no CA itself; on_ssl_ctx installs the client's store. A libcurl without the
 * OpenSSL callback keeps its own loading of ca_file (and its defaults). */
static int set_trust(struct client *c, CURL *e) {
  if (curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx) == CURLE_OK) {
    int bad = curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, (void *)c) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CAINFO, NULL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CAPATH, NULL) != CURLE_OK;
    return bad;
  }
  return c->ca_file ? curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file) != CURLE_OK : 0;
}

/* Options that stay the same for every transfer of a client. */
static int xfer_init(struct client *c, struct xfer *x) {
  x->easy = curl_easy_init();
  if (x->easy == NULL) return -1;
  CURL *e = x->easy;
  int bad = 0;
  bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)x) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)x) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)x) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SHARE, c->share) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, c->http_version) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent) != CURLE_OK;
  bad |= set_trust(c, e);
  if (c->connect_to) bad |= curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to) != CURLE_OK;
  x->max_body = c->max_body;
  return bad ? -1 : 0;
}

static void xfer_reset(struct xfer *x) {
  buf_clear(&x->body);
  buf_clear(&x->hdr);
  if (x->req_headers) slist_wipe_free(x->req_headers);
  x->req_headers = NULL;
  x->oom = 0;
  x->hdr_lines = 0;
  x->too_big = NULL;
  x->rc = CURLE_OK;
  x->fail_code = NULL;
  x->state = X_IDLE;
  x->errbuf[0] = '\0';
  x->ca_error = NULL;
}

static void xfer_free(struct xfer *x) {
  xfer_reset(x);
  if (x->easy) curl_easy_cleanup(x->easy);
  x->easy = NULL;
  if (x->url) curl_url_cleanup(x->url);
  x->url = NULL;
  free(x->url_str);
  x->url_str = NULL;
  buf_free(&x->body);
  buf_free(&x->hdr);
}

static void xfer_fail(struct xfer *x, const char *code, const char *msg) {
  x->state = X_FAILED;
  x->fail_code = code;
  snprintf(x->errbuf, sizeof x->errbuf, "%s", msg);
}

static int host_allowed_http(const struct client *c, const char *host) {
  size_t hl = strlen(host);
  if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
    host++;
    hl -= 2;
  }
  for (size_t i = 0; i < c->n_allow; i++) {
    const char *a = c->allow_http[i];
    size_t al = strlen(a);
    if (al >= 2 && a[0] == '[' && a[al - 1] == ']') {
      a++;
      al -= 2;
    }
    if (al == hl && strncasecmp(a, host, hl) == 0) return 1;
  }
  return 0;
}

/* no_proxy for this transfer: ours plus the environment's (CURLOPT_NOPROXY replaces the
 * environment's list, so it is merged here; libcurl reads no_proxy before NO_PROXY). */
static char *dup_str(const char *s);

static const char *noproxy_for_request(struct client *c) {
  const char *env = getenv("no_proxy");
  if (env == NULL || *env == '\0') env = getenv("NO_PROXY");
  if (env && *env == '\0') env = NULL;
  if (c->np_gen && (env == NULL ? c->np_env == NULL : c->np_env && strcmp(env, c->np_env) == 0))
    return c->noproxy.p; /* unchanged */
  free(c->np_env);
  c->np_env = NULL;
  c->np_gen = 0;
  buf_clear(&c->noproxy);
  if (env && strcmp(env, "*") == 0) {
    if (buf_appends(&c->noproxy, "*")) return NULL;
  } else {
    if (buf_appends(&c->noproxy, c->no_proxy)) return NULL;
    if (env && (buf_appends(&c->noproxy, ",") || buf_appends(&c->noproxy, env))) return NULL;
  }
  if (buf_append(&c->noproxy, "", 1)) return NULL;
  if (env && (c->np_env = dup_str(env)) == NULL) return NULL;
  if (++c->np_count == 0) c->np_count = 1;
  c->np_gen = c->np_count; /* never 0 */
  return c->noproxy.p;
}

/* Fills the request headers; the table is at `t` (validated). 0, or -1 out of memory. */
static int build_headers(lua_State *L, struct xfer *x, int t, int has_body) {
  int has_ct = 0;
  struct buf line = {0};
  int rc = 0;
  lua_getfield(L, t, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, -2)) {
      size_t nl, vl = 0;
      const char *name = lua_tolstring(L, -2, &nl);
      const char *v = NULL;
      if (lua_type(L, -1) == LUA_TNUMBER) {
        lua_pushvalue(L, -1);
        v = lua_tolstring(L, -1, &vl); /* converts the copy, not the table's value */
        lua_replace(L, -2);
      } else if (lua_type(L, -1) == LUA_TSTRING) {
        v = lua_tolstring(L, -1, &vl);
      }
      if (nl == 12 && strncasecmp(name, "content-type", 12) == 0) has_ct = 1;
      buf_clear(&line);
      /* "Name: v" sends v; "Name;" sends an empty value; false -> "Name:" removes it. */
      int err = buf_append(&line, name, nl);
      if (v == NULL) err = err || buf_appends(&line, ":");
      else if (vl == 0) err = err || buf_appends(&line, ";");
      else err = err || buf_appends(&line, ": ") || buf_append(&line, v, vl);
      if (err || buf_append(&line, "", 1)) {
        rc = -1;
      } else {
        struct curl_slist *l = curl_slist_append(x->req_headers, line.p);
        if (l == NULL) rc = -1; else x->req_headers = l;
      }
      lua_pop(L, 1);
    }
    if (rc != 0) lua_pop(L, 1); /* the key lua_next left */
  }
  lua_pop(L, 1);
  buf_free(&line);
  if (rc == 0 && has_body && !has_ct) {
    /* libcurl would invent "application/x-www-form-urlencoded"; send no type instead. */
    struct curl_slist *l = curl_slist_append(x->req_headers, "Content-Type:");
    if (l == NULL) rc = -1; else x->req_headers = l;
  }
  return rc;
}

/* Parses and checks the URL into x->url (https, or http to an allow_http host), reusing
 * the last parse when the string repeats. 0, or -1 with x X_FAILED. */
static int xfer_set_url(struct client *c, struct xfer *x, const char *url, int *is_http) {
  if (x->url && x->url_str && strcmp(x->url_str, url) == 0) {
    *is_http = x->url_http;
    return 0;
  }
  free(x->url_str);
  x->url_str = NULL;
  /* a fresh handle each time: setting a URL on a used one resolves it as relative */
  if (x->url) curl_url_cleanup(x->url);
  if ((x->url = curl_url()) == NULL) {
    xfer_fail(x, "CURLE_OUT_OF_MEMORY", "out of memory");
    return -1;
  }
  CURLUcode uc = curl_url_set(x->url, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
  if (uc != CURLUE_OK) {
    char msg[200];
    snprintf(msg, sizeof msg, "bad URL: %s", curl_url_strerror(uc));
    xfer_fail(x, "CURLE_URL_MALFORMAT", msg);
    return -1;
  }
  char *scheme = NULL, *host = NULL;
  char msg[CURL_ERROR_SIZE];
  const char *fail = NULL;
  *is_http = 0;
  if (curl_url_get(x->url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
    fail = "CURLE_URL_MALFORMAT";
    snprintf(msg, sizeof msg, "bad URL: no scheme");
  } else if (strcasecmp(scheme, "https") != 0 && strcasecmp(scheme, "http") != 0) {
    fail = REFUSED;
    snprintf(msg, sizeof msg, "scheme '%.40s' refused (only https, or http to allow_http hosts)", scheme);
  } else if (curl_url_get(x->url, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
    fail = "CURLE_URL_MALFORMAT";
    snprintf(msg, sizeof msg, "bad URL: no host");
  } else if (strcasecmp(scheme, "http") == 0) {
    *is_http = 1;
    if (!host_allowed_http(c, host)) {
      fail = REFUSED;
      snprintf(msg, sizeof msg,
               "plain http refused for host '%.100s' (only https, or http to allow_http hosts)", host);
    }
  }
  curl_free(scheme);
  curl_free(host);
  if (fail) {
    xfer_fail(x, fail, msg);
    return -1;
  }
  x->url_str = dup_str(url); /* NULL (out of memory) only means no reuse next time */
  x->url_http = *is_http;
  return 0;
}

/* Sets up x for the request table at `t` (already read into r). Returns 0 when ready,
 * -1 when x is X_FAILED (refused, malformed URL, out of memory) with its message set.
 * Does no I/O. */
static int xfer_prepare(lua_State *L, struct client *c, struct xfer *x, int t, const struct reqspec *r) {
  xfer_reset(x);
  if (x->easy == NULL && xfer_init(c, x) != 0) {
    xfer_fail(x, "CURLE_OUT_OF_MEMORY", "azcmk.http: could not set up a libcurl handle");
    return -1;
  }
  int is_http;
  if (xfer_set_url(c, x, r->url, &is_http) != 0) return -1;

  const char *noproxy = noproxy_for_request(c);
  int posts = r->body != NULL || strcmp(r->method, "POST") == 0;
  if (noproxy == NULL || build_headers(L, x, t, posts) != 0) {
    xfer_fail(x, "CURLE_OUT_OF_MEMORY", "out of memory");
    return -1;
  }
  CURL *e = x->easy;
  int bad = 0;
  bad |= curl_easy_setopt(e, CURLOPT_CURLU, x->url) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, is_http ? "http,https" : "https") != CURLE_OK;
  if (x->np_gen != c->np_gen) {
    bad |= curl_easy_setopt(e, CURLOPT_NOPROXY, noproxy) != CURLE_OK;
    x->np_gen = c->np_gen;
  }
  bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms) != CURLE_OK;
  bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->req_headers) != CURLE_OK;
  /* method: HTTPGET resets whatever the previous request set (POST, NOBODY) */
  bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
  const char *m = r->method;
  if (strcmp(m, "HEAD") == 0) {
    bad |= curl_easy_setopt(e, CURLOPT_NOBODY, 1L) != CURLE_OK;
  } else if (posts) {
    /* POST without a body still sends Content-Length: 0 (Azure answers 411 otherwise) */
    curl_off_t size = (curl_off_t)(r->body ? r->body_len : 0);
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, size) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "") != CURLE_OK;
  }
  int standard = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "POST") == 0;
  bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, standard ? NULL : m) != CURLE_OK;
  if (bad) {
    xfer_fail(x, "CURLE_BAD_FUNCTION_ARGUMENT", "azcmk.http: libcurl refused an option");
    return -1;
  }
  x->state = X_PENDING;
  return 0;
}

/* ---------------------------------------------------------------- results */

static void push_headers_sized(lua_State *L, const char *p, size_t len, int lines) {
  const char *s = p, *end = p + len;
  lua_createtable(L, 0, lines < 32 ? lines : 32); /* usually sized once: no rehash while filling */
  int t = lua_gettop(L);
  int multi = 0;   /* index of the repeated-headers table, once there is one */
  lua_pushnil(L);  /* its slot, at t + 1 */
  char lower[128];
  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t ll = nl ? (size_t)(nl - s) + 1 : (size_t)(end - s);
    struct azcmk_header h;
    enum azcmk_header_kind k = azcmk_header_parse(s, ll, &h);
    s += ll;
    if (k != AZCMK_HDR_FIELD) continue;
    luaL_Buffer b;
    if (h.name_len <= sizeof lower) {
      for (size_t i = 0; i < h.name_len; i++) lower[i] = (char)tolower((unsigned char)h.name[i]);
      lua_pushlstring(L, lower, h.name_len);
    } else {
      luaL_buffinit(L, &b);
      for (size_t i = 0; i < h.name_len; i++) luaL_addchar(&b, (char)tolower((unsigned char)h.name[i]));
      luaL_pushresult(&b);
    }
    if (s >= end || (*s != ' ' && *s != '\t')) {
      lua_pushlstring(L, h.value, h.value_len);
    } else { /* obsolete line folding: continuation lines belong to this value */
      luaL_buffinit(L, &b);
      luaL_addlstring(&b, h.value, h.value_len);
      while (s < end) {
        nl = memchr(s, '\n', (size_t)(end - s));
        ll = nl ? (size_t)(nl - s) + 1 : (size_t)(end - s);
        struct azcmk_header c;
        if (azcmk_header_parse(s, ll, &c) != AZCMK_HDR_CONT) break;
        if (c.value_len) {
          luaL_addchar(&b, ' ');
          luaL_addlstring(&b, c.value, c.value_len);
        }
        s += ll;
      }
      luaL_pushresult(&b);
    }
    /* stack: name value */
    lua_pushvalue(L, -2);
    lua_rawget(L, t);
    if (lua_isnil(L, -1)) { /* first time: t[name] = value */
      lua_pop(L, 1);
      lua_rawset(L, t);
      continue;
    }
    lua_pop(L, 1);
    /* repeated: collect the values in multi[name] = { first, second, ... } and join them
     * once at the end (joining as they come would be quadratic) */
    if (multi == 0) {
      lua_newtable(L);
      lua_replace(L, t + 1);
      multi = t + 1;
    }
    lua_pushvalue(L, -2);
    lua_rawget(L, multi);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_createtable(L, 4, 0);
      lua_pushvalue(L, -3);
      lua_rawget(L, t);
      lua_rawseti(L, -2, 1);
      lua_pushvalue(L, -3);
      lua_pushvalue(L, -2);
      lua_rawset(L, multi);
    }
    /* stack: name value list */
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
    lua_pop(L, 3);
  }
  if (multi) {
    lua_pushnil(L);
    while (lua_next(L, multi)) { /* name list */
      int list = lua_gettop(L), n = (int)lua_rawlen(L, list);
      luaL_Buffer b;
      luaL_buffinit(L, &b);
      for (int i = 1; i <= n; i++) {
        if (i > 1) luaL_addlstring(&b, ", ", 2);
        lua_rawgeti(L, list, i);
        luaL_addvalue(&b);
      }
      luaL_pushresult(&b);        /* name list joined */
      lua_pushvalue(L, list - 1); /* name list joined name */
      lua_insert(L, -2);          /* name list name joined */
      lua_rawset(L, t);
      lua_pop(L, 1); /* the list; the name stays for lua_next */
    }
  }
  lua_settop(L, t);
}

void azcmk_http_push_headers(lua_State *L, const char *p, size_t len) {
  int lines = 0;
  for (const char *q = p, *end = p + len; q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
    lines++;
  push_headers_sized(L, p, len, lines);
}

static void set_int(lua_State *L, const char *k, long v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

/* Pushes the outcome of a finished transfer: res, or nil, msg, code. Returns the count. */
static int push_outcome(lua_State *L, struct xfer *x) {
  const char *code = NULL;
  const char *msg = NULL;
  if (x->state == X_FAILED) {
    code = x->fail_code;
    msg = x->errbuf;
  } else if (x->oom) {
    code = "CURLE_OUT_OF_MEMORY";
    msg = "out of memory while receiving the response";
  } else if (x->too_big) {
    code = "CURLE_FILESIZE_EXCEEDED";
    msg = x->too_big;
  } else if (x->rc != CURLE_OK) {
    code = azcmk_curl_code_name(x->rc);
    if (x->ca_error) snprintf(x->errbuf, sizeof x->errbuf, "error setting certificate file: %s", x->ca_error);
    msg = x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->rc);
  }
  if (code) {
    lua_pushnil(L);
    lua_pushstring(L, msg);
    lua_pushstring(L, code);
    buf_clear(&x->body);
    buf_clear(&x->hdr);
    return 3;
  }
  CURL *e = x->easy;
  long status = 0, version = 0, connects = 0, port = 0;
  curl_off_t total_us = 0;
  char *ip = NULL;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &connects);
  curl_easy_getinfo(e, CURLINFO_PRIMARY_PORT, &port);
  curl_easy_getinfo(e, CURLINFO_PRIMARY_IP, &ip);
  curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total_us);
  lua_createtable(L, 0, 5);
  set_int(L, "status", status);
  push_headers_sized(L, x->hdr.p, x->hdr.len, x->hdr_lines);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, x->body.p ? x->body.p : "", x->body.len);
  lua_setfield(L, -2, "body");
  lua_pushstring(L, version == CURL_HTTP_VERSION_1_0   ? "1.0"
                    : version == CURL_HTTP_VERSION_1_1 ? "1.1"
                    : version == CURL_HTTP_VERSION_2_0 ? "2"
                    : version == CURL_HTTP_VERSION_3   ? "3"
                                                       : "unknown");
  lua_setfield(L, -2, "http_version");
  lua_createtable(L, 0, 4);
  set_int(L, "num_connects", connects);
  lua_pushnumber(L, (lua_Number)total_us / 1000.0);
  lua_setfield(L, -2, "total_ms");
  lua_pushstring(L, ip ? ip : "");
  lua_setfield(L, -2, "primary_ip");
  set_int(L, "primary_port", port);
  lua_setfield(L, -2, "info");
  buf_clear(&x->body);
  buf_clear(&x->hdr);
  return 1;
}

/* ---------------------------------------------------------------- client */

static struct client *check_client(lua_State *L, int idx) {
  return (struct client *)luaL_checkudata(L, idx, CLIENT_MT);
}

static struct client *check_open(lua_State *L, int idx) {
  struct client *c = check_client(L, idx);
  if (c->closed) luaL_error(L, "azcmk.http: client is closed");
  return c;
}

static void client_free(struct client *c) {
  if (c->closed) return;
  c->closed = 1;
  for (size_t i = 0; i < c->bx_n; i++) {
    if (c->multi && c->bx[i]->easy) curl_multi_remove_handle(c->multi, c->bx[i]->easy);
    xfer_free(c->bx[i]);
    free(c->bx[i]);
  }
  free(c->bx);
  c->bx = NULL;
  c->bx_n = 0;
  for (size_t i = 0; i < c->sx_n; i++) {
    if (c->smulti && c->sx[i]->state == X_RUNNING) curl_multi_remove_handle(c->smulti, c->sx[i]->easy);
    xfer_free(c->sx[i]);
    free(c->sx[i]);
  }
  free(c->sx);
  c->sx = NULL;
  c->sx_n = 0;
  if (c->smulti) curl_multi_cleanup(c->smulti);
  c->smulti = NULL;
  xfer_free(&c->one);
  if (c->multi) curl_multi_cleanup(c->multi);
  c->multi = NULL;
  if (c->share) curl_share_cleanup(c->share); /* after every easy handle that used it */
  c->share = NULL;
  free(c->ca_file);
  X509_STORE_free(c->store);
  c->store = NULL;
  free(c->user_agent);
  free(c->no_proxy);
  curl_slist_free_all(c->connect_to);
  for (size_t i = 0; i < c->n_allow; i++) free(c->allow_http[i]);
  free(c->allow_http);
  buf_free(&c->noproxy);
  free(c->np_env);
  c->np_env = NULL;
  c->ca_file = c->user_agent = c->no_proxy = NULL;
  c->connect_to = NULL;
  c->allow_http = NULL;
  c->n_allow = 0;
}

static int l_close(lua_State *L) {
  client_free(check_client(L, 1));
  return 0;
}

static int l_tostring(lua_State *L) {
  struct client *c = check_client(L, 1);
  lua_pushfstring(L, "azcmk.http client (%s): %p", c->closed ? "closed" : "open", (void *)c);
  return 1;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

/* core.http_client([opts]) */
static int l_http_client(lua_State *L) {
  const char *where = "http_client";
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* validate everything first */
  const char *ca_file = opt_string_keep(L, 1, "ca_file", where); /* values stay on the stack */
  const char *ua = opt_string_keep(L, 1, "user_agent", where);
  const char *hv = opt_string_keep(L, 1, "http_version", where);
  long http_version = CURL_HTTP_VERSION_2TLS;
  if (hv && strcmp(hv, "1.1") == 0) http_version = CURL_HTTP_VERSION_1_1;
  else if (hv && strcmp(hv, "2") != 0) luaL_error(L, "%s: 'http_version' must be \"2\" or \"1.1\"", where);
  if (ua && has_ctl(ua, strlen(ua))) luaL_error(L, "%s: 'user_agent' has CR, LF or NUL", where);
  if (ca_file && *ca_file == '\0') ca_file = NULL;
  struct client tmp = {0};
  tmp.connect_timeout_ms =
      opt_int_field(L, 1, "connect_timeout_ms", DEFAULT_CONNECT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS, where);
  tmp.timeout_ms = opt_int_field(L, 1, "timeout_ms", DEFAULT_TIMEOUT_MS, 1, MAX_TIMEOUT_MS, where);
  long max_body = opt_int_field(L, 1, "max_body_bytes", DEFAULT_MAX_BODY, 1, 1L << 30, where);
  int ct_idx, ah_idx, np_idx;
  size_t n_ct = opt_string_list(L, 1, "connect_to", &ct_idx, where);
  size_t n_ah = opt_string_list(L, 1, "allow_http", &ah_idx, where);
  size_t n_np = opt_string_list(L, 1, "no_proxy", &np_idx, where);
  if (np_idx)
    for (size_t i = 1; i <= n_np; i++) {
      lua_rawgeti(L, np_idx, (int)i);
      size_t l;
      const char *s = lua_tolstring(L, -1, &l);
      if (has_ctl(s, l) || strchr(s, ','))
        luaL_error(L, "%s: 'no_proxy'[%d] must be one host", where, (int)i);
      lua_pop(L, 1);
    }
  ensure_global_init(L);

  /* from here on nothing raises until the userdata owns every allocation */
  struct client *c = (struct client *)azcmk_newuserdata(L, sizeof *c);
  memset(c, 0, sizeof *c);
  c->closed = 1; /* until fully set up: __gc does nothing with a half-built client */
  luaL_setmetatable(L, CLIENT_MT);
  c->closed = 0;
  c->connect_timeout_ms = tmp.connect_timeout_ms;
  c->timeout_ms = tmp.timeout_ms;
  c->http_version = http_version;
  c->max_body = (size_t)max_body;
  c->one.max_body = c->max_body;
  int oom = 0;
  c->share = curl_share_init();
  if (c->share == NULL) oom = 1;
  else {
    oom |= curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK;
    oom |= curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK;
    oom |= curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK;
  }
  if (!oom && ca_file) oom |= (c->ca_file = dup_str(ca_file)) == NULL;
  if (!oom) oom |= (c->user_agent = dup_str(ua ? ua : DEFAULT_UA)) == NULL;
  for (size_t i = 1; !oom && i <= n_ct; i++) {
    lua_rawgeti(L, ct_idx, (int)i);
    struct curl_slist *l = curl_slist_append(c->connect_to, lua_tostring(L, -1));
    lua_pop(L, 1);
    if (l == NULL) oom = 1; else c->connect_to = l;
  }
  if (!oom && n_ah) {
    c->allow_http = calloc(n_ah, sizeof(char *));
    if (c->allow_http == NULL) oom = 1;
    for (size_t i = 1; !oom && i <= n_ah; i++) {
      lua_rawgeti(L, ah_idx, (int)i);
      c->allow_http[i - 1] = dup_str(lua_tostring(L, -1));
      lua_pop(L, 1);
      if (c->allow_http[i - 1] == NULL) oom = 1; else c->n_allow = i;
    }
  }
  if (!oom) {
    struct buf np = {0};
    oom |= buf_appends(&np, ALWAYS_DIRECT);
    for (size_t i = 0; !oom && i < c->n_allow; i++)
      oom |= buf_appends(&np, ",") || buf_appends(&np, c->allow_http[i]);
    for (size_t i = 1; !oom && i <= n_np; i++) {
      lua_rawgeti(L, np_idx, (int)i);
      const char *s = lua_tostring(L, -1);
      if (*s) oom |= buf_appends(&np, ",") || buf_appends(&np, s);
      lua_pop(L, 1);
    }
    oom |= buf_append(&np, "", 1);
    if (!oom) oom |= (c->no_proxy = dup_str(np.p)) == NULL;
    buf_free(&np);
  }
  if (!oom) oom |= xfer_init(c, &c->one) != 0;
  if (oom) {
    client_free(c);
    return luaL_error(L, "azcmk.http: out of memory creating a client");
  }
  return 1;
}

/* c:request(req) -> res | nil, msg, code */
static int l_request(lua_State *L) {
  struct client *c = check_open(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  struct reqspec r;
  read_request(L, 2, &r, "request", c);
  struct xfer *x = &c->one;
  if (xfer_prepare(L, c, x, 2, &r) == 0) {
    x->rc = curl_easy_perform(x->easy);
    x->state = X_DONE;
  }
  return push_outcome(L, x);
}

/* The outcome shape of `batch` at the top of the stack: res, or {error = msg, code = code}. */
static void push_outcome_one(lua_State *L, struct xfer *x) {
  int k = push_outcome(L, x);
  if (k == 3) {
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "error");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "code");
    lua_replace(L, -4);
    lua_pop(L, 2);
  }
}

/* Grows a pool of transfers to `want` (each xfer has a fixed address: libcurl holds pointers
 * into it). Raises on out of memory. */
static void pool_grow(lua_State *L, struct xfer ***pool, size_t *len, size_t want, const char *where) {
  if (want <= *len) return;
  struct xfer **nb = realloc(*pool, want * sizeof *nb);
  if (nb == NULL) luaL_error(L, "%s: out of memory", where);
  *pool = nb;
  while (*len < want) {
    struct xfer *x = calloc(1, sizeof *x);
    if (x == NULL) luaL_error(L, "%s: out of memory", where);
    (*pool)[(*len)++] = x;
  }
}

/* The multi handle at *m, made on first use. Raises on out of memory. */
static CURLM *multi_of(lua_State *L, CURLM **m, const char *where) {
  if (*m == NULL) *m = curl_multi_init();
  if (*m == NULL) luaL_error(L, "%s: out of memory", where);
  return *m;
}

static int start_next(struct client *c, size_t n, size_t *next) {
  while (*next < n) {
    struct xfer *x = c->bx[(*next)++];
    if (x->state != X_PENDING) continue;
    CURLMcode mc = curl_multi_add_handle(c->multi, x->easy);
    if (mc != CURLM_OK) {
      xfer_fail(x, curlm_code_name(mc), curl_multi_strerror(mc));
      continue;
    }
    x->state = X_RUNNING;
    return 1;
  }
  return 0;
}

/* c:batch(reqs [, {max_parallel = N}]) -> { res | {error = msg, code = code}, ... } */
static int l_batch(lua_State *L) {
  struct client *c = check_open(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  long max_parallel = DEFAULT_PARALLEL;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    max_parallel = opt_int_field(L, 3, "max_parallel", DEFAULT_PARALLEL, 1, MAX_PARALLEL, "batch");
  }
  lua_settop(L, 2);
  size_t n = lua_rawlen(L, 2);
  if (n > 100000) luaL_error(L, "batch: at most 100000 requests");
  struct reqspec r;
  char where[48];
  for (size_t i = 1; i <= n; i++) { /* validate all before any I/O */
    snprintf(where, sizeof where, "batch: request #%d", (int)i);
    lua_rawgeti(L, 2, (int)i);
    read_request(L, -1, &r, where, c);
    lua_pop(L, 3);
  }
  lua_createtable(L, (int)n, 0); /* results, at 3 */
  if (n == 0) return 1;
  lua_createtable(L, (int)n, 0); /* anchors: the request bodies libcurl will read, at 4 */
  pool_grow(L, &c->bx, &c->bx_n, n, "batch");
  multi_of(L, &c->multi, "batch");
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, max_parallel > 5 ? max_parallel : 5L);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (int)i + 1);
    struct xfer *x = c->bx[i];
    read_request(L, -1, &r, "batch", c); /* validated above (may still raise: no I/O yet) */
    if (xfer_prepare(L, c, x, lua_gettop(L) - 2, &r) == 0)
      curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, 1L); /* multiplex on HTTP/2 */
    lua_rawseti(L, 4, (int)i + 1); /* the body */
    lua_pop(L, 2);
  }
  /* --- transfers: no Lua API calls until the loop ends --- */
  size_t next = 0, active = 0;
  while ((long)active < max_parallel && start_next(c, n, &next)) active++;
  CURLMcode mc = CURLM_OK;
  while (active > 0) {
    int still = 0;
    mc = curl_multi_perform(c->multi, &still);
    if (mc != CURLM_OK) break;
    CURLMsg *msg;
    int left, started = 0;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
      if (msg->msg != CURLMSG_DONE) continue;
      char *priv = NULL;
      CURL *e = msg->easy_handle;
      CURLcode rc = msg->data.result;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
      struct xfer *x = (struct xfer *)(void *)priv;
      curl_multi_remove_handle(c->multi, e);
      active--;
      if (x) {
        x->rc = rc;
        x->state = X_DONE;
      }
      if (start_next(c, n, &next)) {
        active++;
        started = 1;
      }
    }
    if (active == 0) break;
    if (!started) {
      mc = curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
      if (mc != CURLM_OK) break;
    }
  }
  /* a multi-level failure ends what is still running or waiting */
  for (size_t i = 0; i < n; i++) {
    struct xfer *x = c->bx[i];
    if (x->state == X_RUNNING) curl_multi_remove_handle(c->multi, x->easy);
    if (x->state == X_RUNNING || x->state == X_PENDING)
      xfer_fail(x, curlm_code_name(mc), mc != CURLM_OK ? curl_multi_strerror(mc) : "batch aborted");
  }
  /* --- results --- */
  for (size_t i = 0; i < n; i++) {
    push_outcome_one(L, c->bx[i]);
    lua_rawseti(L, 3, (int)i + 1);
    c->bx[i]->state = X_IDLE;
  }
  lua_settop(L, 3);
  return 1;
}

/* ---------------------------------------------------------------- submit / collect
 * A stream of requests instead of a batch: submit starts one at once, collect hands back those
 * that finished, so a caller (azcmk.transport.batch) resumes each task when its own answer
 * arrives instead of when the slowest of a batch does. */

/* c:submit(req) -> slot (an integer): the request starts on the stream's multi handle; its body
 * is copied. A request libcurl refuses is reported by the next collect. */
static int l_submit(lua_State *L) {
  struct client *c = check_open(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  struct reqspec r;
  read_request(L, 2, &r, "submit", c);
  size_t i = 0;
  while (i < c->sx_n && c->sx[i]->state != X_IDLE) i++;
  if (i == c->sx_n && c->sx_n >= MAX_PARALLEL * 4)
    return luaL_error(L, "submit: too many requests in flight");
  pool_grow(L, &c->sx, &c->sx_n, i + 1, "submit");
  multi_of(L, &c->smulti, "submit");
  /* keep an idle connection per transfer slot (the default, 4 x the handles added, drops the
   * ARM connection once many registry hosts have had one each) */
  curl_multi_setopt(c->smulti, CURLMOPT_MAXCONNECTS, c->sx_n > 5 ? (long)c->sx_n : 5L);
  struct xfer *x = c->sx[i];
  if (xfer_prepare(L, c, x, 2, &r) == 0) {
    int bad = 0;
    if (r.body) bad |= curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, r.body) != CURLE_OK;
    bad |= curl_easy_setopt(x->easy, CURLOPT_PIPEWAIT, 1L) != CURLE_OK; /* multiplex on HTTP/2 */
    CURLMcode mc = bad ? CURLM_OK : curl_multi_add_handle(c->smulti, x->easy);
    if (bad) xfer_fail(x, "CURLE_BAD_FUNCTION_ARGUMENT", "azcmk.http: libcurl refused the body or PIPEWAIT");
    else if (mc != CURLM_OK) xfer_fail(x, curlm_code_name(mc), curl_multi_strerror(mc));
    else x->state = X_RUNNING;
  }
  lua_pushinteger(L, (lua_Integer)i + 1);
  return 1;
}

/* Moves what libcurl finished to X_DONE; returns how many slots are done or failed. */
static int stream_reap(struct client *c) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(c->smulti, &left))) {
    if (msg->msg != CURLMSG_DONE) continue;
    char *priv = NULL;
    CURL *e = msg->easy_handle;
    CURLcode rc = msg->data.result;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    curl_multi_remove_handle(c->smulti, e);
    struct xfer *x = (struct xfer *)(void *)priv;
    if (x) {
      x->rc = rc;
      x->state = X_DONE;
    }
  }
  int ready = 0;
  for (size_t i = 0; i < c->sx_n; i++) ready += c->sx[i]->state == X_DONE || c->sx[i]->state == X_FAILED;
  return ready;
}

/* c:collect([timeout_ms = 1000]) -> { [slot] = res | {error = msg, code = code}, ... }, running:
 * waits (at most timeout_ms, once) for a submitted request to finish and returns every finished
 * one (an empty table when none did: the caller asks again) and how many are still running. */
static int l_collect(lua_State *L) {
  struct client *c = check_open(L, 1);
  lua_Integer t = luaL_optinteger(L, 2, 1000);
  int timeout = t < 0 ? 0 : t > 60000 ? 60000 : (int)t;
  lua_newtable(L);
  lua_pushinteger(L, 0);
  if (c->smulti == NULL) return 2;
  lua_pop(L, 1);
  int still = 0;
  CURLMcode mc = curl_multi_perform(c->smulti, &still);
  int ready = stream_reap(c);
  if (mc == CURLM_OK && ready == 0 && still > 0) {
    mc = curl_multi_poll(c->smulti, NULL, 0, timeout, NULL);
    if (mc == CURLM_OK) mc = curl_multi_perform(c->smulti, &still);
    ready = stream_reap(c);
  }
  if (mc != CURLM_OK) { /* a multi-level failure ends what is still running */
    for (size_t i = 0; i < c->sx_n; i++) {
      struct xfer *x = c->sx[i];
      if (x->state != X_RUNNING) continue;
      curl_multi_remove_handle(c->smulti, x->easy);
      xfer_fail(x, curlm_code_name(mc), curl_multi_strerror(mc));
    }
  }
  lua_Integer running = 0;
  for (size_t i = 0; i < c->sx_n; i++) {
    struct xfer *x = c->sx[i];
    running += x->state == X_RUNNING;
    if (x->state != X_DONE && x->state != X_FAILED) continue;
    push_outcome_one(L, x);
    lua_rawseti(L, -2, (int)i + 1);
    x->state = X_IDLE;
  }
  lua_pushinteger(L, running);
  return 2;
}

/* c:abandon(): stops every submitted request (their answers are never collected). */
static int l_abandon(lua_State *L) {
  struct client *c = check_open(L, 1);
  for (size_t i = 0; i < c->sx_n; i++) {
    struct xfer *x = c->sx[i];
    if (x->state == X_RUNNING) curl_multi_remove_handle(c->smulti, x->easy);
    xfer_reset(x);
  }
  return 0;
}

/* parse_header_line(line) -> name (lower case), value | nil */
static int l_parse_header_line(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  struct azcmk_header h;
  if (azcmk_header_parse(s, len, &h) != AZCMK_HDR_FIELD) {
    lua_pushnil(L);
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < h.name_len; i++) luaL_addchar(&b, (char)tolower((unsigned char)h.name[i]));
  luaL_pushresult(&b);
  lua_pushlstring(L, h.value, h.value_len);
  return 2;
}

static const luaL_Reg client_methods[] = {
  {"request", l_request},
  {"batch", l_batch},
  {"submit", l_submit},
  {"collect", l_collect},
  {"abandon", l_abandon},
  {"close", l_close},
  {NULL, NULL},
};

void azcmk_http_register(lua_State *L) {
  if (luaL_newmetatable(L, CLIENT_MT)) {
    luaL_newlib(L, client_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, CLIENT_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_http_client);
  lua_setfield(L, -2, "http_client");
  lua_pushcfunction(L, l_parse_header_line);
  lua_setfield(L, -2, "parse_header_line");
}
