-- azcmk.policy.bearer: which calls get a token, where a token may never go, 401 refresh.
local pipeline = require("azcmk.pipeline")
local static = require("azcmk.credential.static")
local stub = require("support.stub_transport")

local function counting()
  local n = 0
  local cred = static.new({ get = function(scope)
    n = n + 1
    return "tok" .. n .. "-" .. scope, os.time() + 3600
  end })
  return cred, function() return n end
end

local function mk(t, cred)
  local c = stub.clock()
  return assert(pipeline.new({ transport = t, credential = cred, cloud = "AzureCloud", log = "off",
    now = c.now, sleep = c.sleep }))
end

describe("azcmk.policy.bearer", function()
  it("adds the ARM token to ARM calls, none to other hosts or with auth = false", function()
    local t = stub.sequence({ { status = 200 } })
    local p = mk(t, (counting()))
    assert(p:arm("GET", "/x", { api_version = "1" }))
    assert(p:send({ method = "GET", url = "https://example.com/x" }))
    assert(p:arm("GET", "/x", { api_version = "1", auth = false }))
    assert.equal("Bearer tok1-https://management.azure.com/.default", t.calls[1].headers.Authorization)
    assert.is_nil(t.calls[2].headers.Authorization)
    assert.is_nil(t.calls[3].headers.Authorization)
  end)

  it("uses an explicit scope on hosts of the cloud profile (ACR)", function()
    local t = stub.sequence({ { status = 200 } })
    local p = mk(t, (counting()))
    assert(p:send({ method = "GET", url = "https://reg.azurecr.io/v2/",
      scope = "https://containerregistry.azure.net/.default" }))
    assert.equal("Bearer tok1-https://containerregistry.azure.net/.default", t.calls[1].headers.Authorization)
  end)

  it("sends a call's own registry token (bearer =) to a registry host only, without asking the credential",
    function()
      local t = stub.sequence({ { status = 401 }, { status = 200 } })
      local cred, fetched = counting()
      local p = mk(t, cred)
      local _, err = p:send({ method = "GET", url = "https://reg.azurecr.io/v2/", bearer = "acr-token-1" })
      assert.equal(401, err.status)
      assert.equal("Bearer acr-token-1", t.calls[1].headers.Authorization)
      assert.equal(1, #t.calls)   -- a 401 with an own token is the caller's to answer: no retry here
      assert(p:send({ method = "GET", url = "https://reg.azurecr.io/v2/", bearer = "acr-token-2",
        auth = false }))
      assert.equal("Bearer acr-token-2", t.calls[2].headers.Authorization)
      assert.equal(0, fetched())
      -- never to ARM, another host or over http; never beside a caller-set header
      for _, u in ipairs({ "https://management.azure.com/x", "https://evil.example/v2/",
        "http://reg.azurecr.io/v2/" }) do
        local res, e = p:send({ method = "GET", url = u, bearer = "acr-token-3" })
        assert.is_nil(res)
        assert.equal("input", e.kind)
        assert.truthy(e.code == "UntrustedTokenTarget" or e.code == "InsecureTokenTarget", e.code)
        assert.is_nil(tostring(e):find("acr-token-3", 1, true))
      end
      local _, e = p:send({ method = "GET", url = "https://reg.azurecr.io/v2/", bearer = "acr-token-4",
        headers = { Authorization = "Bearer x" } })
      assert.equal("InvalidHeader", e.code)
      assert.equal(2, #t.calls)
      assert.has_error(function()
        p:send({ method = "GET", url = "https://reg.azurecr.io/v2/", bearer = 5 })
      end)
    end)

  it("refuses plain http and foreign hosts before fetching a token or sending anything", function()
    local t = stub.sequence({ { status = 200 } })
    local cred, fetched = counting()
    local p = mk(t, cred)
    local _, e1 = p:send({ method = "GET", url = "http://management.azure.com/x" })
    local _, e2 = p:send({ method = "GET", url = "https://evil.example/x",
      scope = "https://management.azure.com/.default" })
    assert.equal("InsecureTokenTarget", e1.code)
    assert.equal("UntrustedTokenTarget", e2.code)
    assert.equal("input", e2.kind)
    assert.equal(0, fetched())
    assert.equal(0, #t.calls)
  end)

  it("reports a token failure once, without retrying the call", function()
    local t = stub.sequence({ { status = 200 } })
    local n = 0
    local cred = static.new({ get = function() n = n + 1; return nil, "no token here" end })
    local p = mk(t, cred)
    local res, err = p:arm("GET", "/x", { api_version = "1" })
    assert.is_nil(res)
    assert.equal("auth", err.kind)
    assert.equal(1, n)
    assert.equal(0, #t.calls)
  end)

  it("on a 401 drops the token that failed, once, and sends again with a new one", function()
    local t = stub.sequence({ { status = 401 }, { status = 200 } })
    local cred, fetched = counting()
    local p = mk(t, cred)
    assert(p:arm("GET", "/x", { api_version = "1" }))
    assert.equal(2, fetched())
    assert.equal("Bearer tok1-https://management.azure.com/.default", t.calls[1].headers.Authorization)
    assert.equal("Bearer tok2-https://management.azure.com/.default", t.calls[2].headers.Authorization)
  end)
end)
