-- azcmk.http: the thin Lua face over the core client, defaults from the environment.
local http = require "azcmk.http"
local tls_nginx = require "support.tls_nginx"

describe("azcmk.http", function()
  describe("options", function()
    it("defaults allow_http to IMDS and loopback, and adds nothing else", function()
      local o = http.options(nil, {})
      assert.same({ "169.254.169.254", "127.0.0.1", "localhost", "::1" }, o.allow_http)
      assert.same({}, o.connect_to)
      assert.is_nil(o.ca_file)
    end)

    it("merges the environment: explicit values win, connect_to rules are concatenated", function()
      local env = { AZCMK_CONNECT_TO = " a:443:127.0.0.1:1 ,, b:443:127.0.0.1:2 ",
                    AZCMK_CA_FILE = "/env/ca.pem" }
      local o = http.options({ connect_to = { "a:443:127.0.0.1:9" }, timeout_ms = 5 }, env)
      assert.same({ "a:443:127.0.0.1:9", "a:443:127.0.0.1:1", "b:443:127.0.0.1:2" }, o.connect_to)
      assert.equal("/env/ca.pem", o.ca_file)
      assert.equal(5, o.timeout_ms)
      o = http.options({ ca_file = "/mine.pem", allow_http = { "10.0.0.1" } }, env)
      assert.equal("/mine.pem", o.ca_file)
      assert.same({ "10.0.0.1" }, o.allow_http)
    end)

    it("does not change the caller's tables", function()
      local rules = { "x:1:127.0.0.1:2" }
      local opts = { connect_to = rules }
      http.options(opts, { AZCMK_CONNECT_TO = "y:1:127.0.0.1:3" })
      assert.same({ "x:1:127.0.0.1:2" }, rules)
      assert.equal(rules, opts.connect_to)
    end)

    it("treats empty variables as unset", function()
      local o = http.options({}, { AZCMK_CONNECT_TO = "", AZCMK_CA_FILE = "" })
      assert.same({}, o.connect_to)
      assert.is_nil(o.ca_file)
    end)

    it("raises on bad argument types", function()
      assert.has_error(function() http.new(5) end)
      assert.has_error(function() http.new({}, "env") end)
      assert.has_error(function() http.new({ connect_to = "a:1:b:2" }) end)
      assert.has_error(function() http.new({ timeout_ms = "x" }, {}) end)
    end)

    it("is what azcmk.http gives, loaded on first use", function()
      assert.equal(http, require("azcmk").http)
    end)

    it("exposes the header parser", function()
      assert.same({ "x-ms-request-id", "1" }, { http.parse_header_line("X-Ms-Request-Id: 1\r\n") })
    end)
  end)

  describe("against a local nginx", function()
    local srv
    setup(function() srv = tls_nginx.start() end)
    teardown(function() if srv then srv:stop() end end)

    it("reaches Azure host names through AZCMK_CONNECT_TO with AZCMK_CA_FILE", function()
      local c = http.new({}, {
        AZCMK_CONNECT_TO = "management.azure.com:443:127.0.0.1:" .. srv.port ..
          ",myvault.vault.azure.net:443:127.0.0.1:" .. srv.port_h1,
        AZCMK_CA_FILE = srv.ca_file,
      })
      local arm = assert(c:request{ url = "https://management.azure.com/echo" })
      assert.equal("management.azure.com", arm.headers["x-echo-host"])
      assert.equal("2", arm.http_version)
      local kv = assert(c:request{ url = "https://myvault.vault.azure.net/echo" })
      assert.equal("myvault.vault.azure.net", kv.headers["x-echo-host"])
      assert.equal("1.1", kv.http_version)
      c:close()
    end)

    it("lets explicit connect_to rules win over the environment's", function()
      local c = http.new({ ca_file = srv.ca_file,
                           connect_to = { "management.azure.com:443:127.0.0.1:" .. srv.port } },
                         { AZCMK_CONNECT_TO = "management.azure.com:443:127.0.0.1:1" })
      assert.equal(200, assert(c:request{ url = "https://management.azure.com/hello" }).status)
      c:close()
    end)

    it("allows plain http to loopback by default", function()
      local c = http.new({}, {})
      local r = assert(c:request{ url = "http://127.0.0.1:" .. srv.http_port .. "/hello?i=2" })
      assert.equal("hello 2", r.body)
      local _, _, code = c:request{ url = "http://example.com/" }
      assert.equal("AZCMK_HTTP_REFUSED", code)
      c:close()
    end)
  end)
end)
