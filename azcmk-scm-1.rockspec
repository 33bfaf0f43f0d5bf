rockspec_format = "3.0"
package = "azcmk"
version = "scm-1"
source = { url = "git+https://example.invalid/azcmk.git" }
description = {
  summary = "Azure Container Registry customer-managed-key life cycle from Lua",
  detailed = [[
Set up, show, rotate, revoke, restore, recover and troubleshoot CMK-encrypted Azure
Container Registries from Lua 5.4, LuaJIT and OpenResty, with a C core on libcurl and
OpenSSL, a command-line tool and a local Azure emulator.]],
  license = "MIT",
}
-- lua-cjson comes from Debian (lua-cjson); install offline with --deps-mode=none.
dependencies = { "lua >= 5.1, < 5.5", "lua-cjson" }
-- No header for CURL: Debian keeps curl.h in the multiarch include directory, where
-- LuaRocks 3.8 does not look (see docs/packaging.md).
external_dependencies = {
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
build = {
  type = "builtin",
  modules = {
    ["azcmk.core"] = {
      sources = {
        "src/core.c", "src/crypto.c", "src/http.c", "src/headers.c",
        "src/encoding.c", "src/hash.c", "src/pkey.c", "src/cert.c", "src/jwt.c",
      },
      libraries = { "curl", "ssl", "crypto" },
      incdirs = { "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    -- Lua modules: one line each; scripts/rockspec-check.sh keeps this list complete.
    ["azcmk"] = "lua/azcmk/init.lua",
    ["azcmk.cli"] = "lua/azcmk/cli/init.lua",
    ["azcmk.http"] = "lua/azcmk/http.lua",
    ["azcmk.crypto"] = "lua/azcmk/crypto.lua",
    ["azcmk.cli.args"] = "lua/azcmk/cli/args.lua",
  },
  install = { bin = { azcmk = "bin/azcmk" } },
  copy_directories = { "emulator" },
}
