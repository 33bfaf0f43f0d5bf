-- Audit benchmark: N registries in the emulator (a share of them with CMK), `azcmk audit`'s
-- parallel fetch (p:parallel over the curl multi handle) vs a sequential loop doing the same
-- GETs, with and without a simulated network round trip (an emulator delay rule on every
-- request: loopback answers in well under a millisecond, Azure in tens of milliseconds).
--   lua bench/audit.lua [registries=1000] [cmk_share=0.1] [delay_ms=20] [concurrency=32]
-- (AZCMK_CONNECT_TO / AZCMK_CA_FILE / AZURE_* of a private emulator: bench/audit.sh)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local n = tonumber(arg[1]) or 1000
local share = tonumber(arg[2]) or 0.1
local delay = tonumber(arg[3]) or 20
local conc = tonumber(arg[4]) or 32
local azcmk = require("azcmk")
local audit = require("azcmk.playbook.audit")
local clock = require("azcmk.clock")

local sub = assert(os.getenv("AZURE_SUBSCRIPTION_ID"), "run against an emulator (bench/audit.sh)")
local p = assert(azcmk.new({ log = "off" }))
local tenant = os.getenv("AZURE_TENANT_ID")

local function control(method, path, body)
  return assert(p:send({ method = method, url = "https://management.azure.com/_emulator/" .. path,
      body = body,
    auth = false }))
end

local function must(res, err)
  if not res then error(tostring(err), 2) end
  return res
end

-- ---------------------------------------------------------------- the fleet
control("POST", "config", { lro = { polls = 1, seconds = 0, retry_after = 0 } })
local existing = 0
for item, err in p:arm_pages("/subscriptions/" .. sub .. "/providers/Microsoft.ContainerRegistry/registries",
  { api_version = "2025-04-01" }) do
  must(item, err)
  existing = existing + 1
end
local t0 = clock.ms()
if existing < n then
  local groups = 10
  for g = 1, groups do
    must(p:arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/bench-rg-" .. g,
        { api_version = "2025-04-01",
      body = { location = "westus" } }))
  end
  local rgp = "/subscriptions/" .. sub .. "/resourceGroups/bench-rg-1"
  local uai = must(p:arm("PUT", rgp
      .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/bench-uai",
    { api_version = "2024-11-30", body = { location = "westus" } })).json
  local _, claims = require("azcmk.crypto").jwt_decode_unverified(must(p:token(
    "https://management.azure.com/.default")).token)
  local vault = "benchkv" .. tostring(os.time() % 100000)
  local admin = { "get", "list", "create", "update", "wrapKey", "unwrapKey", "getrotationpolicy" }
  must(p:arm("PUT", rgp .. "/providers/Microsoft.KeyVault/vaults/" .. vault, { api_version = "2026-02-01",
    body = { location = "westus", properties = { tenantId = tenant, sku = { family = "A", name = "standard" },
      enableSoftDelete = true, softDeleteRetentionInDays = 7, enablePurgeProtection = true,
      accessPolicies = {
        { tenantId = tenant, objectId = claims.oid, permissions = { keys = admin } },
        { tenantId = tenant, objectId = uai.properties.principalId,
          permissions = { keys = { "get", "wrapKey", "unwrapKey" } } } } } } }))
  local vurl = "https://" .. vault .. ".vault.azure.net"
  local key = must(p:vault("POST", vurl, "/keys/benchkey/create", { body = { kty = "RSA",
      key_size = 2048 } })).json
  local kid = key.key.kid
  local reqs = {}
  local ncmk = math.floor(n * share)
  local skus = { "Basic", "Standard", "Premium" }
  for i = existing + 1, n do
    local rg = "/subscriptions/" .. sub .. "/resourceGroups/bench-rg-" .. ((i % groups) + 1)
    local name = string.format("benchreg%05d", i)
    local body
    if i <= ncmk then
      body = { location = "westus", sku = { name = "Premium" },
        identity = { type = "UserAssigned", userAssignedIdentities = { [uai.id] = {} } },
        properties = { encryption = { status = "enabled", keyVaultProperties = {
          keyIdentifier = (i % 2 == 0) and kid or kid:gsub("/[%x]+$", ""),
              identity = uai.properties.clientId } } } }
    else
      body = { location = "westus", sku = { name = skus[(i % 3) + 1] } }
    end
    reqs[#reqs + 1] = { "PUT", rg .. "/providers/Microsoft.ContainerRegistry/registries/" .. name,
      api_version = "2025-04-01", body = body }
  end
  local results, errs = p:arm_batch(reqs, { concurrency = 32 })
  for i = 1, #reqs do if not results[i] then error("create " .. reqs[i][2] .. ": "
      .. tostring(errs[i])) end end
  print(string.format("created %d registries (%d with CMK) in %.1f s through p:arm_batch", #reqs,
    math.max(0, ncmk - existing), (clock.ms() - t0) / 1000))
end

-- ---------------------------------------------------------------- measure
local function timed(fn)
  local a = clock.ms()
  local r = must(fn())
  return (clock.ms() - a) / 1000, r
end

local function requests(r) return r.summary.registries end

local function round(label, d)
  control("DELETE", "faults")
  if d > 0 then
    control("POST", "faults", { rules = { { delay_ms = d } } })
  end
  local ts, rs = timed(function() return audit.audit_sequential({ pipeline = p,
      subscriptions = { sub } }) end)
  local tp, rp = timed(function() return audit.audit({ pipeline = p, subscriptions = { sub },
      concurrency = conc }) end)
  assert(requests(rs) == requests(rp) and requests(rp) >= n, "both runs must see every registry")
  print(string.format("%-34s registries %5d (CMK %4d)  sequential %7.2f s   parallel(%d) %6.2f s   " ..
      "speed-up %5.1fx",
    label, rp.summary.registries, rp.summary.cmk, ts, conc, tp, ts / tp))
  control("DELETE", "faults")
  return ts / tp
end

-- warm up: tokens, connections, vault challenge
must(audit.audit({ pipeline = p, subscriptions = { sub }, concurrency = conc }))
print(string.format("interpreter: %s", rawget(_G, "jit") and "LuaJIT" or _VERSION))
round("loopback (no added latency)", 0)
round(string.format("%d ms per request (Azure-like)", delay), delay)
