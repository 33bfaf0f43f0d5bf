-- azcmk.transport.contract: the settings every transport reads from options and the
-- environment, the one allow-http list, request checks and the error codes.
local contract = require("azcmk.transport.contract")
local T = require("azcmk.transport.ngx")
local http = require("azcmk.http")

describe("azcmk.transport.contract", function()
  describe("options", function()
    it("resolves the environment once: connect_to after the options', CA file, proxies", function()
      local o = contract.options({ connect_to = { "a:443:127.0.0.1:9" }, env = {
        AZCMK_CONNECT_TO = " b:443:127.0.0.1:1 ,, c:443:127.0.0.1:2 ", AZCMK_CA_FILE = "/env/ca.pem",
        HTTPS_PROXY = "http://proxy:3128", NO_PROXY = "vault.azure.net, .azurecr.io" } })
      assert.same({ "a:443:127.0.0.1:9", "b:443:127.0.0.1:1", "c:443:127.0.0.1:2" }, o.connect_to)
      assert.equal("/env/ca.pem", o.ca_file)
      assert.equal("http://proxy:3128", o.https_proxy)
      assert.same({ "vault.azure.net", ".azurecr.io" }, o.no_proxy)
      assert.same(contract.ALLOW_HTTP, o.allow_http)
      assert.equal(contract.TIMEOUT_MS, o.timeout_ms)
      assert.equal(contract.CONNECT_TIMEOUT_MS, o.connect_timeout_ms)
      assert.is_nil(o.env)
    end)

    it("lets explicit options win and reads lower-case proxy names and a getenv function", function()
      local env = { https_proxy = "http://p:1", no_proxy = "*", AZCMK_CA_FILE = "/env.pem" }
      local o = contract.options({ ca_file = "/mine.pem", allow_http = { "10.0.0.1" }, timeout_ms = 5,
        getenv = function(k) return env[k] end })
      assert.equal("/mine.pem", o.ca_file)
      assert.same({ "10.0.0.1" }, o.allow_http)
      assert.equal(5, o.timeout_ms)
      assert.equal("http://p:1", o.https_proxy)
      assert.same({ "*" }, o.no_proxy)
    end)

    it("treats empty variables as unset and leaves the caller's tables alone", function()
      local rules = { "x:1:127.0.0.1:2" }
      local o = contract.options({ connect_to = rules, env = { AZCMK_CONNECT_TO = "", AZCMK_CA_FILE = "" } })
      assert.same({ "x:1:127.0.0.1:2" }, o.connect_to)
      assert.are_not.equal(rules, o.connect_to)
      assert.is_nil(o.ca_file)
      assert.is_nil(o.https_proxy)
    end)

    it("is what both transports and azcmk.http use", function()
      local env = { AZCMK_CONNECT_TO = "m:443:127.0.0.1:1" }
      assert.same({ "m:443:127.0.0.1:1" }, http.options(nil, env).connect_to)
      assert.same({ "m:443:127.0.0.1:1" },
        require("azcmk.transport.curl").new({ env = env }).cfg.connect_to)
      assert.equal("m", T.new({ env = env }).rules[1].host)
      assert.equal(contract.ALLOW_HTTP, http.DEFAULT_ALLOW_HTTP)
    end)
  end)

  it("allows plain http to IMDS and loopback only, and never proxies them", function()
    assert.same({ "169.254.169.254", "127.0.0.1", "localhost", "::1" }, contract.ALLOW_HTTP)
    local t = T.new({ env = { HTTPS_PROXY = "http://127.0.0.1:3128" } })
    for _, h in ipairs(contract.ALLOW_HTTP) do assert.is_nil(t:proxy_for(h), h) end
    assert.truthy(t:proxy_for("management.azure.com"))
  end)

  it("checks requests: the cheap check on every call, the head check for hand-written requests", function()
    assert.has_error(function() contract.check("https://x/") end)
    assert.has_error(function() contract.check({ url = "https://x/" }) end)
    contract.check({ method = "GE T", url = "https://x/" })
    assert.has_error(function() contract.check_head({ method = "GE T", url = "https://x/" }) end)
    assert.has_error(function() contract.check_head({ method = "GET", url = "https://x/",
      headers = { ["X-A"] = "a\r\nX-B: b" } }) end)
    assert.has_error(function() contract.check_head({ method = "GET", url = "https://x/",
      headers = { ["Bad Name"] = "v" } }) end)
    contract.check_head({ method = "GET", url = "https://x/", headers = { ["X-Ok"] = 1, Accept = false } })
  end)

  it("builds errors from its codes: kind, phase, retryable, tls", function()
    local function e(code) return contract.error(code, "m", "h.example") end
    assert.same({ "network", "connect", true }, { e("ConnectFailed").kind, e("ConnectFailed").phase,
      e("ConnectFailed").retryable })
    assert.same({ "network", "connect", true }, { e("ResolveFailed").kind, e("ResolveFailed").phase,
      e("ResolveFailed").retryable })
    assert.same({ "timeout", "io", true }, { e("Timeout").kind, e("Timeout").phase, e("Timeout").retryable })
    assert.same({ "io", true }, { e("EmptyReply").phase, e("EmptyReply").retryable })
    local tls = e("TLSVerificationFailed")
    assert.is_true(tls.tls)
    assert.is_false(tls.retryable)
    assert.truthy(tls.hint)       -- what to do: AZCMK_CA_FILE
    assert.equal("input", e("HttpRefused").kind)
    assert.equal("input", e("InvalidUrl").kind)
    assert.is_false(e("ProxyFailed").retryable)
    assert.equal("m (h.example)", e("ConnectFailed").message)
    assert.equal("x", contract.error("TransportFailed", "y", nil, { detail = "x" }).detail)
    assert.has_error(function() contract.error("CURLE_COULDNT_CONNECT", "m") end)
    local r = contract.refused("http", "example.org")
    assert.equal("HttpRefused", r.code)
    assert.truthy(r.hint)
  end)
end)
