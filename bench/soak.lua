--- The soak's driver (bench/soak.sh starts the emulator and calls it):
--   lua5.4 bench/soak.lua RUNS RATE KILL [SEED]
-- RUNS runs of the CMK story (setup, show, rotate, revoke, restore, doctor), each step a
-- process (bench/soak_step.lua) under the emulator's random faults at RATE (0..1) of every
-- kind Azure makes on ARM, Key Vault and the token endpoint (`pick: "all"`: 429, 500, 503,
-- dropped connections before and after applying, 500 after applying, long-running operations
-- that end Failed, answers slower than the client's timeout, applied late or on time), and
-- with probability KILL a step's first try is killed (SIGKILL) at a random moment. A step
-- that fails is run again (same AZCMK_OPERATION_ID) until it succeeds, at most MAX times,
-- after the failed try's held writes have landed (a killed process's request still in flight
-- is applied late whatever its client does).
-- After each run, with faults off, the state is checked over plain REST: no duplicated key
-- version, identity, access-policy entry or role assignment, registry or vault; nothing lost
-- (the registry encrypted with the rotated version, the identity able to use the key).
-- Prints one line of counts; exits 1 when a duplicate or a loss was found (runs that gave up
-- with an error are counted apart, and their state is not checked).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local compose = require("azcmk.compose")
local client = require("azcmk.client")
local cjson = require("cjson.safe")

local RUNS = tonumber(arg[1]) or 10
local RATE = tonumber(arg[2]) or 0.2
local KILL = tonumber(arg[3]) or 0.1
local SEED = tonumber(arg[4]) or os.time()
local MAX = 8
local DELAY_MS = 3500
local STORY = { "setup", "show", "rotate", "revoke", "restore", "doctor" }
local LUA = os.getenv("SOAK_LUA") or "lua5.4"
math.randomseed(SEED)

local p = assert(compose.pipeline({ lro_interval = 0.05 }))
local c = client.new(p, { subscription = p.subscription })

local function control(method, path, body)
  local res, err = p:send({ method = method, url = "https://management.azure.com/_emulator/" .. path,
    auth = false, body = body })
  if not res then error("control " .. method .. " " .. path .. ": " .. tostring(err)) end
  return res
end
local function log_seq() return control("GET", "health").json.log_seq end
local function faults_met(since, into)
  local body = control("GET", "log?since=" .. since).body or ""
  for line in body:gmatch("[^\n]+") do
    local e = cjson.decode(line)
    if e and e.fault_action then
      into[e.fault_action] = (into[e.fault_action] or 0) + 1
      into.total = into.total + 1
    end
  end
end

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- long-running operations end at their first poll
control("POST", "config", { lro = { polls = 1, seconds = 0, retry_after = 0 } })

local stats = { runs = 0, steps = 0, tries = 0, kills = 0, first_try_failed = 0, gave_up = 0,
  failed_runs = 0, reconcile = { applied = 0, ["not applied"] = 0, unknown = 0 }, reused = 0,
  duplicates = 0, losses = 0, faults = { total = 0 } }
local problems = {}
local errfile = os.tmpname()

-- One try of a step; returns the exit status and whether it was killed.
local function try_step(verb, names, opid, kill_after)
  local cmd = "AZCMK_OPERATION_ID=" .. shq(opid) .. " "
    .. (kill_after and string.format("timeout -s KILL %.2f ", kill_after) or "")
    .. LUA .. " bench/soak_step.lua " .. verb .. " " .. shq(names.registry) .. " " .. shq(names.rg) .. " "
    .. shq(names.vault) .. " >/dev/null 2>" .. shq(errfile)
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then code = ok; ok = code == 0 end      -- LuaJIT: one status number
  if kill_after and (code == 137 or how == "signal") then return code, true end
  local f = io.open(errfile)
  local text = f and f:read("a") or ""
  if f then f:close() end
  for outcome in text:gmatch("reconcile [^\n]-: ([%a ]-) %(after") do
    stats.reconcile[outcome] = (stats.reconcile[outcome] or 0) + 1
  end
  return ok and 0 or code, false, text
end

-- the state a finished run must leave; returns a list of problems (duplicates, losses)
local function check(names, after_setup)
  local out = {}
  local function bad(kind, msg) out[#out + 1] = { kind = kind, msg = names.registry .. ": " .. msg } end
  local reg = assert(c.registries:get({ resource_group = names.rg, name = names.registry }))
  local regs = assert(c.registries:list({ resource_group = names.rg }))
  if #regs ~= 1 then bad("duplicate", #regs .. " registries") end
  local idents = assert(c.identities:list({ resource_group = names.rg }))
  if #idents ~= 1 then bad(#idents > 1 and "duplicate" or "loss", #idents .. " identities") end
  local vault = c.vaults:get({ resource_group = names.rg, name = names.vault })
  if not vault then bad("loss", "no vault"); return out end
  local key = names.registry:lower() .. "-cmk"
  local versions = assert(c.keys:versions({ vault = names.vault, name = key }))
  if #versions > 2 then bad("duplicate", #versions .. " key versions (setup 1 + rotate 1)") end
  if #versions < 2 then bad("loss", #versions .. " key versions (setup 1 + rotate 1)") end
  local kvp = (((reg.properties or {}).encryption or {}).keyVaultProperties) or {}
  local in_use = tostring(kvp.versionedKeyIdentifier)
  if tostring(reg.properties.provisioningState) ~= "Succeeded" then
    bad("loss", "registry " .. tostring(reg.properties.provisioningState))
  end
  if in_use == after_setup then bad("loss", "the registry still uses the setup's key version") end
  local known = false
  for _, v in ipairs(versions) do if v.kid:lower() == in_use:lower() then known = true end end
  if not known then bad("loss", "the registry's key version " .. in_use .. " is not a version of " .. key) end
  local principal = idents[1] and idents[1].properties.principalId
  if vault.properties.enableRbacAuthorization then
    local ras = assert(c.role_assignments:find({ scope = vault.id, principal_id = principal,
      role = "crypto_service_encryption_user" }))
    if #ras ~= 1 then bad(#ras > 1 and "duplicate" or "loss", #ras .. " role assignments of the identity") end
  else
    local n = 0
    for _, ap in ipairs(vault.properties.accessPolicies or {}) do
      if tostring(ap.objectId):lower() == tostring(principal):lower() then n = n + 1 end
    end
    if n ~= 1 then bad(n > 1 and "duplicate" or "loss", n .. " access-policy entries of the identity")
    end
    if not require("azcmk.client.vaults").policy_grants(vault, principal) then
      bad("loss", "the identity's access-policy entry does not grant get, wrapKey, unwrapKey")
    end
  end
  return out
end

local t0 = os.time()
for run = 1, RUNS do
  local tag = string.format("%05d%03d", SEED % 100000, run)
  local names = { registry = "soak" .. tag, rg = "soak-rg-" .. tag, vault = "soakkv" .. tag }
  local after_setup
  local run_ok = true
  for si, verb in ipairs(STORY) do
    local opid = "soak-" .. tag .. "-" .. si
    local done, last_err = false, nil
    stats.steps = stats.steps + 1
    for attempt = 1, MAX do
      stats.tries = stats.tries + 1
      control("POST", "faults", { rules = { { service = { "arm", "vault", "login" }, ratio = RATE,
        seed = SEED * 1000 + run * 37 + si * 7 + attempt, pick = "all", delay_ms = DELAY_MS } } })
      local seq = log_seq()
      local kill_after = attempt == 1 and math.random() < KILL and (0.2 + math.random() * 4) or nil
      local code, killed, text = try_step(verb, names, opid, kill_after)
      control("DELETE", "faults")
      faults_met(seq, stats.faults)
      if killed then stats.kills = stats.kills + 1 end
      -- A try that was killed or gave up may leave a write held by the emulator (delay_ms) that
      -- lands later; no client can stop that, so the re-run starts once such writes have landed.
      if code ~= 0 then os.execute(string.format("sleep %.1f", DELAY_MS / 1000 + 0.5)) end
      if text and text:find("reused (made by an earlier run)", 1, true) then
        stats.reused = stats.reused + 1
      end
      if code == 0 then done = true break end
      last_err = text
      if attempt == 1 and not killed then stats.first_try_failed = stats.first_try_failed + 1 end
      if text and text ~= "" and os.getenv("SOAK_VERBOSE") then io.stderr:write(text) end
    end
    if not done then
      stats.gave_up = stats.gave_up + 1
      run_ok = false
      problems[#problems + 1] = { kind = "gave up", msg = names.registry .. ": " .. verb .. " failed " .. MAX
        .. " times; last: " .. tostring(last_err):gsub("\n.*", "") }
      break
    end
    if verb == "setup" then
      local reg = assert(c.registries:get({ resource_group = names.rg, name = names.registry }))
      after_setup = tostring(reg.properties.encryption.keyVaultProperties.versionedKeyIdentifier)
    end
  end
  stats.runs = stats.runs + 1
  if run_ok then
    for _, pr in ipairs(check(names, after_setup)) do
      problems[#problems + 1] = pr
      if pr.kind == "duplicate" then stats.duplicates = stats.duplicates + 1
      else stats.losses = stats.losses + 1 end
    end
  else
    stats.failed_runs = stats.failed_runs + 1
  end
  if os.getenv("SOAK_PROGRESS") then
    io.stderr:write(string.format("run %d/%d: %s (%ds)\n", run, RUNS, run_ok and "ok" or "failed",
      os.time() - t0))
  end
end
os.remove(errfile)

local kinds = {}
for k, v in pairs(stats.faults) do if k ~= "total" then kinds[#kinds + 1] = k .. "=" .. v end end
table.sort(kinds)
print(string.format("soak rate=%.0f%% kill=%.0f%%: runs=%d ok=%d failed=%d steps=%d tries=%d "
  .. "first_try_failed=%d (%.1f%% of steps) kills=%d faults=%d [%s] reconciles: applied=%d not_applied=%d "
  .. "unknown=%d reused_versions=%d duplicates=%d losses=%d seconds=%d",
  RATE * 100, KILL * 100, stats.runs, stats.runs - stats.failed_runs, stats.failed_runs, stats.steps,
  stats.tries, stats.first_try_failed, 100 * stats.first_try_failed / math.max(1, stats.steps), stats.kills,
  stats.faults.total,
  table.concat(kinds, " "), stats.reconcile.applied, stats.reconcile["not applied"], stats.reconcile.unknown,
  stats.reused, stats.duplicates, stats.losses, os.time() - t0))
for _, pr in ipairs(problems) do print("  " .. pr.kind .. ": " .. pr.msg) end
os.exit((stats.duplicates == 0 and stats.losses == 0) and 0 or 1)
