-- The emulator's HTTPS proxy (emulator/proxy.js): tools that take HTTPS_PROXY reach the
-- emulated hosts with TLS verified against the printed CA bundle; every other target is
-- refused with a 403 that names it, and nothing is forwarded.
local E = require("support.emulator")
local sys = require("support.sys")

local env, proxy, bundle

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, (out:gsub("rc=%d+%s*$", ""))
end

-- curl as a tool configured only by the printed variables (no --cacert, no --connect-to)
local function curl(args)
  return sh("env -u AZCMK_CONNECT_TO HTTPS_PROXY=" .. proxy .. " https_proxy=" .. proxy ..
    " CURL_CA_BUNDLE=" .. bundle .. " curl -sS --max-time 10 " .. args)
end

-- The raw answer of the proxy to `request` (what a client sees before any TLS).
local function raw(request)
  local script = "import socket,sys\n" ..
    "s=socket.create_connection(('127.0.0.1'," .. env.proxy_port .. "),5)\n" ..
    "s.sendall(sys.argv[1].encode().decode('unicode_escape').encode('latin1'))\n" ..
    "s.settimeout(5)\nd=b''\n" ..
    "while True:\n  c=s.recv(4096)\n  if not c: break\n  d+=c\n" ..
    "sys.stdout.write(d.decode('latin1'))\n"
  return sh("python3 -c " .. sys.q(script) .. " " .. sys.q(request))
end

describe("emulator HTTPS proxy", function()
  setup(function()
    env = E.ensure()
    proxy = "http://127.0.0.1:" .. env.proxy_port
    bundle = env.AZCMK_EMULATOR_DIR .. "/ca-bundle.pem"
  end)

  it("tunnels every emulated host family to the emulator, TLS verified by the CA bundle", function()
    for _, host in ipairs({ "management.azure.com", "login.microsoftonline.com", "kv1.vault.azure.net",
      "reg1.azurecr.io", "graph.microsoft.com", "management.chinacloudapi.cn", "x.vault.usgovcloudapi.net" }) do
      local rc, code = curl("-o /dev/null -w '%{http_code}' https://" .. host .. "/_emulator/health")
      assert.equal(0, rc, host .. ": " .. code)
      assert.equal("200", code, host)
    end
    -- a real API call through the tunnel: Entra token, then ARM
    local rc, out = curl("-d grant_type=client_credentials -d client_id=" .. env.AZURE_CLIENT_ID ..
      " --data-urlencode client_secret=" .. sys.q(env.AZURE_CLIENT_SECRET) ..
      " -d scope=https://management.azure.com/.default https://login.microsoftonline.com/" ..
      env.AZURE_TENANT_ID .. "/oauth2/v2.0/token")
    assert.equal(0, rc, out)
    local token = assert(out:match('"access_token":"([^"]+)"'), out)
    rc, out = curl("-H 'Authorization: Bearer " .. token .. "' https://management.azure.com/subscriptions/" ..
      env.AZURE_SUBSCRIPTION_ID .. "?api-version=2022-12-01")
    assert.equal(0, rc, out)
    assert.truthy(out:find(env.AZURE_SUBSCRIPTION_ID, 1, true), out)
  end)

  it("refuses hosts that are not emulated with a 403 naming them, and forwards nothing", function()
    local rc, out = curl("-v https://example.com/")
    assert.are_not.equal(0, rc)
    assert.truthy(out:find("< HTTP/1.1 403 example.com:443 is not emulated by azcmk; the proxy never forwards " ..
      "to the internet", 1, true), out)
    -- a look-alike is not a wildcard match
    rc, out = raw("CONNECT evil.management.azure.com.attacker.net:443 HTTP/1.1\r\n\r\n")
    assert.equal(0, rc)
    assert.truthy(out:match("^HTTP/1%.1 403 evil%.management%.azure%.com%.attacker%.net:443 is not emulated"), out)
    local _
    _, out = raw("CONNECT a.b.vault.azure.net:443 HTTP/1.1\r\n\r\n")
    assert.truthy(out:match("^HTTP/1%.1 403 "), out)
    -- an emulated name on another port, plain-http proxying, garbage: refused, connection closed
    for _, req in ipairs({ "CONNECT management.azure.com:8443 HTTP/1.1\r\n\r\n",
      "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n", "hello\r\n\r\n" }) do
      rc, out = raw(req)
      assert.equal(0, rc, out)
      assert.truthy(out:match("^HTTP/1%.1 403 "), req .. " -> " .. out)
      assert.truthy(out:find("Connection: close", 1, true))
    end
    -- a local service on another port is never reached through the proxy
    local port = E.free_port()
    local log = os.tmpname()
    os.execute("timeout 5 python3 -c " .. sys.q("import socket,sys\ns=socket.socket()\n" ..
      "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1'," .. port .. "))\n" ..
      "s.listen()\nc,_=s.accept()\nopen(sys.argv[1],'w').write('connected')\n") .. " " .. log .. " >/dev/null 2>&1 &")
    os.execute("sleep 0.3")
    _, out = raw("CONNECT 127.0.0.1:" .. port .. " HTTP/1.1\r\n\r\n")
    assert.truthy(out:match("^HTTP/1%.1 403 127%.0%.0%.1:" .. port .. " is not emulated"), out)
    os.execute("sleep 0.2")
    assert.equal("", sys.read(log) or "")
    os.remove(log)
    -- and the refusals are in the emulator's error log
    local errlog = sys.read(env.AZCMK_EMULATOR_DIR .. "/logs/error.log") or ""
    assert.truthy(errlog:find("refused: example.com:443 is not emulated", 1, true))
  end)

  it("serves Python's requests with REQUESTS_CA_BUNDLE (system CAs + the emulator's)", function()
    local script = "import requests\n" ..
      "print(requests.get('https://management.azure.com/_emulator/health').json()['status'])\n" ..
      "try:\n  requests.get('https://pypi.org/simple/')\nexcept requests.exceptions.ProxyError as e:\n" ..
      "  print('refused', 'pypi.org:443 is not emulated' in str(e))\n"
    local rc, out = sh("env -u AZCMK_CONNECT_TO HTTPS_PROXY=" .. proxy .. " REQUESTS_CA_BUNDLE=" .. bundle ..
      " python3 -c " .. sys.q(script))
    assert.equal(0, rc, out)
    assert.equal("ok\nrefused True\n", out)
    -- the bundle keeps the system's trust: every system CA plus the emulator's test CA
    local function count(f)
      local _, n = (sys.read(f) or ""):gsub("BEGIN CERTIFICATE", "")
      return n
    end
    local system = count("/etc/ssl/certs/ca-certificates.crt")
    assert.equal(system + 1, count(bundle))
    assert.truthy(sys.read(bundle):find(sys.read(env.AZCMK_CA_FILE), 1, true))
  end)

  it("carries azcmk's own client too (libcurl tunnels to the AZCMK_CONNECT_TO address)", function()
    local vars = {}
    for _, k in ipairs({ "AZCMK_CONNECT_TO", "AZCMK_CA_FILE", "AZURE_TENANT_ID", "AZURE_CLIENT_ID",
      "AZURE_CLIENT_SECRET", "AZURE_SUBSCRIPTION_ID" }) do vars[#vars + 1] = k .. "=" .. sys.q(env[k]) end
    local rc, out = sh("env " .. table.concat(vars, " ") .. " HTTPS_PROXY=" .. proxy .. " https_proxy=" .. proxy ..
      " ./bin/azcmk show -n nosuchregistry -g nosuchgroup")
    assert.are_not.equal(0, rc)
    assert.truthy(out:find("RegistryNotFound", 1, true) or out:find("ResourceGroupNotFound", 1, true), out)
  end)

  it("leaves no internal error behind", function()
    E.assert_no_internal_errors()
  end)
end)
