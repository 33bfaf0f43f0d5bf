/* azcmk.h - what the parts of the core module share. */
#ifndef AZCMK_H
#define AZCMK_H

#include "compat.h"

#define AZCMK_VERSION "0.1.0"

/* Each part adds its functions to the module table on top of the stack. */
void azcmk_crypto_register(lua_State *L);
void azcmk_http_register(lua_State *L);
void azcmk_clock_register(lua_State *L);

#endif
