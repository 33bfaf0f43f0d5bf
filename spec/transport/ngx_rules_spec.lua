-- azcmk.transport.ngx outside nginx: connect-to rules (no ngx needed), and a request outside
-- nginx refuses without I/O.
local T = require("azcmk.transport.ngx")

describe("azcmk.transport.ngx connect_to rules", function()
  it("parses HOST:PORT:CONNECT_HOST:CONNECT_PORT with empty fields and IPv6 brackets", function()
    assert.are.same({ host = "", port = 443, to_host = "127.0.0.1", to_port = 8443 },
      T.parse_rule(":443:127.0.0.1:8443"))
    assert.are.same({ host = "management.azure.com", port = nil, to_host = "", to_port = 9000 },
      T.parse_rule("Management.Azure.com:::9000"))
    assert.are.same({ host = "::1", port = 443, to_host = "::1", to_port = 1 },
      T.parse_rule("[::1]:443:[::1]:1"))
    assert.is_nil(T.parse_rule("a:1:b:2:c"))
  end)

  it("maps the first matching rule; the environment's come after the options'", function()
    local function two(a, b) return { a, b } end
    local t = T.new({ connect_to = "vault.azure.net:443:10.0.0.1:443",
      env = { AZCMK_CONNECT_TO = ":443:127.0.0.1:8443, :80:127.0.0.1:8444" } })
    assert.are.same({ "10.0.0.1", 443 }, two(t:target("vault.azure.net", 443)))
    assert.are.same({ "127.0.0.1", 8443 }, two(t:target("management.azure.com", 443)))
    assert.are.same({ "127.0.0.1", 8444 }, two(t:target("169.254.169.254", 80)))
    assert.are.same({ "example.org", 8080 }, two(t:target("example.org", 8080)))
    local keep = T.new({ connect_to = { "login.microsoftonline.com:443::9443" }, env = {} })
    assert.are.same({ "login.microsoftonline.com", 9443 }, two(keep:target("login.microsoftonline.com", 443)))
  end)

  it("parses http:// proxies (user:password@, default port 80) and ignores others", function()
    assert.are.same({ host = "proxy.corp", port = 3128 }, T.parse_proxy("http://proxy.corp:3128"))
    assert.are.same({ host = "proxy.corp", port = 80, auth = "u:p@ss" },
      T.parse_proxy("http://u:p%40ss@Proxy.Corp/"))
    assert.are.same({ host = "10.0.0.1", port = 8080 }, T.parse_proxy("10.0.0.1:8080"))
    assert.is_nil(T.parse_proxy("https://proxy.corp:443"))
    assert.is_nil(T.parse_proxy(""))
  end)

  it("bypasses the proxy for NO_PROXY names and suffixes, IMDS and loopback", function()
    local t = T.new({ env = { HTTPS_PROXY = "http://127.0.0.1:3128",
      NO_PROXY = "vault.azure.net, .azurecr.io" } })
    assert.are.equal(3128, t:proxy_for("management.azure.com").port)
    assert.is_nil(t:proxy_for("myvault.vault.azure.net"))
    assert.is_nil(t:proxy_for("vault.azure.net"))
    assert.is_nil(t:proxy_for("reg.azurecr.io"))
    assert.is_nil(t:proxy_for("169.254.169.254"))
    assert.is_nil(t:proxy_for("127.0.0.1"))
    assert.are.equal(3128, t:proxy_for("notvault.azure.net.evil").port)
    assert.is_nil(T.new({ env = { https_proxy = "http://p:1", no_proxy = "*" } }):proxy_for("a.b"))
    assert.is_nil(T.new({ env = {} }):proxy_for("management.azure.com"))
  end)

  it("refuses a bad rule when built", function()
    assert.has_error(function() T.new({ connect_to = "a:1:b:2:c", env = {} }) end)
  end)

  it("outside nginx: request() is a TransportUnavailable error; auto() picks libcurl", function()
    local _, err = T.new({ env = {} }):request({ method = "GET", url = "https://management.azure.com/" })
    assert.are.equal("network", err.kind)
    assert.are.equal("TransportUnavailable", err.code)
    assert.is_false(err.retryable)
    assert.are.equal("curl", T.auto({}):pick().name)
    assert.is_false(T.yieldable())
  end)

  it("refuses what would split the hand-written request line, like the C core", function()
    local t = T.new({ env = {} })
    local arm = "https://management.azure.com/"
    for _, u in ipairs({ arm .. "a b", arm .. "x\r\nX-Injected: 1", arm .. "\0" }) do
      local res, err = t:request({ method = "GET", url = u })
      assert.is_nil(res)
      assert.are.equal("InvalidUrl", err.code)
      assert.are.equal("input", err.kind)
    end
    assert.has_error(function() t:request({ method = "GET /x HTTP/1.1\r\nX:", url = "https://a/" }) end)
    assert.has_error(function() t:request({ method = "GE T", url = "https://a/" }) end)
  end)
end)
