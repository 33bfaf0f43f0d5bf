-- azcmk.transport.ngx inside a real nginx: what only the cosocket transport does (its
-- connection pool and stats, a pooled connection the server closed, HTTP/1.0, many chunks,
-- the phase-aware choice, the CONNECT proxy), then the shared contract suite
-- (spec/support/transport_suite.lua), which the curl transport passes too.
local E = require("support.emulator")
local N = require("support.ngx_harness")
local TLS = require("support.tls_nginx")
local suite = require("support.transport_suite")
local cjson = require("cjson.safe")

local read = require("support.sys").read

describe("azcmk.transport.ngx in nginx #lua54", function()
  local env, tls, srv, trusted
  local CHUNKED = [[
    location = /short_keepalive {
      keepalive_timeout 1s;
      return 200 "short";
    }
    location = /http10 {
      content_by_lua_block {
        local sock = assert(ngx.req.socket(true))
        sock:send("HTTP/1.0 200 OK\r\nContent-Length: 4\r\nX-Old: yes\r\n\r\nold!")
      }
    }
    location = /chunked {
      content_by_lua_block {
        for i = 1, 50 do ngx.print(string.rep("x", 999) .. (i % 10)) ngx.flush(true) end
      }
    }
  ]]
  setup(function()
    env = E.ensure()
    tls = TLS.start()
    -- trusts the system bundle + the test server's CA, NOT the emulator's CA
    trusted = os.tmpname()
    local f = assert(io.open(trusted, "wb"))
    f:write(read(N.SYSTEM_CA) .. "\n" .. read(tls.ca_file))
    f:close()
    srv = N.start({ workers = 1, env = env, trusted = trusted, server = CHUNKED,
      init_worker = 'require("support.ngx_app").record_init_worker()' })
  end)
  teardown(function()
    if srv then srv:stop() end
    if tls then tls:stop() end
    if trusted then os.remove(trusted) end
  end)

  local function call(s, url, q)
    local qs = "/transport?url=" .. E.urlencode(url)
    for k, v in pairs(q or {}) do qs = qs .. "&" .. k .. "=" .. E.urlencode(v) end
    local r = s:get(qs)
    assert.are.equal(200, r.status, r.body)
    return r.json
  end

  local function to_h1() return ":443:127.0.0.1:" .. tls.port_h1 end

  it("maps the connection with connect_to, keeps Host/SNI/verification on the URL host, reuses it", function()
    local j = call(srv, "https://myvault.vault.azure.net/hello?i=1",
      { n = 3, connect_to = to_h1(), env = "0" })
    local r = j.results
    assert.are.equal(3, #r)
    for i = 1, 3 do
      assert.is_nil(r[i].err)
      assert.are.equal(200, r[i].status)
      assert.are.equal("hello 1", r[i].body)
    end
    assert.are.equal(r[1].headers["x-conn"], r[2].headers["x-conn"])
    assert.are.equal(r[1].headers["x-conn"], r[3].headers["x-conn"])
    assert.is_false(r[1].reused)
    assert.is_true(r[2].reused)
    assert.is_true(r[3].reused)
    assert.are.equal(1, j.stats.connects)
    assert.are.equal(2, j.stats.reused)
  end)

  it("does not reuse a pooled connection the server closed meanwhile", function()
    local j = call(srv, "http://127.0.0.1:" .. srv.port .. "/short_keepalive", { n = 2, pause = "1.5" })
    assert.are.equal(200, j.results[1].status)
    assert.are.equal(200, j.results[2].status, require("cjson").encode(j.results[2]))
    assert.are.equal("short", j.results[2].body)
  end)

  it("is picked in request phases; libcurl in init_worker, where cosockets refuse without I/O", function()
    local r = srv:get("/phase")
    assert.are.equal("ngx", r.json.request)
    assert.are.equal("curl", r.json.init_worker)
    assert.are.equal("TransportUnavailable", r.json.init_worker_error)
  end)

  it("does not keep an HTTP/1.0 answer's connection without keep-alive", function()
    -- a pool of its own (URL port 1, mapped): no connection of earlier tests can be in it
    local j = call(srv, "http://127.0.0.1:1/http10",
      { n = 2, connect_to = "127.0.0.1:1:127.0.0.1:" .. srv.port })
    for i = 1, 2 do
      assert.are.equal(200, j.results[i].status)
      assert.are.equal("old!", j.results[i].body)
      assert.is_false(j.results[i].reused)
    end
    assert.are.equal(2, j.stats.connects)
  end)

  it("reads chunked bodies", function()
    local j = call(srv, "http://127.0.0.1:" .. srv.port .. "/chunked")
    local r = j.results[1]
    assert.are.equal(200, r.status)
    assert.are.equal("chunked", r.headers["transfer-encoding"])
    assert.are.equal(50000, #r.body)
    assert.are.equal(string.rep("x", 999) .. "1", r.body:sub(1, 1000))
  end)

  it("skips 1xx answers, unfolds folded headers, joins repeated ones, honours Connection: close", function()
    local j = call(srv, "https://myvault.vault.azure.net/interim", { n = 2, connect_to = to_h1(), env = "0" })
    local r = j.results
    assert.are.equal(200, r[1].status)
    assert.are.equal("ok", r[1].body)
    assert.are.equal("yes", r[1].headers["x-final"])
    assert.is_nil(r[1].headers["x-interim"])
    assert.are.equal("a b", r[1].headers["x-folded"])
    assert.are.equal("1, 2", r[1].headers["x-dup"])
    assert.is_false(r[2].reused) -- the server closed it
  end)

  describe("through an HTTPS proxy (CONNECT)", function()
    local proxies = {}
    local function start_proxy(required)
      local port = N.free_port()
      local dir = srv.dir
      local log = dir .. "/proxy-" .. port .. ".log"
      os.execute("python3 spec/support/connect_proxy.py " .. port .. " " .. tls.port_h1 .. " " .. log ..
        (required and (" '" .. required .. "'") or "") .. " >/dev/null 2>&1 & echo $! > " .. log .. ".pid")
      for _ = 1, 200 do
        local p = io.popen("ss -Hltn 'sport = :" .. port .. "'")
        local up = p:read("*a"):match("%S")
        p:close()
        if up then break end
        os.execute("sleep 0.02")
      end
      local px = { port = port, log = log }
      proxies[#proxies + 1] = px
      return px
    end
    local function lines(px)
      local f = io.open(px.log)
      if not f then return {} end
      local out = {}
      for l in f:lines() do out[#out + 1] = l end
      f:close()
      return out
    end
    teardown(function()
      for _, px in ipairs(proxies) do
        local f = io.open(px.log .. ".pid")
        local pid = f and f:read("*l")
        if f then f:close() end
        if pid and pid:match("^%d+$") then os.execute("kill " .. pid .. " 2>/dev/null") end
      end
    end)

    it("tunnels to the URL's host, verifies TLS end to end, reuses the tunnel", function()
      local px = start_proxy()
      local j = call(srv, "https://myvault.vault.azure.net/hello?i=2",
        { n = 2, proxy = "http://127.0.0.1:" .. px.port, env = "0" })
      assert.are.equal(200, j.results[1].status, require("cjson").encode(j.results[1]))
      assert.are.equal("hello 2", j.results[1].body)
      assert.are.equal(200, j.results[2].status)
      assert.is_true(j.results[2].reused)
      local l = lines(px)
      assert.are.equal(1, #l)
      assert.matches("^CONNECT myvault%.vault%.azure%.net:443 HTTP/1%.1", l[1])
    end)

    it("sends Proxy-Authorization from user:password@; a refused CONNECT is not retried", function()
      local px = start_proxy("Basic " .. "dXNlcjpwQHNz") -- user:p@ss
      local j = call(srv, "https://myvault.vault.azure.net/hello?i=3",
        { proxy = "http://user:p%40ss@127.0.0.1:" .. px.port, env = "0" })
      assert.are.equal(200, j.results[1].status, require("cjson").encode(j.results[1]))
      j = call(srv, "https://myvault.vault.azure.net/hello?i=4",
        { proxy = "http://user:wrong@127.0.0.1:" .. px.port, env = "0" })
      local e = j.results[1].err
      assert.are.equal("network", e.kind)
      assert.are.equal("ProxyFailed", e.code)
      assert.is_false(e.retryable)
      assert.matches("407", e.message)
    end)

    it("connects directly to hosts mapped by connect_to", function()
      local px = start_proxy()
      local j = call(srv, "https://myvault.vault.azure.net/hello?i=5",
        { proxy = "http://127.0.0.1:" .. px.port, connect_to = to_h1(), env = "0" })
      assert.are.equal(200, j.results[1].status)
      assert.are.equal(0, #lines(px))
    end)
  end)

  describe("the transport contract", function()
    for _, case in ipairs(suite.cases) do
      it(case.name, function()
        local fx = { h1 = tls.port_h1, http = tls.http_port, ca_file = tls.ca_file,
          emulator_connect_to = env.AZCMK_CONNECT_TO }
        local r = srv:get("/contract", { method = "POST",
          body = cjson.encode({ name = case.name, fx = fx }) })
        assert.are.equal(200, r.status, r.body)
        case.check(r.json, assert)
      end)
    end
  end)
end)
