/* compat.h - one source for Lua 5.4 and LuaJIT 2.1 (5.1 ABI).
 * Maps the few 5.2+ calls we use down to 5.1, in the LPeg/luaossl style. */
#ifndef AZCMK_COMPAT_H
#define AZCMK_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
/* LuaJIT 2.1 headers declare luaL_setfuncs, luaL_testudata and luaL_setmetatable. */
#ifndef luaL_newlibtable
#define luaL_newlibtable(L, l) lua_createtable(L, 0, sizeof(l) / sizeof((l)[0]) - 1)
#endif
#ifndef luaL_newlib
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))
#endif
#define lua_rawlen(L, i) lua_objlen(L, (i))
#define azcmk_newuserdata(L, sz) lua_newuserdata(L, (sz))
static inline int azcmk_absindex(lua_State *L, int i) {
  return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + i + 1;
}
#define lua_absindex azcmk_absindex
#else
#define azcmk_newuserdata(L, sz) lua_newuserdatauv(L, (sz), 0)
#endif

#endif
