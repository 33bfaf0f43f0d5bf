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
    local t = T.new({ connect_to = "vault.azure.net:443:10.0.0.1:443",
      env = { AZCMK_CONNECT_TO = ":443:127.0.0.1:8443, :80:127.0.0.1:8444" } })
    assert.are.same({ "10.0.0.1", 443 }, { t:target("vault.azure.net", 443) })
    assert.are.same({ "127.0.0.1", 8443 }, { t:target("management.azure.com", 443) })
    assert.are.same({ "127.0.0.1", 8444 }, { t:target("169.254.169.254", 80) })
    assert.are.same({ "example.org", 8080 }, { t:target("example.org", 8080) })
    local keep = T.new({ connect_to = { "login.microsoftonline.com:443::9443" }, env = {} })
    assert.are.same({ "login.microsoftonline.com", 9443 }, { keep:target("login.microsoftonline.com", 443) })
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
end)
