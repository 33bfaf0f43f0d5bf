-- azcmk emulator start / stop / status: clean stop, two side by side, already running.
-- (How fast it starts is measured in bench/emulator_start.sh, never asserted here.)
local E = require("support.emulator")
local emulator = require("azcmk.emulator")

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, out:gsub("rc=%d+%s*$", "")
end

local port_free = require("support.sys").port_free

-- Holds a loopback port with a listener of its own (another program on it); release(h) ends it.
local function hold(port)
  local pidfile = os.tmpname()
  os.execute("python3 -c 'import socket,time,os,sys; s=socket.socket(); s.bind((\"127.0.0.1\"," .. port ..
    ")); s.listen(); open(sys.argv[1],\"w\").write(str(os.getpid())); time.sleep(120)' " .. pidfile ..
    " >/dev/null 2>&1 &")
  for _ = 1, 200 do
    if not port_free(port) then break end
    os.execute("sleep 0.02")
  end
  return pidfile
end

local function release(pidfile)
  local f = io.open(pidfile)
  local pid = f and tonumber(f:read("*a"))
  if f then f:close() end
  if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
  os.remove(pidfile)
end

local function listening(port)
  local _, out = sh("ss -Hltn 'sport = :" .. port .. "'")
  return out:match("%S") ~= nil
end

describe("emulator lifecycle #slow", function()
  local p1, p2, d1, d2
  setup(function()
    p1 = E.free_port()
    repeat p2 = E.free_port() until math.abs(p2 - p1) > 2
    d1 = "build/spec-lifecycle-a"
    d2 = "build/spec-lifecycle-b"
    os.execute("rm -rf " .. d1 .. " " .. d2)
  end)
  teardown(function()
    E.stop(d1)
    E.stop(d2)
  end)

  it("starts, prints the export lines, answers over TLS", function()
    local rc, out = sh("./bin/azcmk emulator start --port " .. p1 .. " --dir " .. d1)
    assert.equal(0, rc, out)
    for _, name in ipairs({ "AZCMK_CONNECT_TO", "AZCMK_CA_FILE", "AZURE_TENANT_ID", "AZURE_CLIENT_ID",
      "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID", "AZCMK_EMULATOR_DIR" }) do
      assert.truthy(out:find("export " .. name .. "=", 1, true), name .. " missing in\n" .. out)
    end
    assert.truthy(out:find(":443:127.0.0.1:" .. p1 .. ",:80:127.0.0.1:" .. (p1 + 1), 1, true))
    -- plain curl reaches it with the printed CA, for any cloud host name
    local ca = out:match("AZCMK_CA_FILE='([^']+)'")
    for _, host in ipairs({ "management.azure.com", "login.microsoftonline.com", "myvault.vault.azure.net",
      "reg.azurecr.io", "management.chinacloudapi.cn", "login.microsoftonline.us", "x.vault.usgovcloudapi.net" }) do
      local crc, code = sh("curl -sS -o /dev/null -w '%{http_code}' --cacert " .. ca .. " --connect-to ::127.0.0.1:" ..
        p1 .. " https://" .. host .. "/_emulator/health")
      assert.equal(0, crc, code)
      assert.equal("200", code)
    end
    -- IMDS over plain http on N+1
    local _, code = sh("curl -s -o /dev/null -w '%{http_code}' --connect-to ::127.0.0.1:" .. (p1 + 1) ..
      " -H 'Metadata: true' 'http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01" ..
      "&resource=https://management.azure.com/'")
    assert.equal("200", code)
  end)

  it("keeps secrets private: ca.key and seed 0600, a short-lived name-constrained CA", function()
    local function mode(f)
      local p = io.popen("stat -c %a " .. d1 .. "/" .. f)
      local m = p:read("*a"):gsub("%s+", "")
      p:close()
      return m
    end
    for _, f in ipairs({ "ca.key", "seed.json", "server.key", "signing.key", "sp-cert.p12" }) do
      assert.equal("600", mode(f), f)
    end
    assert.is_nil(io.open(d1 .. "/p12.pass"))
    local _, out = sh("openssl x509 -in " .. d1 .. "/ca.pem -noout -checkend " .. (emulator.CA_DAYS + 1) * 86400)
    assert.truthy(out:find("will expire", 1, true), out)
    local rc, ext = sh("openssl x509 -in " .. d1 .. "/ca.pem -noout -ext nameConstraints")
    if rc == 0 and ext:find("Name Constraints", 1, true) then
      assert.truthy(ext:find("DNS:vault.azure.net", 1, true), ext)
      assert.truthy(ext:find("IP:127.0.0.1/255.255.255.255", 1, true), ext)
      assert.falsy(ext:find("Excluded", 1, true))
    end
  end)

  it("uses the shared key pool only when it is private to this user", function()
    -- key_pool reads AZCMK_EMULATOR_KEY_POOL: ask a child process that has it set
    local function pool()
      local _, out = sh("AZCMK_EMULATOR_KEY_POOL=$PWD/build/spec-keypool lua5.4 -e " ..
        "'package.path=\"lua/?.lua;\"..package.path; print(require(\"azcmk.emulator\").key_pool(\"" .. d1 .. "\"))'")
      return out:match("^(%S+)%s*(%S*)")
    end
    os.execute("rm -rf build/spec-keypool && mkdir -p build/spec-keypool && chmod 777 build/spec-keypool")
    local path, why = pool()
    assert.equal(d1 .. "/keypool/start", path)
    assert.equal("unsafe", why)
    os.execute("chmod 700 build/spec-keypool")
    path, why = pool()
    assert.matches("build/spec%-keypool$", path)
    assert.equal("", why)
    os.execute("rm -rf build/spec-keypool")
  end)

  it("a restart in the same directory reuses the CA", function()
    local ca1 = io.open(d1 .. "/ca.pem"):read("*a")
    assert.is_true(emulator.stop({ dir = d1 }))
    local info = assert(emulator.start({ port = p1, dir = d1 }))
    assert.is_false(info.already)
    assert.equal(ca1, io.open(d1 .. "/ca.pem"):read("*a"))
  end)

  it("a CA constrained to an older list of emulated names is made anew (Graph's names joined)", function()
    local ca1 = io.open(d1 .. "/ca.pem"):read("*a")
    assert.is_true(emulator.stop({ dir = d1 }))
    local f = assert(io.open(d1 .. "/ca.names", "w"))
    f:write("nameConstraints=critical,permitted;DNS:management.azure.com")
    f:close()
    assert(emulator.start({ port = p1, dir = d1 }))
    assert.are_not.equal(ca1, io.open(d1 .. "/ca.pem"):read("*a"))
    local rc, code = sh("curl -sS -o /dev/null -w '%{http_code}' --cacert " .. d1 .. "/ca.pem " ..
      "--connect-to ::127.0.0.1:" .. p1 .. " https://graph.microsoft.com/v1.0/me")
    assert.equal(0, rc, code)
    assert.equal("401", code)
  end)

  it("start on a running emulator reports it (exit 0, same exports)", function()
    local rc, out = sh("./bin/azcmk emulator start --port " .. p1 .. " --dir " .. d1)
    assert.equal(0, rc)
    assert.truthy(out:find("already running", 1, true), out)
    assert.truthy(out:find("export AZCMK_CONNECT_TO=", 1, true))
  end)

  it("status says running / stopped", function()
    local rc, out = sh("./bin/azcmk emulator status --dir " .. d1)
    assert.equal(0, rc)
    assert.truthy(out:find("running", 1, true), out)
    rc, out = sh("./bin/azcmk emulator status --dir build/no-such-emulator")
    assert.equal(3, rc)
    assert.truthy(out:find("stopped", 1, true))
    -- no selection: every registered emulator, this one among them
    rc, out = sh("env -u AZCMK_EMULATOR_DIR ./bin/azcmk emulator status")
    assert.equal(0, rc)
    assert.truthy(out:find("port " .. p1, 1, true), out)
    -- env prints the exports again
    rc, out = sh("./bin/azcmk emulator env --dir " .. d1)
    assert.equal(0, rc)
    assert.truthy(out:find("export AZCMK_CA_FILE=", 1, true))
  end)

  it("two emulators run side by side with separate state", function()
    local e2 = assert(E.start(p2, d2))
    local e1 = assert(emulator.env(d1))
    local c1 = require("azcmk.http").new({}, { AZCMK_CONNECT_TO = e1[1][2], AZCMK_CA_FILE = e1[2][2] })
    local c2 = require("azcmk.http").new({}, e2)
    local function clock(c, method, body)
      local r = assert(c:request({ method = method, url = "https://management.azure.com/_emulator/clock",
        body = body }))
      return require("cjson").decode(r.body)
    end
    clock(c1, "POST", '{"advance":1000}')
    assert.truthy(clock(c1, "GET").offset >= 1000)
    assert.equal(0, clock(c2, "GET").offset)
    -- different secrets per start
    assert.are_not.equal(e1[5][2], e2.AZURE_CLIENT_SECRET)
    c1:close()
    c2:close()
  end)

  it("stop is clean: nginx gone, ports free; stopping again is fine", function()
    local pid = tonumber(io.open(d2 .. "/nginx.pid"):read("*a"))
    -- the key generator runs while the emulator does (own process group) and stops with it
    local kf = assert(io.open(d2 .. "/keygen.pid"))
    local kpid = tonumber(kf:read("*a"))
    kf:close()
    local function running(p)
      local st = io.open("/proc/" .. p .. "/stat")
      local a = st and not st:read("*a"):match("^%d+ %b() Z")
      if st then st:close() end
      return a
    end
    assert.truthy(running(kpid))
    local rc, out = sh("./bin/azcmk emulator stop --dir " .. d2)
    assert.falsy(running(kpid))
    local _, group = sh("ps -eo pgid=,stat= | awk '$1 == " .. kpid .. " && $2 !~ /Z/'")
    assert.equal("", (group:gsub("%s+", "")))
    assert.is_nil(io.open(d2 .. "/keygen.pid"))
    assert.equal(0, rc, out)
    assert.is_false(listening(p2))
    assert.is_false(listening(p2 + 1))
    assert.is_false(listening(p2 + 2))
    local f = io.open("/proc/" .. pid .. "/stat")
    local alive = f and not f:read("*a"):match("^%d+ %b() Z")
    if f then f:close() end
    assert.falsy(alive)
    rc, out = sh("./bin/azcmk emulator stop --dir " .. d2)
    assert.equal(0, rc)
    assert.truthy(out:find("not running", 1, true))
  end)

  it("stop --port finds the emulator started on that port", function()
    local rc, out = sh("./bin/azcmk emulator stop --port " .. p1)
    assert.equal(0, rc, out)
    assert.is_false(listening(p1))
  end)

  it("refuses a port that is taken, with nginx's reason", function()
    assert(E.start(p2, d2))
    local rc, out = sh("./bin/azcmk emulator start --port " .. p2 .. " --dir build/spec-lifecycle-c")
    assert.are_not.equal(0, rc)
    assert.truthy(out:find("in use", 1, true), out)
    E.stop(d2)
  end)

  it("bad flags exit 2", function()
    assert.equal(2, (sh("./bin/azcmk emulator start --port abc")))
    assert.equal(2, (sh("./bin/azcmk emulator frobnicate")))
    assert.equal(2, (sh("./bin/azcmk emulator env --only everything")))
  end)

  it("--port N takes N, N+1 and N+2 (the proxy): a taken N+2 is refused, naming it", function()
    local held = hold(p2 + 2)
    local rc, out = sh("./bin/azcmk emulator start --port " .. p2 .. " --dir build/spec-lifecycle-c")
    release(held)
    assert.are_not.equal(0, rc)
    assert.truthy(out:find("port " .. (p2 + 2) .. " is in use", 1, true), out)
    assert.truthy(out:find("none to pick free ports", 1, true), out)
  end)

  it("without --port picks free ports and says which, also when the old default 8443 is taken", function()
    local d3 = "build/spec-lifecycle-free"
    os.execute("rm -rf " .. d3)
    local held = port_free(8443) and hold(8443)
    local rc, out = sh("env -u AZCMK_EMULATOR_DIR ./bin/azcmk emulator start --dir " .. d3)
    if held then release(held) end
    finally(function() E.stop(d3) end)
    assert.equal(0, rc, out)
    local https, http, proxy = out:match("https 127%.0%.0%.1:(%d+), http 127%.0%.0%.1:(%d+), " ..
      "proxy http://127%.0%.0%.1:(%d+)")
    assert.truthy(https, out)
    https, http, proxy = tonumber(https), tonumber(http), tonumber(proxy)
    assert.are_not.equal(8443, https)
    assert.same({ https + 1, https + 2 }, { http, proxy })
    assert.truthy(out:find(":443:127.0.0.1:" .. https .. ",:80:127.0.0.1:" .. http, 1, true), out)
    assert.truthy(out:find("export HTTPS_PROXY='http://127.0.0.1:" .. proxy .. "'", 1, true), out)
    local ca = out:match("AZCMK_CA_FILE='([^']+)'")
    local _, code = sh("curl -sS -o /dev/null -w '%{http_code}' --cacert " .. ca .. " --connect-to ::127.0.0.1:" ..
      https .. " https://management.azure.com/_emulator/health")
    assert.equal("200", code)
    -- a restart keeps the directory's ports while they are free (exported variables stay valid)
    assert.is_true(emulator.stop({ dir = d3 }))
    rc, out = sh("env -u AZCMK_EMULATOR_DIR ./bin/azcmk emulator start --dir " .. d3)
    assert.equal(0, rc, out)
    assert.truthy(out:find("https 127.0.0.1:" .. https .. ",", 1, true), out)
    -- taken meanwhile: other free ports
    assert.is_true(emulator.stop({ dir = d3 }))
    held = hold(https + 2)
    rc, out = sh("env -u AZCMK_EMULATOR_DIR ./bin/azcmk emulator start --dir " .. d3)
    release(held)
    assert.equal(0, rc, out)
    assert.falsy(out:find("https 127.0.0.1:" .. https .. ",", 1, true), out)
  end)

  it("nginx ignores the user's LUA_PATH/LUA_CPATH (a Lua 5.4 `luarocks path`)", function()
    local d4 = "build/spec-lifecycle-luapath"
    os.execute("rm -rf " .. d4)
    finally(function() E.stop(d4) end)
    -- Lua 5.4's cjson.so first on the C path: LuaJIT inside nginx cannot load it
    local rc, out = sh("LUA_CPATH='/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;/usr/local/lib/lua/5.4/?.so;;' " ..
      "LUA_PATH='/usr/share/lua/5.4/?.lua;/usr/local/share/lua/5.4/?.lua;;' " ..
      "./bin/azcmk emulator start --port " .. E.free_port() .. " --dir " .. d4)
    assert.equal(0, rc, out)
    assert.truthy(out:find("export AZCMK_CONNECT_TO=", 1, true), out)
  end)
end)
