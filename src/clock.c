/* clock.c - time for the pipeline: wall-clock seconds with fractions, a monotonic
 * millisecond counter for durations, and a sleep that does not need a `sleep` process.
 * Outside nginx only: inside a worker the ngx face uses ngx.now/ngx.sleep instead. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <time.h>

#include "azcmk.h"

static double ts_seconds(const struct timespec *t) {
  return (double)t->tv_sec + (double)t->tv_nsec / 1e9;
}

/* now() -> unix seconds (fractional) */
static int l_now(lua_State *L) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  lua_pushnumber(L, ts_seconds(&t));
  return 1;
}

/* now_ms() -> monotonic milliseconds (fractional), only meaningful as a difference */
static int l_now_ms(lua_State *L) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  lua_pushnumber(L, ts_seconds(&t) * 1000.0);
  return 1;
}

/* sleep(seconds): fractions allowed; 0 to 86400; resumes after signals */
static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s <= 86400, 1, "seconds must be between 0 and 86400");
  struct timespec req, rem;
  req.tv_sec = (time_t)s;
  req.tv_nsec = (long)((s - (lua_Number)req.tv_sec) * 1e9);
  if (req.tv_nsec >= 1000000000L) req.tv_nsec = 999999999L;
  while (nanosleep(&req, &rem) == -1 && errno == EINTR) req = rem;
  return 0;
}

static const luaL_Reg clock_funcs[] = {
  { "now", l_now },
  { "now_ms", l_now_ms },
  { "sleep", l_sleep },
  { NULL, NULL },
};

void azcmk_clock_register(lua_State *L) { luaL_setfuncs(L, clock_funcs, 0); }
