/* fuzz_lua.h - drives azcmk.core's real Lua entry points from a libFuzzer target.
 * One lua_State per process; every input runs under lua_pcall and ends with a full GC, so
 * each userdata's close (__gc) runs within the input that made it. */
#ifndef AZCMK_FUZZ_LUA_H
#define AZCMK_FUZZ_LUA_H

#include <stdlib.h>
#include <lua.h>
#include <lauxlib.h>

int luaopen_azcmk_core(lua_State *L);

static lua_State *fuzz_L;

/* Leaves the module table at stack index 1. */
static inline lua_State *fuzz_state(void) {
  if (!fuzz_L) {
    fuzz_L = luaL_newstate();
    if (!fuzz_L) abort();
    luaopen_azcmk_core(fuzz_L);
    lua_setglobal(fuzz_L, "core");
  }
  lua_settop(fuzz_L, 0);
  lua_getglobal(fuzz_L, "core");
  return fuzz_L;
}

/* Pushes core[name]. */
static inline void fuzz_fn(lua_State *L, const char *name) {
  lua_getfield(L, 1, name);
  if (lua_type(L, -1) != LUA_TFUNCTION) abort();
}

/* Pushes obj:name (method lookup through the metatable) and obj. */
static inline void fuzz_method(lua_State *L, int obj, const char *name) {
  lua_getfield(L, obj, name);
  if (lua_type(L, -1) != LUA_TFUNCTION) abort();
  lua_pushvalue(L, obj);
}

/* pcall with nargs arguments; a raise is fine (it is a Lua error, not a crash). Returns the
 * number of results or -1 when it raised. */
static inline int fuzz_call(lua_State *L, int nargs) {
  int base = lua_gettop(L) - nargs - 1;
  if (lua_pcall(L, nargs, LUA_MULTRET, 0) != 0) { lua_pop(L, 1); return -1; }
  return lua_gettop(L) - base;
}

static inline void fuzz_done(lua_State *L) {
  lua_settop(L, 0);
  lua_gc(L, LUA_GCCOLLECT, 0);
}

#endif
