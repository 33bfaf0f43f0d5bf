-- Fleet audit benchmark (bench/audit.sh starts the emulator): SUBS subscriptions of PER_SUB
-- registries each, a CMK share of them encrypted with KEYS keys shared across the fleet (each
-- subscription's CMK registries use that subscription's user-assigned identity), behind the
-- emulator's throttling at Azure's numbers and a modelled round trip (/_emulator/config
-- latency_ms). Runs `azcmk audit -o ndjson` as a process under /usr/bin/time and reports, from
-- the emulator's request log: requests and reads per registry, 429s, wall time against the lower
-- bound and against the CPU spent (azcmk's, from time -v; the emulator's workers', from /proc),
-- peak memory (max RSS); then, from one more run with --no-probe, the CPU the data-plane
-- probes cost each side.
--   lua5.4 bench/audit.lua [subs=100] [per_sub=100] [cmk_share=0.1] [keys=20] [latency_ms=20]
--     [concurrency=32]
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local SUBS = tonumber(arg[1]) or 100
local PER_SUB = tonumber(arg[2]) or 100
local SHARE = tonumber(arg[3]) or 0.1
local KEYS = tonumber(arg[4]) or 20
local RTT = (tonumber(arg[5]) or 20) / 1000
local CONC = tonumber(arg[6]) or 32
local azcmk = require("azcmk")
local json = require("azcmk.json")
local clock = require("azcmk.clock")

-- Azure's published Resource Manager read budget (docs/emulator.md, "Throttling").
local BUCKET, REFILL, PAGE = 250, 25, 100
local KEYS_PER_VAULT = 5   -- Key Vault allows 20 key creates per 10 s per vault

local p = assert(azcmk.new({ log = "off" }))
local tenant = assert(os.getenv("AZURE_TENANT_ID"), "run against an emulator (bench/audit.sh)")

local function must(res, err)
  if not res then error(tostring(err), 2) end
  return res
end

local function control(method, path, body)
  return must(p:send({ method = method, url = "https://management.azure.com/_emulator/" .. path,
    body = body, auth = false }))
end

local function batch(reqs)
  local results, errs = p:arm_batch(reqs, { concurrency = 32 })
  for i = 1, #reqs do
    if not results[i] then error(reqs[i][1] .. " " .. reqs[i][2] .. ": " .. tostring(errs[i])) end
  end
  return results
end

-- ---------------------------------------------------------------- the fleet (not timed)
local t0 = clock.ms()
control("POST", "config", { lro = { polls = 0, seconds = 0, retry_after = 0 }, latency_ms = 0 })
local subs = json.decode(control("POST", "subscriptions", { count = SUBS, prefix = "bench" }).body)
  .subscriptions
local function rg(s) return "/subscriptions/" .. s .. "/resourceGroups/bench-rg" end
local reqs = {}
for _, s in ipairs(subs) do
  reqs[#reqs + 1] = { "PUT", rg(s), api_version = "2025-04-01", body = { location = "westus" } }
end
batch(reqs)
reqs = {}
for i, s in ipairs(subs) do
  reqs[i] = { "PUT", rg(s) .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/bench-uai",
    api_version = "2024-11-30", body = { location = "westus" } }
end
local uais = {}
for i, r in ipairs(batch(reqs)) do uais[i] = r.json end

local _, claims = require("azcmk.crypto").jwt_decode_unverified(must(p:token(
  "https://management.azure.com/.default")).token)
local policies = { { tenantId = tenant, objectId = claims.oid,
  permissions = { keys = { "get", "list", "create" } } } }
for _, u in ipairs(uais) do
  policies[#policies + 1] = { tenantId = tenant, objectId = u.properties.principalId,
    permissions = { keys = { "get", "wrapKey", "unwrapKey" } } }
end
local kids = {}
local stamp = tostring(os.time() % 100000)
for v = 1, math.ceil(KEYS / KEYS_PER_VAULT) do
  local vault = "benchkv" .. stamp .. "v" .. v
  must(p:arm("PUT", rg(subs[1]) .. "/providers/Microsoft.KeyVault/vaults/" .. vault, {
    api_version = "2026-02-01",
    body = { location = "westus", properties = { tenantId = tenant, sku = { family = "A", name = "standard" },
      enableSoftDelete = true, softDeleteRetentionInDays = 7, enablePurgeProtection = true,
      accessPolicies = policies } } }))
  for k = 1, math.min(KEYS_PER_VAULT, KEYS - #kids) do
    local key = must(p:vault("POST", "https://" .. vault .. ".vault.azure.net", "/keys/k" .. k .. "/create",
      { body = { kty = "RSA", key_size = 2048 } })).json
    kids[#kids + 1] = key.key.kid
  end
end

local ncmk_sub = math.floor(PER_SUB * SHARE + 0.5)
local n, c = 0, 0
reqs = {}
for i, s in ipairs(subs) do
  for j = 1, PER_SUB do
    n = n + 1
    local body = { location = "westus", sku = { name = "Premium" } }
    if j <= ncmk_sub then
      c = c + 1
      local kid = kids[(c % #kids) + 1]   -- the CMK registries take the keys in turn
      body.identity = { type = "UserAssigned", userAssignedIdentities = { [uais[i].id] = {} } }
      -- half versioned, half versionless key ids
      body.properties = { encryption = { status = "enabled", keyVaultProperties = {
        keyIdentifier = (j % 2 == 0) and kid or kid:gsub("/[%x]+$", ""),
        identity = uais[i].properties.clientId } } }
    end
    reqs[#reqs + 1] = { "PUT", rg(s)
      .. string.format("/providers/Microsoft.ContainerRegistry/registries/b%03dr%04d", i, j),
      api_version = "2025-04-01", body = body }
  end
end
batch(reqs)
print(string.format("fleet: %d registries in %d subscriptions, %d with CMK on %d keys in %d vaults "
  .. "(seeded in %.0f s)", n, SUBS, ncmk_sub * SUBS, #kids, math.ceil(KEYS / KEYS_PER_VAULT),
  (clock.ms() - t0) / 1000))

-- ---------------------------------------------------------------- the audit (timed)
control("POST", "config", { latency_ms = RTT * 1000, throttle = { enabled = true, scale = 1 } })
-- (posting the throttle settings refills every bucket: the seeding's writes are forgotten)
local function health() return json.decode(control("GET", "health").body) end
local out = os.getenv("BENCH_OUT") or "build/bench"
-- One untimed audit first: the emulator makes each CMK registry's content key on the first
-- data-plane request that needs it (Azure does that work when the registry is created) and
-- warms its per-worker caches; then the buckets are refilled again.
os.execute("./bin/azcmk audit -o none --concurrency " .. CONC .. " > /dev/null 2>&1")
-- The emulator tops its pool of RSA keys up in the background (niced) after the seeding took
-- its keys: wait until no key has been in the making for a second, so that key generation does
-- not share the cores with the timed run (at most two minutes).
local emu_dir = assert(os.getenv("AZCMK_EMULATOR_DIR"), "run against an emulator (bench/audit.sh)")
local pool = emu_dir .. "/keypool"
local idle, waited = 0, 0
while idle < 4 and waited < 480 do
  local ls = io.popen("ls -a " .. pool .. "/*/ 2>/dev/null | grep -c '^\\.gen\\.'")
  local busy = ls:read("n") or 0
  ls:close()
  idle = busy > 0 and 0 or idle + 1
  waited = waited + 1
  clock.sleep(0.25)
end
print(string.format("waited %.1f s for the emulator's key pool to fill", waited / 4))
control("POST", "config", { throttle = { enabled = true, scale = 1 } })
local seq0, thr0 = health().log_seq, health().throttled
local cmd = string.format("/usr/bin/time -v -o %s/audit.time ./bin/azcmk audit -o ndjson --concurrency %d "
  .. "> %s/audit.ndjson 2> %s/audit.err", out, CONC, out, out)
-- the emulator's CPU: its nginx workers (and the keygen pool, if busy), from /proc
local function emulator_cpu()
  local master = io.open(emu_dir .. "/nginx.pid"):read("l")
  local ticks = 0
  local ps = io.popen("pgrep -P " .. master)
  for pid in ps:lines() do
    local f = io.open("/proc/" .. pid .. "/stat")
    if f then
      local st = f:read("a"):gsub("^.-%) ", "")   -- after "(comm) ": state is field 3
      f:close()
      local fields = {}
      for x in st:gmatch("%S+") do fields[#fields + 1] = x end
      ticks = ticks + tonumber(fields[12]) + tonumber(fields[13])   -- utime, stime (14, 15)
    end
  end
  ps:close()
  return ticks / 100   -- USER_HZ
end
local emu_cpu0 = emulator_cpu()
local a = clock.ms()
os.execute(cmd)
local wall = (clock.ms() - a) / 1000
local emu_cpu = emulator_cpu() - emu_cpu0
control("POST", "config", { latency_ms = 0 })

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local t = f:read("a")
  f:close()
  return t
end
-- user + system CPU seconds and max RSS (KiB) from a `time -v` report
local function usage(path)
  local t = slurp(path)
  return tonumber(t:match("User time %(seconds%): ([%d.]+)"))
    + tonumber(t:match("System time %(seconds%): ([%d.]+)")),
    tonumber(t:match("Maximum resident set size %(kbytes%): (%d+)"))
end
local client_cpu, rss = usage(out .. "/audit.time")
local cores = tonumber(io.popen("nproc"):read("l")) or 1
local rows, summary = 0, nil
for line in slurp(out .. "/audit.ndjson"):gmatch("[^\n]+") do
  local v = json.decode(line)
  if v.summary then summary = v.summary else rows = rows + 1 end
end
assert(summary and rows == n + 0 or rows >= n, "the audit must see every registry: " .. rows .. " of " .. n
  .. "\n" .. slurp(out .. "/audit.err"))

-- ---------------------------------------------------------------- what was sent
local by = { arm = 0, vault = 0, acr = 0, login = 0 }
local n429, arm_per_sub = 0, {}
local log = control("GET", "log?since=" .. seq0).body
for line in log:gmatch("[^\n]+") do
  local e = json.decode(line)
  if not tostring(e.path):match("^/_emulator") then
    local host = tostring(e.host)
    local kind = host == "management.azure.com" and "arm" or host:match("%.vault%.azure%.net$") and "vault"
      or host:match("%.azurecr%.io$") and "acr" or "login"
    by[kind] = by[kind] + 1
    if e.status == 429 then n429 = n429 + 1 end
    local s = kind == "arm" and tostring(e.path):lower():match("^/subscriptions/([^/?]+)")
    if s then arm_per_sub[s] = (arm_per_sub[s] or 0) + 1 end
  end
end
local sent = by.arm + by.vault + by.acr + by.login
local reads = by.arm + by.vault

-- The lower bound. Unavoidable: per subscription its list pages (PAGE registries a page) and,
-- when it holds CMK registries, its identity list; one subscription list; one read per
-- distinct key; the data plane probe of each CMK registry. Throttling: a subscription whose
-- reads exceed its bucket waits (reads - BUCKET) / REFILL s; Key Vault's 4,000 per 10 s per
-- vault never binds here. Round trips: RTT each, at most CONC at once, and a chain of
-- dependent ones (token, subscriptions, a subscription's pages, identity list or key, probe).
local pages = math.ceil(PER_SUB / PAGE)
local per_sub_reads = pages + (ncmk_sub > 0 and 1 or 0)
local throttle_lb = math.max(0, (per_sub_reads - BUCKET) / REFILL)
local unavoidable = 1 + SUBS * per_sub_reads + #kids + ncmk_sub * SUBS
local rtt_lb = math.max((3 + pages + 1) * RTT, math.ceil(unavoidable / CONC) * RTT)
local lb = math.max(throttle_lb, rtt_lb)
local maxsub = 0
for _, count in pairs(arm_per_sub) do if count > maxsub then maxsub = count end end

print(string.format("audit: %d rows (%d CMK; %d ok, %d warn, %d fail), exit status in %s/audit.err",
  rows, summary.cmk, summary.ok, summary.warn, summary.fail, out))
print(string.format("requests sent: %d = %.3f per registry (ARM %d, Key Vault %d, data plane probes %d, "
  .. "token %d)", sent, sent / n, by.arm, by.vault, by.acr, by.login))
print(string.format("reads (ARM + Key Vault): %d = %.4f per registry; target 0.05 x %d + %d distinct keys "
  .. "= %d -> %s", reads, reads / n, n, #kids, math.floor(0.05 * n + #kids),
  reads <= 0.05 * n + #kids and "met" or "MISSED"))
print(string.format("ARM reads of the busiest subscription: %d (its bucket: %d + %d/s)", maxsub, BUCKET,
  REFILL))
print(string.format("429s met: %d (the emulator's throttled counter: +%d)", n429, health().throttled - thr0))
print(string.format("wall time: %.2f s; lower bound %.2f s (throttling %.2f s, round trips %.2f s: %d "
  .. "unavoidable requests, %d at once, %.0f ms each) -> %.2fx", wall, lb, throttle_lb, rtt_lb, unavoidable,
  CONC, RTT * 1000, wall / lb))
print(string.format("CPU: azcmk %.2f s (user + system; one thread), emulator %.2f s, on %d cores shared -> "
  .. "the wall time cannot be under %.2f s (azcmk's own CPU) nor %.2f s (both CPUs over the cores)",
  client_cpu, emu_cpu, cores, client_cpu, (client_cpu + emu_cpu) / cores))
print(string.format("peak memory (max RSS of the azcmk process): %d KiB", rss or -1))

-- ---------------------------------------------------------------- what the probes cost
-- The same audit once more without the data-plane probes (--no-probe; after the counts above,
-- not timed): the difference is the CPU the probes take on each side - each one a TLS
-- connection of its own to a host of its own - which no scheduling removes from these cores.
control("POST", "config", { latency_ms = RTT * 1000, throttle = { enabled = true, scale = 1 } })
local emu_np0 = emulator_cpu()
os.execute(string.format("/usr/bin/time -v -o %s/audit-noprobe.time ./bin/azcmk audit -o ndjson --no-probe "
  .. "--concurrency %d > /dev/null 2>&1", out, CONC))
local emu_np = emulator_cpu() - emu_np0
control("POST", "config", { latency_ms = 0 })
local client_np = usage(out .. "/audit-noprobe.time")
local probes = math.max(by.acr, 1)
local probe_cpu = (client_cpu - client_np) + (emu_cpu - emu_np)
print(string.format("without the probes (--no-probe): azcmk %.2f s, emulator %.2f s of CPU -> each probe "
  .. "costs azcmk %.2f ms and the emulator %.2f ms; the %d probes alone need %.2f s of CPU: at least %.2f s "
  .. "on %d cores",
  client_np, emu_np, (client_cpu - client_np) * 1000 / probes, (emu_cpu - emu_np) * 1000 / probes, by.acr,
  probe_cpu, probe_cpu / cores, cores))
