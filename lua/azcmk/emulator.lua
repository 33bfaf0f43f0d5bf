--- azcmk.emulator: start, stop and inspect the local Azure emulator (nginx + Lua).
-- Runs under Lua 5.4 and LuaJIT; shells out to `openssl`, `nginx` and `curl` only.
-- The emulator itself (emulator/lua/emu/*) runs inside nginx and needs the LuaJIT build of
-- azcmk.core (build/jit/azcmk/core.so in a checkout after `make`, or a LuaJIT rock).
-- See docs/emulator.md.
local M = {}

-- Ports: https N, plain http N+1 (IMDS, App Service), HTTPS proxy N+2. Without --port a free
-- triple is picked in [PORT_MIN, PORT_MAX] (below Linux's ephemeral range, 32768..).
M.PORTS = 3
local PORT_MIN, PORT_MAX = 20000, 32000

-- Fixed ids of the seeded world (secrets are random per start, see seed_secrets).
M.IDS = {
  tenant_id = "7d1b2c4e-5f60-4a8b-9c1d-2e3f4a5b6c7d",
  subscription_id = "5c2e8f14-3b6a-4d7e-8f90-1a2b3c4d5e6f",
  subscription_name = "azcmk emulator subscription",
  owner_app_id = "0f6a2b3c-4d5e-4f70-8a9b-0c1d2e3f4a5b",
  owner_object_id = "8e1f2a3b-4c5d-4e6f-9a0b-1c2d3e4f5a6b",
  noaccess_app_id = "2a3b4c5d-6e7f-4a80-9b1c-2d3e4f5a6b7c",
  noaccess_object_id = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a",
  vm_principal_id = "3b4c5d6e-7f80-4a91-8b2c-3d4e5f6a7b8c",
  vm_client_id = "4c5d6e7f-8091-4ab2-9c3d-4e5f6a7b8c9d",
  appservice_principal_id = "5d6e7f80-91a2-4bc3-8d4e-5f6a7b8c9d0e",
  appservice_client_id = "6e7f8091-a2b3-4cd4-9e5f-6a7b8c9d0e1f",
}

-- Host names the server certificate covers (every cloud's real names).
M.SAN = {
  "login.microsoftonline.com", "login.chinacloudapi.cn", "login.partner.microsoftonline.cn",
  "login.microsoftonline.us", "login.windows.net", "sts.windows.net",
  "management.azure.com", "management.chinacloudapi.cn", "management.usgovcloudapi.net",
  "management.core.windows.net",
  "*.vault.azure.net", "*.vault.azure.cn", "*.vault.usgovcloudapi.net",
  "*.managedhsm.azure.net", "*.azurecr.io", "*.azurecr.cn", "*.azurecr.us",
  "graph.microsoft.com", "microsoftgraph.chinacloudapi.cn", "graph.microsoft.us",
  "localhost",
}

-- ---------------------------------------------------------------- small helpers

local function shq(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- os.execute that returns true/false on both Lua 5.1 (LuaJIT) and 5.4.
local function run(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

-- Runs cmd, returns ok, combined output.
local function capture(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"__rc=$?\"")
  local out = p:read("a") or ""
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$")) or 1
  out = out:gsub("__rc=%d+%s*$", "")
  return rc == 0, out
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

local function readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function writefile(path, data, mode)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  f:write(data)
  f:close()
  if mode then run("chmod " .. mode .. " " .. shq(path)) end
  return true
end

-- Writes a file that is 0600 from its creation (secrets: no moment where others may read it).
local function writefile_private(path, data)
  if not run("umask 077 && rm -f " .. shq(path) .. " && : > " .. shq(path)) then
    return nil, "cannot create " .. path
  end
  return writefile(path, data, "600")
end

local function sleep(s)
  run("sleep " .. string.format("%.3f", s))
end

local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  local pwd = os.getenv("PWD")
  if not pwd or pwd == "" then
    local h = io.popen("pwd")
    pwd = h:read("l")
    h:close()
  end
  return (pwd .. "/" .. p):gsub("/%./", "/"):gsub("/$", "")
end

-- A zombie (exited, not yet reaped: containers often have no reaping init) counts as gone.
local function pid_alive(pid)
  if not pid then return false end
  local f = io.open("/proc/" .. math.floor(pid) .. "/stat", "r")
  if f then
    local st = f:read("l") or ""
    f:close()
    return st:match("^%d+ %b() (%a)") ~= "Z"
  end
  if exists("/proc/self/stat") then return false end
  return run("kill -0 " .. math.floor(pid) .. " 2>/dev/null")
end

-- Where the emulator's pieces are. In a checkout (root = the directory holding
-- lua/azcmk/emulator.lua): root/emulator, root/lua, root/build/jit. In a LuaRocks tree
-- (.../share/lua/5.x/azcmk/emulator.lua): the rock's copy of emulator/ under
-- lib/luarocks/rocks-*/azcmk/*/emulator, Lua modules from share/lua/5.1 (and 5.x), the C core
-- of the LuaJIT (5.1-ABI) rock from lib/lua/5.1. AZCMK_EMULATOR_HOME (the emulator/ directory),
-- AZCMK_EMULATOR_LUA_PATH and AZCMK_EMULATOR_LUA_CPATH override.
local function this_file()
  local src = debug.getinfo(1, "S").source
  return abspath(src:sub(1, 1) == "@" and src:sub(2) or "lua/azcmk/emulator.lua")
end

local function root_dir()
  local file = this_file()
  return file:match("^(.*)/lua/azcmk/emulator%.lua$") or file:match("^(.*)/azcmk/emulator%.lua$")
end
M.root_dir = root_dir

--- { home = emulator dir, lua = {path entries}, cpath = {entries}, core = path of core.so or nil }
function M.layout()
  local file = this_file()
  local checkout = file:match("^(.*)/lua/azcmk/emulator%.lua$")
  local out = { lua = {}, cpath = {} }
  if checkout and exists(checkout .. "/emulator/nginx.conf.tmpl") then
    out.home = checkout .. "/emulator"
    out.lua = { checkout .. "/lua/?.lua", checkout .. "/lua/?/init.lua" }
    out.cpath = { checkout .. "/build/jit/?.so" }
    out.core = checkout .. "/build/jit/azcmk/core.so"
  else
    local tree, luadir = file:match("^(.*)/share/lua/([%d%.]+)/azcmk/emulator%.lua$")
    if tree then
      local p = io.popen("ls -d " .. shq(tree) .. "/lib/luarocks/rocks-*/azcmk/*/emulator 2>/dev/null")
      out.home = p:read("l")
      p:close()
      out.lua = { tree .. "/share/lua/5.1/?.lua", tree .. "/share/lua/5.1/?/init.lua",
        tree .. "/share/lua/" .. luadir .. "/?.lua", tree .. "/share/lua/" .. luadir .. "/?/init.lua" }
      out.cpath = { tree .. "/lib/lua/5.1/?.so" }
      out.core = tree .. "/lib/lua/5.1/azcmk/core.so"
    end
  end
  local home = os.getenv("AZCMK_EMULATOR_HOME")
  if home and home ~= "" then out.home = home end
  if out.home then table.insert(out.lua, 1, out.home .. "/lua/?.lua") end
  local extra = os.getenv("AZCMK_EMULATOR_LUA_PATH")
  if extra and extra ~= "" then table.insert(out.lua, 1, extra) end
  local extra_c = os.getenv("AZCMK_EMULATOR_LUA_CPATH")
  if extra_c and extra_c ~= "" then
    table.insert(out.cpath, 1, extra_c)
    out.core = nil -- trust the override
  end
  return out
end

local function random_bytes(n)
  local f = io.open("/dev/urandom", "rb")
  local s = f:read(n)
  f:close()
  return s
end

local SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"
local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

local function random_string(n, alphabet)
  local bytes = random_bytes(n)
  local out = {}
  for i = 1, n do
    local b = bytes:byte(i) % #alphabet + 1
    out[i] = alphabet:sub(b, b)
  end
  return table.concat(out)
end

-- Entra client secrets look like "Abc8Q~" + 34 characters of [A-Za-z0-9._~-].
local function client_secret()
  return random_string(3, ALNUM) .. "8Q~" .. random_string(34, SECRET_ALPHABET)
end

-- Minimal JSON writer for the seed file (strings, numbers, booleans, arrays, objects).
local function json(v, ind)
  ind = ind or ""
  local t = type(v)
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      local m = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
      return m[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "number" or t == "boolean" then
    return tostring(v)
  elseif t == "table" then
    local ind2 = ind .. "  "
    if #v > 0 or next(v) == nil then
      local parts = {}
      for i = 1, #v do parts[i] = ind2 .. json(v[i], ind2) end
      if #parts == 0 then return "[]" end
      return "[\n" .. table.concat(parts, ",\n") .. "\n" .. ind .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = ind2 .. json(k) .. ": " .. json(v[k], ind2) end
    return "{\n" .. table.concat(parts, ",\n") .. "\n" .. ind .. "}"
  end
  return "null"
end

-- ---------------------------------------------------------------- locations

local function registry_dir()
  return (os.getenv("TMPDIR") or "/tmp") .. "/azcmk-emulators"
end

--- Default directory of an emulator started with --port N, or of the one started without.
function M.default_dir(port)
  return (os.getenv("TMPDIR") or "/tmp") .. "/azcmk-emulator" .. (port and "-" .. tostring(port) or "")
end

local function read_pid(dir)
  return tonumber((readfile(dir .. "/nginx.pid") or ""):match("%d+"))
end

local function read_port(dir)
  return tonumber((readfile(dir .. "/port") or ""):match("%d+"))
end

--- Resolves {dir=, port=} to a directory: explicit dir, registered port, AZCMK_EMULATOR_DIR,
-- or the default directory of the default port.
function M.resolve_dir(opts)
  opts = opts or {}
  if opts.dir then return abspath(opts.dir) end
  if opts.port then
    local reg = readfile(registry_dir() .. "/" .. opts.port)
    if reg and reg:match("%S") then return (reg:gsub("%s+$", "")) end
    return M.default_dir(opts.port)
  end
  local env = os.getenv("AZCMK_EMULATOR_DIR")
  if env and env ~= "" then return env end
  return M.default_dir()
end

-- ---------------------------------------------------------------- status

--- Status of the emulator in a directory: {running=bool, pid=, port=, dir=}.
function M.status(opts)
  local dir = M.resolve_dir(opts)
  local pid = read_pid(dir)
  local port = read_port(dir)
  local running = pid_alive(pid) or false
  return { running = running, pid = running and pid or nil, port = port, dir = dir }
end

--- Every emulator registered on this host (started by this user), running or not.
function M.list()
  local out = {}
  local p = io.popen("ls -1 " .. shq(registry_dir()) .. " 2>/dev/null")
  for line in p:lines() do
    local port = tonumber(line)
    if port then
      local dir = (readfile(registry_dir() .. "/" .. line) or ""):gsub("%s+$", "")
      if dir ~= "" then
        local st = M.status({ dir = dir })
        st.port = st.port or port
        out[#out + 1] = st
      end
    end
  end
  p:close()
  table.sort(out, function(a, b) return (a.port or 0) < (b.port or 0) end)
  return out
end

-- ---------------------------------------------------------------- environment

--- Ports of an emulator whose https port is `port`: {https, http, proxy}.
function M.ports(port)
  return { https = port, http = port + 1, proxy = port + 2 }
end

--- The `export` lines of a running (or just started) emulator, as an ordered list of {name, value}.
-- only: nil (all), "azcmk" (azcmk's own: direct connections mapped by AZCMK_CONNECT_TO) or
-- "tools" (any other tool: the HTTPS proxy and the CA trust of Python, OpenSSL/Go, curl, Node).
function M.env(dir, only)
  dir = abspath(dir)
  local port = read_port(dir)
  local seed = readfile(dir .. "/seed.json") or ""
  local function field(name) return seed:match('"' .. name .. '":%s*"([^"]*)"') end
  if not port then return nil, "no emulator in " .. dir end
  local p = M.ports(port)
  local out = {}
  local function add(k, v) out[#out + 1] = { k, v } end
  if only ~= "tools" then
    add("AZCMK_CONNECT_TO", string.format(":443:127.0.0.1:%d,:80:127.0.0.1:%d", p.https, p.http))
    add("AZCMK_CA_FILE", dir .. "/ca.pem")
  end
  add("AZURE_TENANT_ID", field("tenant_id"))
  add("AZURE_CLIENT_ID", field("owner_app_id"))
  add("AZURE_CLIENT_SECRET", field("owner_client_secret"))
  add("AZURE_SUBSCRIPTION_ID", field("subscription_id"))
  add("AZCMK_EMULATOR_DIR", dir)
  if only ~= "azcmk" then
    local proxy = "http://127.0.0.1:" .. p.proxy
    -- both spellings: curl and Python read the lower-case one first, Go and Node the upper-case
    add("HTTPS_PROXY", proxy)
    add("https_proxy", proxy)
    -- a NO_PROXY naming an Azure host would send that tool past the proxy, to the real Azure
    add("NO_PROXY", "localhost,127.0.0.1")
    add("no_proxy", "localhost,127.0.0.1")
    -- Python's requests (az, the SDK) and curl REPLACE their trust with the given file, so
    -- they get the system's CAs plus the emulator's; Node ADDS the file to its own.
    add("REQUESTS_CA_BUNDLE", dir .. "/ca-bundle.pem")
    add("SSL_CERT_FILE", dir .. "/ca-bundle.pem")
    add("CURL_CA_BUNDLE", dir .. "/ca-bundle.pem")
    add("NODE_EXTRA_CA_CERTS", dir .. "/ca.pem")
  end
  return out
end

--- The env as shell text: one `export NAME='value'` line each.
function M.env_lines(dir, only)
  local env, err = M.env(dir, only)
  if not env then return nil, err end
  local lines = {}
  for _, kv in ipairs(env) do lines[#lines + 1] = "export " .. kv[1] .. "=" .. shq(kv[2] or "") end
  return table.concat(lines, "\n") .. "\n"
end

-- ---------------------------------------------------------------- certificates and keys

-- Days the test CA and the server certificate are valid (made anew within a day of the end).
M.CA_DAYS = 30

-- One shell script that makes every missing key and certificate, in parallel where it can.
local key_pool

-- The PKCS#12 password goes through DIR/p12.pass (0600, removed at once), never argv.
local function crypto_script(dir)
  local san = {}
  for _, h in ipairs(M.SAN) do san[#san + 1] = "DNS:" .. h end
  san[#san + 1] = "IP:127.0.0.1"
  local d = shq(dir)
  local lines = { "set -e", "cd " .. d, "umask 077" }
  local function add(s) lines[#lines + 1] = s end
  -- Test CA (EC P-256): valid CA_DAYS days and name-constrained to the emulated names and
  -- 127.0.0.1, so even a CA trusted by mistake cannot vouch for anything else. Reused across
  -- restarts (ca.key, 0600, stays in DIR for that) and made anew when it expires within a day,
  -- or when it is an older CA valid for longer than CA_DAYS (made before the constraints).
  local permitted = {}
  for _, h in ipairs(M.SAN) do permitted[#permitted + 1] = "permitted;DNS:" .. h:gsub("^%*%.", "") end
  permitted[#permitted + 1] = "permitted;IP:127.0.0.1/255.255.255.255"
  -- Also made anew when the emulated names changed (ca.names): a CA constrained to the old list
  -- would make every certificate naming a new host (Graph's) fail verification.
  local constraints = "nameConstraints=critical," .. table.concat(permitted, ",")
  add("if [ ! -s ca.pem ] || [ ! -s ca.key ] " ..
    "|| [ \"$(cat ca.names 2>/dev/null)\" != " .. shq(constraints) .. " ] " ..
    "|| ! openssl x509 -in ca.pem -noout -checkend 86400 >/dev/null 2>&1 " ..
    "|| openssl x509 -in ca.pem -noout -checkend " .. ((M.CA_DAYS + 1) * 86400) .. " >/dev/null 2>&1; " ..
    "then " ..
    "rm -f server.pem ca.key; openssl req -x509 -new -newkey ec " ..
    "-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days " .. M.CA_DAYS .. " " ..
    "-subj '/CN=azcmk emulator test CA' -addext basicConstraints=critical,CA:TRUE " ..
    "-addext keyUsage=critical,keyCertSign,cRLSign " ..
    "-addext " .. shq(constraints) .. " 2>/dev/null && printf %s " .. shq(constraints) .. " > ca.names; fi")
  add("chmod 600 ca.key")
  -- RSA keys: token signing, OIDC issuer, the owner principal's certificate. RSA key generation
  -- is the slow part of a fresh start, so keys come from a pool that is refilled in the background.
  add("POOL=" .. shq(key_pool(dir)) .. "; mkdir -p \"$POOL\"")
  add("take() { for f in \"$POOL\"/*.key; do " ..
    "[ -e \"$f\" ] && mv \"$f\" \"$1\" 2>/dev/null && return 0; done; " ..
    "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out \"$1\" 2>/dev/null; }")
  add("[ -s signing.key ] || take signing.key &")
  add("[ -s oidc.key ] || take oidc.key &")
  add("[ -s sp-cert.pem ] || (take sp.key && openssl req -x509 -new -key sp.key -out sp.crt -days 365 " ..
    "-subj '/CN=azcmk-emulator-owner' 2>/dev/null && cat sp.crt sp.key > sp-cert.pem " ..
    "&& rm -f sp.crt sp.key) &")
  -- Server certificate (EC P-256) signed by the CA, all clouds' host names.
  add("if [ ! -s server.pem ] || [ \"$(cat server.san 2>/dev/null)\" != " .. shq(table.concat(san, ",")) ..
    " ] || ! openssl x509 -in server.pem -noout -checkend 86400 >/dev/null 2>&1; then " ..
    "openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes " ..
    "-keyout server.key -out server.pem -days " .. M.CA_DAYS .. " -subj /CN=azcmk-emulator " ..
    "-CA ca.pem -CAkey ca.key " ..
    "-addext " .. shq("subjectAltName=" .. table.concat(san, ",")) ..
    " -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth 2>/dev/null; " ..
    "printf %s " .. shq(table.concat(san, ",")) .. " > server.san; fi")
  add("wait")
  add("[ -s signing.key ] && [ -s oidc.key ] && [ -s sp-cert.pem ]")
  -- PKCS#12 of the owner's certificate with this start's password.
  add("openssl pkcs12 -export -in sp-cert.pem -out sp-cert.p12 -passout file:p12.pass " ..
    "-name azcmk-emulator-owner")
  add("rm -f p12.pass")
  add("chmod 644 ca.pem")
  return table.concat(lines, "\n")
end

--- Directory of spare RSA keys shared by this user's starts (AZCMK_EMULATOR_KEY_POOL, default
-- $TMPDIR/azcmk-emulator-keypool). It is a predictable path: it is created 0700 and used only
-- when it is a directory owned by this user and not group/world-writable; otherwise (or
-- without `dir`, the emulator's directory) the private DIR/keypool/start is used.
key_pool = function(dir)
  local p = os.getenv("AZCMK_EMULATOR_KEY_POOL")
  if not p or p == "" then p = (os.getenv("TMPDIR") or "/tmp") .. "/azcmk-emulator-keypool" end
  local private = dir and dir .. "/keypool/start"
  local ok, out = capture("umask 077; [ -e " .. shq(p) .. " ] || mkdir -m 700 " .. shq(p) ..
    " 2>/dev/null; [ -d " .. shq(p) .. " ] && [ ! -L " .. shq(p) .. " ] && stat -c '%u %a' " .. shq(p) ..
    " && id -u")
  local uid, mode, me = out:match("^(%d+) (%d+)%s+(%d+)")
  local function writable(digit) return digit and ("2367"):find(digit, 1, true) ~= nil end
  if ok and uid and uid == me and not writable(mode:sub(-2, -2)) and not writable(mode:sub(-1)) then
    return p
  end
  if private then run("mkdir -p -m 700 " .. shq(private)) end
  return private or p, "unsafe"
end
M.key_pool = key_pool

-- Refills the key pool to POOL_SIZE keys in a detached background process.
local POOL_SIZE = 6
local function refill_pool(dir)
  local script = "P=" .. shq(key_pool(dir)) .. "; umask 077; mkdir -p \"$P\"; " ..
    "n=$(ls \"$P\" | grep -c '\\.key$'); while [ \"$n\" -lt " .. POOL_SIZE .. " ]; do " ..
    "t=\"$P/.gen.$$.$n\"; " ..
    "nice -n 19 openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out \"$t\" 2>/dev/null " ..
    "&& mv \"$t\" \"$P/k.$$.$n.key\"; n=$((n+1)); done"
  run("setsid sh -c " .. shq(script) .. " </dev/null >/dev/null 2>&1 &")
end

-- The running emulator's Key Vault takes RSA private keys from DIR/keypool/<bits>/<n>.pem
-- (emu.keyvault.store claims them by rename); a detached generator (`nice` openssl genrsa) keeps
-- KEYGEN_SPARE of each size there while nginx runs, 2048 bits first, and exits with nginx.
-- `stop` kills its process group. Its pid is in DIR/keygen.pid.
M.KEYGEN_SPARE = { { 2048, 32 }, { 3072, 4 }, { 4096, 4 } }

local function kill_keygen(dir)
  local pid = tonumber((readfile(dir .. "/keygen.pid") or ""):match("%d+"))
  if pid and pid_alive(pid) then
    -- the whole process group (the shell and its openssl), until none of it is left running
    local live = "ps -eo pgid=,stat= | awk '$1 == " .. pid .. " && $2 !~ /^Z/' | grep -q ."
    run("kill -TERM -- -" .. pid .. " 2>/dev/null; kill -TERM " .. pid .. " 2>/dev/null")
    for i = 1, 100 do
      if not run(live) then break end
      if i == 50 then run("kill -KILL -- -" .. pid .. " 2>/dev/null") end
      sleep(0.01)
    end
  end
  os.remove(dir .. "/keygen.pid")
end
M.kill_keygen = kill_keygen

-- Before nginx starts: renumbers the spare keys a previous run left (1..n, so the workers'
-- claim index, which starts at 1 on every start, finds them) and drops half-made/claimed files.
local function keypool_prepare(dir)
  local lines = { "umask 077", "P=" .. shq(dir .. "/keypool") }
  for _, sz in ipairs(M.KEYGEN_SPARE) do
    lines[#lines + 1] = "d=\"$P/" .. sz[1] .. "\"; mkdir -p \"$d\" && chmod 700 \"$P\" \"$d\"; " ..
      "rm -f \"$d\"/claimed.* \"$d\"/.gen.* \"$d\"/r.*; : > \"$d/.dir\"; i=0; " ..
      "for f in \"$d\"/*.pem; do [ -e \"$f\" ] || continue; i=$((i+1)); mv \"$f\" \"$d/r.$i\"; done; " ..
      "j=0; while [ $j -lt $i ]; do j=$((j+1)); mv \"$d/r.$j\" \"$d/$j.pem\"; done"
  end
  return run("sh -c " .. shq(table.concat(lines, "\n")) .. " >/dev/null 2>&1")
end

local function keygen_start(dir, nginx_pid)
  kill_keygen(dir)
  local parts = { "echo $$ > " .. shq(dir .. "/keygen.pid"), "umask 077", "P=" .. shq(dir .. "/keypool") }
  for _, sz in ipairs(M.KEYGEN_SPARE) do
    -- next file number: above the highest present (workers may already have claimed the lowest)
    parts[#parts + 1] = "n_" .. sz[1] .. "=$(( $(ls \"$P/" .. sz[1] .. "\" | " ..
      "sed -n 's/^\\([0-9]*\\)\\.pem$/\\1/p' | sort -n | tail -n 1) + 1 ))"
  end
  -- gen BITS WANT: makes one key of BITS when fewer than WANT are spare (sets did=1).
  parts[#parts + 1] = "gen() { [ \"$did\" = 0 ] || return 0; " ..
    "[ \"$(ls \"$P/$1\" | grep -c '\\.pem$')\" -lt \"$2\" ] || return 0; did=1; eval \"n=\\$n_$1\"; " ..
    "nice -n 19 openssl genrsa -out \"$P/$1/.gen.$$\" \"$1\" 2>/dev/null " ..
    "&& mv \"$P/$1/.gen.$$\" \"$P/$1/$n.pem\" && eval \"n_$1=$((n+1))\"; }"
  local body = {}
  for _, sz in ipairs(M.KEYGEN_SPARE) do body[#body + 1] = "gen " .. sz[1] .. " " .. sz[2] end
  parts[#parts + 1] = "while kill -0 " .. math.floor(nginx_pid) .. " 2>/dev/null && [ -d \"$P\" ]; do " ..
    "did=0; " ..
    table.concat(body, "; ") .. "; [ \"$did\" = 1 ] || sleep 0.5; done; rm -f " .. shq(dir .. "/keygen.pid")
  run("setsid sh -c " .. shq(table.concat(parts, "; ")) .. " </dev/null >/dev/null 2>&1 &")
  for _ = 1, 100 do
    if exists(dir .. "/keygen.pid") then break end
    sleep(0.01)
  end
end
M.keygen_start = keygen_start

-- ---------------------------------------------------------------- nginx config

local function render_template(text, vars)
  return (text:gsub("%${([%w_]+)}", function(k)
    local v = vars[k]
    if v == nil then error("emulator template: unknown variable ${" .. k .. "}") end
    return tostring(v)
  end))
end

--- Writes DIR/nginx.conf from emulator/nginx.conf.tmpl.
function M.write_config(dir, port, opts)
  opts = opts or {}
  local lay = M.layout()
  local tmpl_path = opts.template or ((lay.home or "?") .. "/nginx.conf.tmpl")
  local tmpl = readfile(tmpl_path)
  if not tmpl then return nil, "emulator template not found: " .. tmpl_path end
  local lua_path = table.concat(lay.lua, ";")
  local cpath = table.concat(lay.cpath, ";")
  local p = M.ports(port)
  -- the proxy admits exactly the names the server certificate covers
  local names = {}
  for _, h in ipairs(M.SAN) do if h ~= "localhost" then names[#names + 1] = h end end
  local conf = render_template(tmpl, {
    DIR = dir, HOME = lay.home, PORT = p.https, HTTP_PORT = p.http, PROXY_PORT = p.proxy,
    PROXY_HOSTS = table.concat(names, ","), LUA_PATH = lua_path .. ";;",
    LUA_CPATH = cpath .. ";;", WORKERS = opts.workers or 2,
    MODULES = opts.modules_dir or "/usr/lib/nginx/modules",
  })
  return writefile(dir .. "/nginx.conf", conf)
end

-- ---------------------------------------------------------------- start / stop

local function http_probe(dir, port)
  return capture("curl -sS -o /dev/null -w '%{http_code}' --max-time 2 --cacert " .. shq(dir .. "/ca.pem") ..
    " --connect-to ::127.0.0.1:" .. port .. " https://management.azure.com/_emulator/health")
end

-- Whether nothing listens on TCP port p (any address).
local function port_free(p)
  local _, o = capture("ss -Hltn 'sport = :" .. p .. "' 2>/dev/null")
  return not o:match("%S")
end

local function ports_free(port)
  for i = 0, M.PORTS - 1 do
    if not port_free(port + i) then return false, port + i end
  end
  return true
end

-- A random https port N with N..N+PORTS-1 free.
local function pick_ports()
  local seed = random_bytes(4)
  math.randomseed(os.time() + ((seed:byte(1) * 256 + seed:byte(2)) * 256 + seed:byte(3)) * 256 + seed:byte(4))
  for _ = 1, 50 do
    local port = math.random(PORT_MIN, PORT_MAX - M.PORTS)
    if ports_free(port) then return port end
  end
  return nil, "no free ports found in " .. PORT_MIN .. ".." .. PORT_MAX
end

-- Python's requests and curl replace their trust with a given file: the system's CAs + ours.
local SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"
local function write_bundle(dir)
  local ca = readfile(dir .. "/ca.pem") or ""
  local sys = readfile(SYSTEM_CAS) or ""
  if sys ~= "" and sys:sub(-1) ~= "\n" then sys = sys .. "\n" end
  return writefile(dir .. "/ca-bundle.pem", sys .. ca, "644")
end

-- nginx embeds LuaJIT, whose package.path/cpath (the ";;" in nginx.conf) come from LUA_PATH /
-- LUA_CPATH: a Lua 5.4 path (`eval "$(luarocks path)"`) would load 5.4's C modules into it.
local CLEAN_ENV = "env -u LUA_PATH -u LUA_CPATH -u LUA_INIT -u LUA_PATH_5_1 -u LUA_CPATH_5_1 -u LUA_INIT_5_1 "

-- Starts nginx in dir on port (and the two after it). Returns pid or nil, err, port_taken.
local function launch(dir, port, seed, opts)
  local taken_ok, taken = ports_free(port)
  if not taken_ok then return nil, "port " .. taken .. " is in use (Address already in use)", true end
  seed.port, seed.http_port, seed.proxy_port = port, port + 1, port + 2
  writefile_private(dir .. "/seed.json", json(seed) .. "\n")
  writefile(dir .. "/port", tostring(port) .. "\n")
  kill_keygen(dir)
  keypool_prepare(dir)
  local cok, cerr = M.write_config(dir, port, opts)
  if not cok then return nil, cerr end
  os.remove(dir .. "/logs/error.log")
  os.remove(dir .. "/proxy-refused.sock") -- left behind when nginx was killed
  local nok, nout = capture(CLEAN_ENV .. "nginx -p " .. shq(dir .. "/") .. " -c " ..
    shq(dir .. "/nginx.conf") .. " -e " .. shq(dir .. "/logs/error.log"))
  if not nok then
    local log = readfile(dir .. "/logs/error.log") or ""
    local msg = (nout ~= "" and nout or log):gsub("%s+$", "")
    return nil, "nginx failed to start: " .. msg, msg:find("Address already in use", 1, true) ~= nil
  end
  -- Wait until it answers (TLS + Lua), at most 5 s.
  local answered = false
  for _ = 1, 250 do
    local hok, code = http_probe(dir, port)
    if hok and code:match("^200") then answered = true break end
    sleep(0.02)
  end
  local pid = read_pid(dir)
  if not answered then
    if pid then run("kill -TERM " .. pid .. " 2>/dev/null") end
    local log = readfile(dir .. "/logs/error.log") or ""
    return nil, "emulator did not answer on port " .. port .. ": " .. log:sub(-2000)
  end
  return pid or 0
end

--- Starts an emulator. opts: port (https N, http N+1, proxy N+2; default: free ports, the
-- directory's previous ones when they are free), dir (default /tmp/azcmk-emulator-N with
-- --port, else /tmp/azcmk-emulator), workers (2).
-- Returns info {dir, port, ports, pid, env_lines, already=bool} or nil, err.
function M.start(opts)
  opts = opts or {}
  local t0 = os.clock()
  local clock0 = os.time()
  local want = opts.port and tonumber(opts.port)
  if opts.port and (not want or want < 1 or want > 65536 - M.PORTS or want % 1 ~= 0) then
    return nil, "invalid port " .. tostring(opts.port)
  end
  local dir = abspath(opts.dir or M.default_dir(want))
  local st = M.status({ dir = dir })
  if st.running then
    if st.port and want and st.port ~= want then
      return nil, string.format("an emulator already runs from %s on port %d (pid %d)", dir, st.port, st.pid)
    end
    return { dir = dir, port = st.port, ports = st.port and M.ports(st.port), pid = st.pid, already = true,
      env_lines = M.env_lines(dir, opts.only) }
  end
  if not run("mkdir -p " .. shq(dir .. "/logs") .. " " .. shq(dir .. "/tmp")) then
    return nil, "cannot create " .. dir
  end
  local lay = M.layout()
  if not lay.home or not exists(lay.home .. "/nginx.conf.tmpl") then
    return nil, "emulator files not found (" .. tostring(lay.home) .. "); set AZCMK_EMULATOR_HOME"
  end
  if lay.core and not exists(lay.core) then
    return nil, "the emulator needs the LuaJIT build of azcmk.core (" .. lay.core .. "): run `make` in " ..
      "the checkout, or install the LuaJIT rock (make install-jit), or set AZCMK_EMULATOR_LUA_CPATH"
  end
  -- nginx listens with reuseport (spreads connections over workers), which would let it share
  -- a port with another server of the same user: taken ports are refused (--port) or skipped.
  if want then
    local ok, taken = ports_free(want)
    if not ok then
      return nil, "port " .. taken .. " is in use (Address already in use); the emulator needs " ..
        want .. ".." .. (want + M.PORTS - 1) .. " (https, http, proxy): choose another `port`, or none to " ..
        "pick free ports"
    end
  end
  -- Secrets are new on every start; ids are fixed.
  local seed = {}
  for k, v in pairs(M.IDS) do seed[k] = v end
  seed.owner_client_secret = client_secret()
  seed.noaccess_client_secret = client_secret()
  seed.identity_header = random_string(32, ALNUM)
  seed.p12_password = random_string(20, ALNUM)
  seed.dir = dir
  local wok, werr = writefile_private(dir .. "/p12.pass", seed.p12_password .. "\n")
  if not wok then return nil, werr end
  local ok, out = capture("sh -c " .. shq(crypto_script(dir)))
  os.remove(dir .. "/p12.pass")
  if not ok then return nil, "generating certificates failed: " .. out end
  write_bundle(dir)
  -- Without --port: the directory's previous ports when free (exports of a restarted emulator
  -- stay valid), else a random free triple; a port taken meanwhile is skipped, a few times.
  local pid, err, taken
  local port = want or read_port(dir)
  for attempt = 1, want and 1 or 5 do
    if not want and (attempt > 1 or not port or not ports_free(port)) then
      port, err = pick_ports()
      if not port then return nil, err end
    end
    pid, err, taken = launch(dir, port, seed, opts)
    if pid or want or not taken then break end
  end
  if not pid then return nil, err end
  if pid == 0 then pid = nil end
  run("mkdir -p " .. shq(registry_dir()))
  writefile(registry_dir() .. "/" .. port, dir .. "\n")
  refill_pool(dir)
  if pid then keygen_start(dir, pid) end
  return {
    dir = dir, port = port, ports = M.ports(port), pid = pid, already = false,
    env_lines = M.env_lines(dir, opts.only), cpu_s = os.clock() - t0, wall_s = os.time() - clock0,
  }
end

--- Stops the emulator of opts.dir / opts.port / AZCMK_EMULATOR_DIR. Waits until nginx is gone.
-- Returns true (also when nothing ran: second value "not running") or nil, err.
function M.stop(opts)
  local dir = M.resolve_dir(opts)
  local pid = read_pid(dir)
  local port = read_port(dir)
  kill_keygen(dir)
  if not pid_alive(pid) then
    os.remove(dir .. "/nginx.pid")
    return true, "not running"
  end
  run("kill -TERM " .. pid .. " 2>/dev/null")
  for i = 1, 500 do
    if not pid_alive(pid) then break end
    if i == 250 then run("kill -KILL " .. pid .. " 2>/dev/null") end
    sleep(0.01)
  end
  if pid_alive(pid) then return nil, "nginx (pid " .. pid .. ") did not stop" end
  -- The master is gone; make sure no worker of it lingers on the port.
  if port then
    for _ = 1, 100 do
      local _, o = capture("ss -Hltn 'sport = :" .. port .. "' 2>/dev/null")
      if not o:match("%S") then break end
      sleep(0.01)
    end
  end
  os.remove(dir .. "/nginx.pid")
  if port and (readfile(registry_dir() .. "/" .. port) or ""):gsub("%s+$", "") == dir then
    os.remove(registry_dir() .. "/" .. port)
  end
  return true
end

return M
