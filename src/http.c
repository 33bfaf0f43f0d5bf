/* placeholder until the http part lands */
#include "azcmk.h"
void azcmk_http_register(lua_State *L) { (void)L; }
