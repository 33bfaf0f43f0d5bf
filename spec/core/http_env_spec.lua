-- What comes from the process environment: proxies (libcurl's own handling), the user's
-- no_proxy merged with ours, the IMDS bypass, and azcmk.http's AZCMK_CONNECT_TO /
-- AZCMK_CA_FILE. Each case runs a child interpreter with a controlled environment; the
-- "proxy" is the local nginx's plain-http port, which answers absolute-URI requests itself,
-- so a proxied request shows up as "GET http://host/..." in X-Request-Line.
local tls_nginx = require "support.tls_nginx"

local INTERP = type(rawget(_G, "jit")) == "table" and "luajit" or "lua5.4"
local CLEAR = "env -u http_proxy -u https_proxy -u HTTPS_PROXY -u HTTP_PROXY -u all_proxy -u ALL_PROXY" ..
  " -u no_proxy -u NO_PROXY -u AZCMK_CONNECT_TO -u AZCMK_CA_FILE"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs `body` (Lua source; it sets `out`) in a child with the extra environment `env`.
local function child(env, body)
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write("package.path = ", string.format("%q", package.path), "\n",
          "package.cpath = ", string.format("%q", package.cpath), "\n",
          "local out\n", body, "\nio.write(tostring(out))\n")
  f:close()
  local vars = {}
  for k, v in pairs(env) do vars[#vars + 1] = k .. "=" .. q(v) end
  table.sort(vars)
  local p = io.popen(CLEAR .. " " .. table.concat(vars, " ") .. " " .. INTERP .. " " .. q(file) .. " 2>&1")
  local out = p:read("*a")
  p:close()
  os.remove(file)
  return out
end

local REQUEST = [[
local core = require "azcmk.core"
local c = core.http_client{ allow_http = { "127.0.0.1", "169.254.169.254" }, connect_to = { %s } }
local r, err, code = c:request{ url = %q }
out = r and r.headers["x-request-line"] or ("ERR " .. tostring(code) .. " " .. tostring(err))
c:close()
]]

-- https through a CONNECT proxy (spec/support/connect_proxy.py tunnels every CONNECT to the
-- local nginx), so the proxy's log shows which requests went through it.
local HTTPS_REQUEST = [[
local core = require "azcmk.core"
local c = core.http_client{ ca_file = %q, connect_to = { %s } }
local r, err, code = c:request{ url = "https://management.azure.com/echo" }
out = r and (r.status .. " " .. tostring(r.headers["x-echo-host"]))
  or ("ERR " .. tostring(code) .. " " .. tostring(err))
c:close()
]]

describe("azcmk.core http and the environment", function()
  local srv, base, plain_proxy, tunnel_log, tunnel_port

  setup(function()
    srv = tls_nginx.start()
    base = "http://127.0.0.1:" .. srv.http_port
    plain_proxy = base  -- answers absolute-URI requests itself: a proxied request shows in X-Request-Line
    tunnel_log = os.tmpname()
    -- port 0: the kernel picks a free one, and the proxy says which ("ready PORT")
    os.execute("python3 spec/support/connect_proxy.py 0 " .. srv.port .. " " .. tunnel_log
      .. " >" .. tunnel_log .. ".out 2>&1 & echo $! > " .. tunnel_log .. ".pid")
    for _ = 1, 100 do   -- wait until it listens (bounded: 10 s, python starts slowly under ASan)
      local f = io.open(tunnel_log .. ".out")
      local said = f and f:read("*a") or ""
      if f then f:close() end
      tunnel_port = tonumber(said:match("ready (%d+)"))
      if tunnel_port then break end
      os.execute("sleep 0.1")
    end
    assert(tunnel_port, "the CONNECT proxy did not start")
  end)
  teardown(function()
    local f = io.open(tunnel_log .. ".pid")
    if f then os.execute("kill " .. f:read("*l") .. " 2>/dev/null"); f:close() end
    os.remove(tunnel_log); os.remove(tunnel_log .. ".pid"); os.remove(tunnel_log .. ".out")
    if srv then srv:stop() end
  end)

  local function request(env, url, rules)
    return child(env, REQUEST:format(rules or "", url))
  end
  local function tunnel_lines()
    local f = io.open(tunnel_log)
    local n = 0
    if f then for l in f:lines() do if l:find("CONNECT", 1, true) then n = n + 1 end end f:close() end
    return n
  end
  it("uses the https proxy from the environment (CONNECT tunnel, certificate still verified)", function()
    local before = tunnel_lines()
    local out = child({ https_proxy = "http://127.0.0.1:" .. tunnel_port },
      HTTPS_REQUEST:format(srv.ca_file, ""))
    assert.equal("200 management.azure.com", out)
    assert.equal(before + 1, tunnel_lines())
  end)

  it("still applies the user's no_proxy / NO_PROXY (merged with ours)", function()
    local rule = string.format("%q", "management.azure.com:443:127.0.0.1:" .. srv.port)
    local before = tunnel_lines()
    for _, env in ipairs({ { no_proxy = "example.com,management.azure.com" },
                           { NO_PROXY = "management.azure.com" }, { no_proxy = "*" } }) do
      env.https_proxy = "http://127.0.0.1:" .. tunnel_port
      assert.equal("200 management.azure.com", child(env, HTTPS_REQUEST:format(srv.ca_file, rule)))
    end
    assert.equal(before, tunnel_lines())
    local out = child({ https_proxy = "http://127.0.0.1:" .. tunnel_port, no_proxy = "example.com" },
      HTTPS_REQUEST:format(srv.ca_file, rule))
    assert.equal("200 management.azure.com", out)
    assert.equal(before + 1, tunnel_lines())
  end)

  it("never sends plain http to loopback or an allow_http host through a proxy", function()
    -- their requests carry secrets in the clear (App Service's X-IDENTITY-HEADER, tokens)
    assert.equal("GET /echo HTTP/1.1", request({ http_proxy = plain_proxy }, base .. "/echo"))
    assert.equal("GET /echo HTTP/1.1", request({ http_proxy = plain_proxy, no_proxy = "example.com" },
      base .. "/echo"))
    assert.equal("GET /echo HTTP/1.1", request({ all_proxy = plain_proxy }, base .. "/echo"))
  end)

  it("always sends IMDS (169.254.169.254) around the proxy", function()
    -- connect_to keeps the direct connection on loopback; through the proxy the request
    -- line would carry the absolute URL instead
    local rule = string.format("%q", "169.254.169.254:80:127.0.0.1:" .. srv.http_port)
    local line = request({ http_proxy = plain_proxy, no_proxy = "example.com" },
      "http://169.254.169.254/echo?api-version=2018-02-01", rule)
    assert.equal("GET /echo?api-version=2018-02-01 HTTP/1.1", line)
  end)

  describe("azcmk.http.new", function()
    it("reads AZCMK_CONNECT_TO and AZCMK_CA_FILE", function()
      local out = child({
        AZCMK_CONNECT_TO = "login.microsoftonline.com:443:127.0.0.1:1, management.azure.com:443:127.0.0.1:"
          .. srv.port,
        AZCMK_CA_FILE = srv.ca_file,
      }, [[
        local c = require("azcmk.http").new()
        local r, err = c:request{ url = "https://management.azure.com/echo" }
        out = r and r.headers["x-echo-host"] or err
      ]])
      assert.equal("management.azure.com", out)
    end)
  end)
end)
