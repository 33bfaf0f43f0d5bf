/* crypto.h - what the crypto files of the core share (not a public API). */
#ifndef AZCMK_CRYPTO_H
#define AZCMK_CRYPTO_H

#include "azcmk.h"

/* Pushes nil, "<what>: <first OpenSSL reason or `fallback`>" and clears the OpenSSL error
 * queue so no stale error leaks into a later call. Returns 2 (for `return`). */
int azcmk_crypto_fail(lua_State *L, const char *what, const char *fallback);

/* Same message, without touching the Lua stack; writes into buf and clears the queue. */
const char *azcmk_crypto_errmsg(char *buf, size_t size, const char *what, const char *fallback);

/* Registers the metatable `mt` of a crypto object: `methods` (which must hold "close") as
 * __index, that same close as __gc and __close (one idempotent close), and __tostring. */
void azcmk_crypto_class(lua_State *L, const char *mt, const luaL_Reg *methods, lua_CFunction tostring);

/* Per-file registration; each adds its functions to the table on top of the stack. */
void azcmk_encoding_register(lua_State *L);
void azcmk_hash_register(lua_State *L);
void azcmk_pkey_register(lua_State *L);
void azcmk_cert_register(lua_State *L);
void azcmk_jwt_register(lua_State *L);
void azcmk_cipher_register(lua_State *L);

#endif
