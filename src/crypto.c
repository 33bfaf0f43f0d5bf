/* placeholder until the crypto part lands */
#include "azcmk.h"
void azcmk_crypto_register(lua_State *L) { (void)L; }
