/* curl_loop.c - the baseline for bench/http.sh: sequential keep-alive GETs on one libcurl
 * easy handle, body collected into a growing buffer, the options azcmk sets.
 *   curl_loop URL CA_FILE REQUESTS [1.1|2]   prints "requests seconds req/s" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

struct buf { char *p; size_t len, cap; };

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
  struct buf *b = ud;
  size_t n = size * nmemb;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 1024;
    while (cap < b->len + n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return 0;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, ptr, n);
  b->len += n;
  return n;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s URL CA_FILE REQUESTS [1.1|2]\n", argv[0]);
    return 2;
  }
  long total = atol(argv[3]);
  long ver = (argc > 4 && strcmp(argv[4], "1.1") == 0) ? CURL_HTTP_VERSION_1_1 : CURL_HTTP_VERSION_2TLS;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *e = curl_easy_init();
  struct buf b = {0};
  curl_easy_setopt(e, CURLOPT_URL, argv[1]);
  curl_easy_setopt(e, CURLOPT_CAINFO, argv[2]);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, ver);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "curl_loop");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
  for (int i = 0; i < 50; i++) { /* warm-up: connect, TLS */
    b.len = 0;
    if (curl_easy_perform(e) != CURLE_OK) return 1;
  }
  double t0 = now();
  for (long i = 0; i < total; i++) {
    b.len = 0;
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
      fprintf(stderr, "curl_loop: %s\n", curl_easy_strerror(rc));
      return 1;
    }
  }
  double t = now();
  printf("%ld %.3f %.1f\n", total, t - t0, total / (t - t0));
  curl_easy_cleanup(e);
  free(b.p);
  curl_global_cleanup();
  return 0;
}
