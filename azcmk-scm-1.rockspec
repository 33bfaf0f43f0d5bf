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
        "src/encoding.c", "src/hash.c", "src/pkey.c", "src/cert.c", "src/clock.c", "src/jwt.c",
      },
      libraries = { "curl", "ssl", "crypto" },
      incdirs = { "$(OPENSSL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
    -- Lua modules: one line each; scripts/rockspec-check.sh keeps this list complete.
    ["azcmk"] = "lua/azcmk/init.lua",
    ["azcmk.cli"] = "lua/azcmk/cli/init.lua",
    ["azcmk.emulator"] = "lua/azcmk/emulator.lua",
    ["azcmk.cli.emulator"] = "lua/azcmk/cli/emulator.lua",
    ["azcmk.http"] = "lua/azcmk/http.lua",
    ["azcmk.crypto"] = "lua/azcmk/crypto.lua",
    ["azcmk.challenge"] = "lua/azcmk/challenge.lua",
    ["azcmk.clock"] = "lua/azcmk/clock.lua",
    ["azcmk.cloud"] = "lua/azcmk/cloud.lua",
    ["azcmk.credential.aad"] = "lua/azcmk/credential/aad.lua",
    ["azcmk.credential.app_service"] = "lua/azcmk/credential/app_service.lua",
    ["azcmk.credential.azure_cli"] = "lua/azcmk/credential/azure_cli.lua",
    ["azcmk.credential.base"] = "lua/azcmk/credential/base.lua",
    ["azcmk.credential.chain"] = "lua/azcmk/credential/chain.lua",
    ["azcmk.credential.client_certificate"] = "lua/azcmk/credential/client_certificate.lua",
    ["azcmk.credential.client_secret"] = "lua/azcmk/credential/client_secret.lua",
    ["azcmk.credential.default"] = "lua/azcmk/credential/default.lua",
    ["azcmk.credential.environment"] = "lua/azcmk/credential/environment.lua",
    ["azcmk.credential.imds"] = "lua/azcmk/credential/imds.lua",
    ["azcmk.credential"] = "lua/azcmk/credential/init.lua",
    ["azcmk.credential.managed_identity"] = "lua/azcmk/credential/managed_identity.lua",
    ["azcmk.credential.static"] = "lua/azcmk/credential/static.lua",
    ["azcmk.credential.workload_identity"] = "lua/azcmk/credential/workload_identity.lua",
    ["azcmk.errors"] = "lua/azcmk/errors.lua",
    ["azcmk.log"] = "lua/azcmk/log.lua",
    ["azcmk.lro"] = "lua/azcmk/lro.lua",
    ["azcmk.paging"] = "lua/azcmk/paging.lua",
    ["azcmk.batch"] = "lua/azcmk/batch.lua",
    ["azcmk.pipeline"] = "lua/azcmk/pipeline.lua",
    ["azcmk.retry"] = "lua/azcmk/retry.lua",
    ["azcmk.sender"] = "lua/azcmk/sender.lua",
    ["azcmk.token_cache"] = "lua/azcmk/token_cache.lua",
    ["azcmk.transport.curl"] = "lua/azcmk/transport/curl.lua",
    ["azcmk.transport.ngx"] = "lua/azcmk/transport/ngx.lua",
    ["azcmk.ngx"] = "lua/azcmk/ngx/init.lua",
    ["azcmk.ngx.token_store"] = "lua/azcmk/ngx/token_store.lua",
    ["azcmk.ngx.status"] = "lua/azcmk/ngx/status.lua",
    ["azcmk.url"] = "lua/azcmk/url.lua",
    ["azcmk.cli.args"] = "lua/azcmk/cli/args.lua",
    ["azcmk.client"] = "lua/azcmk/client/init.lua",
    ["azcmk.client.api_versions"] = "lua/azcmk/client/api_versions.lua",
    ["azcmk.client.base"] = "lua/azcmk/client/base.lua",
    ["azcmk.client.ids"] = "lua/azcmk/client/ids.lua",
    ["azcmk.client.resource_groups"] = "lua/azcmk/client/resource_groups.lua",
    ["azcmk.client.identities"] = "lua/azcmk/client/identities.lua",
    ["azcmk.client.vaults"] = "lua/azcmk/client/vaults.lua",
    ["azcmk.client.keys"] = "lua/azcmk/client/keys.lua",
    ["azcmk.client.role_assignments"] = "lua/azcmk/client/role_assignments.lua",
    ["azcmk.client.registries"] = "lua/azcmk/client/registries.lua",
    ["azcmk.client.deployments"] = "lua/azcmk/client/deployments.lua",
    ["azcmk.client.resources"] = "lua/azcmk/client/resources.lua",
    ["azcmk.playbook"] = "lua/azcmk/playbook/init.lua",
    ["azcmk.playbook.common"] = "lua/azcmk/playbook/common.lua",
    ["azcmk.playbook.setup"] = "lua/azcmk/playbook/setup.lua",
    ["azcmk.playbook.show"] = "lua/azcmk/playbook/show.lua",
    ["azcmk.playbook.rotate"] = "lua/azcmk/playbook/rotate.lua",
    ["azcmk.playbook.access"] = "lua/azcmk/playbook/access.lua",
    ["azcmk.playbook.identity"] = "lua/azcmk/playbook/identity.lua",
    ["azcmk.playbook.recover"] = "lua/azcmk/playbook/recover.lua",
    ["azcmk.playbook.deploy"] = "lua/azcmk/playbook/deploy.lua",
    ["azcmk.cli.common"] = "lua/azcmk/cli/common.lua",
    ["azcmk.cli.setup"] = "lua/azcmk/cli/setup.lua",
    ["azcmk.cli.show"] = "lua/azcmk/cli/show.lua",
    ["azcmk.cli.rotate"] = "lua/azcmk/cli/rotate.lua",
    ["azcmk.cli.revoke"] = "lua/azcmk/cli/revoke.lua",
    ["azcmk.cli.restore"] = "lua/azcmk/cli/restore.lua",
    ["azcmk.cli.identity"] = "lua/azcmk/cli/identity.lua",
    ["azcmk.cli.recover"] = "lua/azcmk/cli/recover.lua",
    ["azcmk.cli.deploy"] = "lua/azcmk/cli/deploy.lua",
    ["azcmk.cli.run"] = "lua/azcmk/cli/run.lua",
  },
  install = { bin = { azcmk = "bin/azcmk" } },
  copy_directories = { "emulator" },
}
