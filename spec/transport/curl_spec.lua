-- azcmk.transport.curl: the shared contract suite (spec/support/transport_suite.lua) against a
-- local TLS nginx, then the transport against the emulator, and how libcurl's codes become
-- the contract's.
local H = require("support.pipeline_helper")
local E = require("support.emulator")
local TLS = require("support.tls_nginx")
local suite = require("support.transport_suite")
local transport = require("azcmk.transport.curl")

describe("azcmk.transport.curl: the transport contract", function()
  local tls, fx
  setup(function()
    tls = TLS.start()
    fx = { h1 = tls.port_h1, http = tls.http_port, ca_file = tls.ca_file,
      emulator_connect_to = E.ensure().AZCMK_CONNECT_TO }
  end)
  teardown(function() if tls then tls:stop() end end)

  for _, case in ipairs(suite.cases) do
    it(case.name, function() case.check(suite.run(transport, case.name, fx), assert) end)
  end
end)

describe("azcmk.transport.curl against the emulator", function()
  local env
  setup(function() env = H.env() end)

  it("answers with status, lower-case headers and body", function()
    local t = transport.new({ env = env })
    local res, err = t:request({ method = "GET", url = "https://management.azure.com/_emulator/health",
                                 headers = { Accept = "application/json" } })
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.truthy(res.headers["content-type"]:find("json", 1, true))
    assert.truthy(res.body:find("ok", 1, true))
    t:close()
  end)

  it("reads AZCMK_CONNECT_TO and AZCMK_CA_FILE from the getenv it is given", function()
    local t = transport.new({ getenv = function(k) return env[k] end })
    local res = assert(t:request({ method = "GET",
      url = "https://login.microsoftonline.com/_emulator/health" }))
    assert.equal(200, res.status)
    t:close()
  end)
end)

describe("azcmk.transport.curl error codes", function()
  it("maps libcurl's codes to the contract's and keeps libcurl's name", function()
    local cases = {
      CURLE_COULDNT_CONNECT = "ConnectFailed", CURLE_COULDNT_RESOLVE_HOST = "ResolveFailed",
      CURLE_PEER_FAILED_VERIFICATION = "TLSVerificationFailed", CURLE_OPERATION_TIMEDOUT = "Timeout",
      CURLE_GOT_NOTHING = "EmptyReply", CURLE_RECV_ERROR = "ReceiveFailed",
      CURLE_URL_MALFORMAT = "InvalidUrl",
      AZCMK_HTTP_REFUSED = "HttpRefused", CURLE_FILESIZE_EXCEEDED = "BodyTooLarge",
      CURLE_SOMETHING_NEW = "TransportFailed",
    }
    for curl_code, code in pairs(cases) do
      local e = transport.error("libcurl says", curl_code, "https://h.example/x")
      assert.equal(code, e.code, curl_code)
      assert.equal(curl_code, e.curl_code)
      assert.equal("libcurl says (h.example)", e.message)
    end
    local t = transport.error("timed out", "CURLE_OPERATION_TIMEDOUT")
    assert.equal("timeout", t.kind)
    assert.is_true(t.retryable)
  end)
end)
