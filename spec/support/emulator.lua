--- Spec helper for everything that talks to the emulator over real HTTPS.
--
--   local E = require("support.emulator")
--   local env = E.ensure()          -- env of a running emulator (AZCMK_* / AZURE_* names)
--   local seed = E.seed()           -- GET /_emulator/seed
--   local res = E.request{ method = "GET", url = "https://management.azure.com/...",
--                          headers = {...}, body = "..." | table (JSON) , form = {k = v} }
--   -- res = { status, headers (lower-case), body, json (decoded or nil) }
--   E.control("POST", "clock", { advance = 60 })  -- /_emulator/<path>
--   E.token("https://vault.azure.net")            -- owner's token (client secret) for a resource
--   E.arm("PUT", "/subscriptions/.../resourcegroups/x", { location = "westus" },
--         { api_version = "2024-11-01", token = ... })
--   E.assert_no_internal_errors()                  -- no 500 from a Lua error so far
--
-- ensure(): when AZCMK_EMULATOR_DIR is set (scripts/test.sh starts one emulator for the whole
-- run and exports its lines) that one is used; otherwise one is started on a free port and
-- stopped when the Lua state closes (busted exits with os.exit(code, true)).
local cjson = require("cjson.safe")

local M = {}
local port_free = require("support.sys").port_free

local VARS = { "AZCMK_CONNECT_TO", "AZCMK_CA_FILE", "AZURE_TENANT_ID", "AZURE_CLIENT_ID",
  "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID", "AZCMK_EMULATOR_DIR" }

local env, client, own_dir, sentinel


--- The throttling the suite's emulators start with (AZCMK_EMULATOR_THROTTLE), from
-- spec/support/emulator_throttle.json, which scripts/test.sh reads too: Azure's buckets
-- x1000, so every request is counted and answered with live x-ms-ratelimit-remaining-*
-- headers, and no spec meets a 429 it did not ask for (docs/emulator.md "In the test suite").
M.THROTTLE = (function()
  local f = assert(io.open("spec/support/emulator_throttle.json"))
  local v = f:read("*l")
  f:close()
  return v
end)()

--- A free port N such that N, N+1 and N+2 (https, http, proxy) are free.
function M.free_port()
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  for _ = 1, 50 do
    local port = math.random(20000, 29997)
    if port_free(port) and port_free(port + 1) and port_free(port + 2) then return port end
  end
  error("no free port found")
end

local function parse_exports(out)
  local e = {}
  for k, v in out:gmatch("export ([%w_]+)='([^']*)'") do e[k] = v end
  return e
end

--- Starts an emulator with bin/azcmk: returns env (parsed export lines), or nil, message.
function M.start(port, dir)
  local p = io.popen("AZCMK_EMULATOR_THROTTLE='" .. M.THROTTLE .. "' ./bin/azcmk emulator start --port " ..
    port .. " --dir " .. dir .. " 2>&1")
  local out = p:read("*a")
  p:close()
  local e = parse_exports(out)
  if not e.AZCMK_CONNECT_TO then return nil, out end
  e.port = port
  return e
end

function M.stop(dir)
  os.execute("./bin/azcmk emulator stop --dir " .. dir .. " >/dev/null 2>&1")
end

local newproxy = rawget(_G, "newproxy")
local function on_close(fn)
  if newproxy then -- LuaJIT: only userdata run __gc
    local p = newproxy(true)
    getmetatable(p).__gc = fn
    return p
  end
  return setmetatable({}, { __gc = fn })
end

function M.ensure()
  if env then return env end
  if os.getenv("AZCMK_EMULATOR_DIR") and os.getenv("AZCMK_CONNECT_TO") then
    env = {}
    for _, k in ipairs(VARS) do env[k] = os.getenv(k) end
  else
    local port = M.free_port()
    own_dir = "build/spec-emulator-" .. port
    local e, err = M.start(port, own_dir)
    assert(e, "could not start the emulator: " .. tostring(err))
    env = e
    local dir = own_dir
    sentinel = on_close(function() M.stop(dir) os.execute("rm -rf " .. dir) end)
    -- LuaJIT's busted exits without running __gc: a watchdog stops the emulator (and removes
    -- its directory) once this process is gone.
    local f = io.open("/proc/self/stat")
    local me = f and tonumber(f:read("*l"):match("^(%d+)"))
    if f then f:close() end
    if me then
      -- (a zombie counts as gone: containers often have no reaping init)
      os.execute("setsid sh -c 'while [ \"$(cut -d\" \" -f3 /proc/" .. me ..
        "/stat 2>/dev/null || echo Z)\" != Z ]; do sleep 0.5; done; " ..
        "./bin/azcmk emulator stop --dir " .. dir .. "; rm -rf " .. dir .. "' </dev/null >/dev/null 2>&1 &")
    end
  end
  env.port = env.port or tonumber(env.AZCMK_CONNECT_TO:match(":443:127%.0%.0%.1:(%d+)"))
  env.http_port = env.port + 1
  env.proxy_port = env.port + 2
  return env
end

--- The directory of an emulator this helper started itself (nil when it reuses one).
function M.own_dir() return own_dir end
M._sentinel = function() return sentinel end

function M.client()
  if client then return client end
  local e = M.ensure()
  client = require("azcmk.http").new({ timeout_ms = 20000 }, e)
  return client
end

local function urlencode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end
M.urlencode = urlencode

function M.form_encode(t)
  local parts = {}
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(t[k]) end
  return table.concat(parts, "&")
end

--- One HTTP request through the core client (connect_to + CA of the emulator).
-- opts: method, url, headers, body (string, or table sent as JSON), form (table, urlencoded),
-- client (another azcmk.http client). Returns res (with .json) or nil, err, code.
function M.request(opts)
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local body = opts.body
  if opts.form then
    body = M.form_encode(opts.form)
    headers["Content-Type"] = headers["Content-Type"] or "application/x-www-form-urlencoded"
  elseif type(body) == "table" then
    body = cjson.encode(body)
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  end
  local c = opts.client or M.client()
  local res, err, code = c:request({ method = opts.method or "GET", url = opts.url, headers = headers,
    body = body, timeout_ms = opts.timeout_ms })
  if not res then return nil, err, code end
  res.json = cjson.decode(res.body or "")
  return res
end

--- /_emulator/<path> (path with or without the prefix), on management.azure.com.
function M.control(method, path, body)
  M.ensure()
  path = path:gsub("^/?_emulator/", ""):gsub("^/", "")
  local res = assert(M.request({ method = method, url = "https://management.azure.com/_emulator/" .. path,
    body = body }))
  return res
end

function M.seed()
  return M.control("GET", "seed").json
end

function M.reset()
  return M.control("POST", "reset")
end

--- A spec's start: the emulator running and back in its seeded state; returns the seed.
function M.fresh()
  M.ensure()
  M.reset()
  return M.seed()
end

--- Client-credentials token for `resource` (default ARM). who: "owner" (default) or
-- "noaccess", or {app_id=, client_secret=}. Returns access token (raises on failure).
function M.token(resource, who)
  local s = M.seed()
  local cred = s.owner
  if who == "noaccess" then cred = s.noaccess elseif type(who) == "table" then cred = who end
  local res = assert(M.request({ method = "POST",
    url = "https://login.microsoftonline.com/" .. s.tenant_id .. "/oauth2/v2.0/token",
    form = { grant_type = "client_credentials", client_id = cred.app_id, client_secret = cred.client_secret,
      scope = (resource or "https://management.azure.com") .. "/.default" } }))
  assert(res.status == 200, "token request failed: " .. tostring(res.body))
  return res.json.access_token
end

local arm_tokens = {}
function M.arm_token(who)
  who = who or "owner"
  -- Tokens are cached per start (secret) and per clock offset (a token issued at a later
  -- simulated time is not yet valid after a reset).
  local key = who .. ":" .. tostring(M.seed().owner.client_secret) .. ":" ..
    tostring(M.control("GET", "clock").json.offset)
  if not arm_tokens[key] then arm_tokens[key] = M.token("https://management.azure.com", who) end
  return arm_tokens[key]
end

--- ARM request: path like "/subscriptions/..."; body table -> JSON.
-- opts: api_version (appended as ?api-version= unless the path has a query), token (string or
-- false for none), headers, host (default management.azure.com).
function M.arm(method, path, body, opts)
  opts = opts or {}
  local url = "https://" .. (opts.host or "management.azure.com") .. path
  if opts.api_version then
    url = url .. (url:find("?", 1, true) and "&" or "?") .. "api-version=" .. opts.api_version
  end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  local tok = opts.token
  if tok == nil then tok = M.arm_token() end
  if tok then headers["Authorization"] = "Bearer " .. tok end
  return assert(M.request({ method = method, url = url, headers = headers, body = body }))
end

--- Request-log entries with seq > since (decoded).
function M.log(since)
  local res = M.control("GET", "log?since=" .. (since or 0))
  local out = {}
  for line in (res.body or ""):gmatch("[^\n]+") do out[#out + 1] = cjson.decode(line) end
  return out
end

function M.log_seq()
  return M.control("GET", "health").json.log_seq
end

function M.internal_errors()
  return M.control("GET", "health").json.internal_errors
end

function M.assert_no_internal_errors()
  local n = M.internal_errors()
  assert(n == 0, n .. " internal error(s) in the emulator; see " .. tostring(M.ensure().AZCMK_EMULATOR_DIR) ..
    "/logs/error.log")
end

--- Asserts an ARM CloudError: status and error.code.
function M.assert_arm_error(res, status, code)
  assert(res.status == status, "expected " .. status .. ", got " .. res.status .. ": " .. tostring(res.body))
  assert(type(res.json) == "table" and type(res.json.error) == "table", "no ARM error envelope: " .. res.body)
  assert(res.json.error.code == code, "expected code " .. code .. ", got " .. tostring(res.json.error.code) ..
    ": " .. res.body)
  assert(type(res.json.error.message) == "string" and #res.json.error.message > 0, "no message")
  return res.json.error
end

return M
