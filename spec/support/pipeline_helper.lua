--- Helpers for the pipeline's integration specs (spec/pipeline/): pipelines wired to the
-- running emulator (real HTTPS through AZCMK_CONNECT_TO / AZCMK_CA_FILE), every log line of
-- the run captured at debug level, and every secret and token seen on the wire recorded, so
-- that the suite can assert that none of them ever reached a log line.
local E = require("support.emulator")
local cjson = require("cjson.safe")
local pipeline = require("azcmk.pipeline")
local transport = require("azcmk.transport.curl")
local log = require("azcmk.log")
local url = require("azcmk.url")

local H = { lines = {}, secrets = {}, sleeps = {} }

-- busted insulates spec files (modules are reloaded per file), so the run-wide record of log
-- lines and secrets lives in two files that zz_no_secrets_spec.lua checks and then clears.
H.LINES_FILE = "build/pipeline-spec-log.txt"
H.SECRETS_FILE = "build/pipeline-spec-secrets.txt"
os.execute("mkdir -p build")

local function append(path, s)
  local f = io.open(path, "ab")
  if f then f:write(s, "\n"); f:close() end
end

local function add_secret(s)
  if type(s) == "string" and #s >= 8 and not H.secrets[s] and not s:find("\n", 1, true) then
    H.secrets[s] = true
    append(H.SECRETS_FILE, s)
  end
end
H.add_secret = add_secret

--- Env of the running emulator (started when needed) plus its seed; records seeded secrets.
function H.env()
  if H._env then return H._env, H._seed end
  H._env = E.ensure()
  H._seed = E.seed()
  local s = H._seed
  add_secret(H._env.AZURE_CLIENT_SECRET)
  if s then
    add_secret(s.owner and s.owner.client_secret)
    add_secret(s.owner and s.owner.pkcs12_password)
    add_secret(s.noaccess and s.noaccess.client_secret)
    add_secret(s.appservice and s.appservice.identity_header)
  end
  return H._env, H._seed
end

--- getenv over the emulator env plus overrides (false removes a variable).
function H.getenv(extra)
  local env = H.env()
  return function(k)
    if extra and extra[k] ~= nil then
      if extra[k] == false then return nil end
      return extra[k]
    end
    if k == "AZCMK_CONNECT_TO" or k == "AZCMK_CA_FILE" or k:match("^AZURE_") or k:match("^IDENTITY_")
      or k:match("^MSI_") or k == "IMDS_ENDPOINT" then
      return env[k]
    end
    return nil
  end
end

-- record tokens, assertions and secrets crossing the wire
local function record(req, res)
  for k, v in pairs(req.headers or {}) do
    local lk = tostring(k):lower()
    if lk == "authorization" then add_secret((tostring(v):gsub("^Bearer ", ""))) end
    if lk == "x-identity-header" or lk == "secret" then add_secret(v) end
  end
  if type(req.body) == "string" and req.body:find("client_", 1, true) then
    for _, kv in ipairs(url.parse_query(req.body)) do
      if kv[1] == "client_secret" or kv[1] == "client_assertion" then add_secret(kv[2]) end
    end
  end
  if res and type(res.body) == "string" and res.body:find("access_token", 1, true) then
    local j = cjson.decode(res.body)
    if type(j) == "table" then add_secret(j.access_token); add_secret(j.refresh_token) end
  end
end

--- The real curl transport to the emulator, recording secrets.
function H.transport()
  local env = H.env()
  local t = transport.new({ env = env })
  local inner = t.request
  t.request = function(self, req)
    local res, err = inner(self, req)
    record(req, res)
    return res, err
  end
  return t
end

--- A debug logger whose lines go to H.lines (and to `into` when given).
function H.logger(into)
  return log.new({ level = "debug", sink = function(line)
    H.lines[#H.lines + 1] = line
    append(H.LINES_FILE, (line:gsub("\n", " ")))
    if into then into[#into + 1] = line end
  end })
end

--- Sleep that does not wait (records the delay).
function H.sleep(s) H.sleeps[#H.sleeps + 1] = s end

--- A pipeline on the emulator. opts are passed to pipeline.new (credential=, now=, ...).
function H.pipeline(opts)
  opts = opts or {}
  local o = { transport = H.transport(), log = H.logger(opts.lines), sleep = H.sleep,
              lro_interval = 0.01, cloud = "AzureCloud" }
  for k, v in pairs(opts) do if k ~= "lines" then o[k] = v end end
  if o.credential and o.credential.attach then
    o.credential:attach({ getenv = H.getenv() })
  end
  return assert(pipeline.new(o))
end

--- A client-secret credential of a seeded principal (default the owner of the subscription).
function H.client_secret(seed, who)
  local sp = seed[who or "owner"]
  return require("azcmk.credential").client_secret({ tenant_id = seed.tenant_id, client_id = sp.app_id,
    client_secret = sp.client_secret })
end

--- Create a Key Vault (access-policy model, the owner may do everything with keys) and
-- return its URL, or nil when the emulator does not serve Key Vault (yet): its data plane
-- must answer a token-less request with 401 + WWW-Authenticate.
function H.vault(p, seed, name)
  name = name or ("pipekv" .. tostring(os.time() % 100000) .. tostring(math.random(100, 999)))
  local rg = "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/pipe-kv"
  assert(p:arm("PUT", rg, { api_version = "2021-04-01", body = { location = "westeurope" } }))
  assert(p:arm_lro("PUT", rg .. "/providers/Microsoft.KeyVault/vaults/" .. name,
    { api_version = "2024-11-01",
    body = { location = "westeurope", properties = {
      tenantId = seed.tenant_id, sku = { family = "A", name = "standard" },
      enableRbacAuthorization = false, enableSoftDelete = true, enablePurgeProtection = true,
      accessPolicies = { { tenantId = seed.tenant_id, objectId = seed.owner.object_id,
        permissions = { keys = { "all" } } } } } } }))
  local u = "https://" .. name .. ".vault.azure.net"
  local probe, e = p:send({ method = "GET", url = u .. "/keys", api_version = "2025-07-01", auth = false })
  assert(not probe and e and e.status == 401, "the vault should answer 401 with a challenge")
  return u
end

--- Emulator control API.
function H.control(method, path, body)
  return E.control(method, path, body)
end

function H.reset()
  H.control("DELETE", "faults")
  return H.control("POST", "reset")
end

--- Emulator request log entries (decoded) after sequence number `since`. nginx writes the
-- log in its log phase, after the answer went out, so wait until the sequence is stable.
function H.log_entries(since)
  local last = H.log_seq()
  for _ = 1, 20 do
    os.execute("sleep 0.05")
    local now = H.log_seq()
    if now - last <= 1 then break end   -- the health call itself is logged
    last = now
  end
  local r = H.control("GET", "log" .. (since and ("?since=" .. since) or ""))
  local out = {}
  local body = r.body or ""
  for line in body:gmatch("[^\n]+") do
    local j = cjson.decode(line)
    if j then out[#out + 1] = j end
  end
  return out
end

--- The emulator's current log sequence number.
function H.log_seq()
  local h = H.control("GET", "health")
  return (h.json and h.json.log_seq) or 0
end

--- Count log entries matching host and path prefix (control API calls never count).
function H.count(entries, host, path_prefix, method)
  local n = 0
  for _, e in ipairs(entries) do
    if (e.path or ""):sub(1, 11) ~= "/_emulator/"
      and (not host or e.host == host) and (not path_prefix or (e.path or ""):sub(1,
      #path_prefix) == path_prefix)
      and (not method or e.method == method) then
      n = n + 1
    end
  end
  return n
end

--- Assert no recorded secret appears in the given lines (default: every line of the run).
function H.assert_no_secrets(lines)
  lines = lines or H.lines
  local n = 0
  for s in pairs(H.secrets) do
    n = n + 1
    for _, line in ipairs(lines) do
      if line:find(s, 1, true) then
        error("secret leaked into a log line: " .. line:sub(1, 80) .. "...", 2)
      end
    end
  end
  return n
end

--- Everything recorded by every spec file of the run: lines, secrets (lists).
function H.recorded()
  local function read(path)
    local out = {}
    local f = io.open(path, "rb")
    if not f then return out end
    for l in f:lines() do out[#out + 1] = l end
    f:close()
    return out
  end
  return read(H.LINES_FILE), read(H.SECRETS_FILE)
end

function H.clear_recorded()
  os.remove(H.LINES_FILE)
  os.remove(H.SECRETS_FILE)
end

H.E = E
return H
