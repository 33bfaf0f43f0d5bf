--- The api-version of every surface azcmk calls, in one place.
-- Chosen as the newest stable version the local emulator also accepts.
return {
  resource_groups = "2025-04-01",      -- Microsoft.Resources/resourceGroups
  subscriptions = "2022-12-01",        -- Microsoft.Resources/subscriptions
  identities = "2024-11-30",           -- Microsoft.ManagedIdentity (the Azure CLI's profile)
  vaults = "2026-02-01",               -- Microsoft.KeyVault management plane
  keys = "2025-07-01",                 -- Key Vault data plane
  role_assignments = "2022-04-01",     -- Microsoft.Authorization
  registries = "2025-04-01",           -- Microsoft.ContainerRegistry
  deployments = "2025-04-01",          -- Microsoft.Resources/deployments
  resources = "2021-04-01",            -- generic resource list (resources?$filter=)
  resources_vaults = "2015-11-01",     -- the generic list filtered to vaults
}
