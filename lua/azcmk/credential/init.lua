--- Credential constructors: azcmk.credential.client_secret{...}, .client_certificate{...},
-- .workload_identity{...}, .managed_identity{...}, .imds{...}, .app_service{...},
-- .static{...}, .environment{...}, .azure_cli{...}, .chain({...}), .default{...}.
-- See docs/pipeline.md.
local M = {}

local mods = {
  client_secret = "azcmk.credential.client_secret",
  client_certificate = "azcmk.credential.client_certificate",
  workload_identity = "azcmk.credential.workload_identity",
  managed_identity = "azcmk.credential.managed_identity",
  imds = "azcmk.credential.imds",
  app_service = "azcmk.credential.app_service",
  static = "azcmk.credential.static",
  environment = "azcmk.credential.environment",
  azure_cli = "azcmk.credential.azure_cli",
  chain = "azcmk.credential.chain",
  default = "azcmk.credential.default",
}

for name, mod in pairs(mods) do
  M[name] = function(...) return require(mod).new(...) end
end

return M
