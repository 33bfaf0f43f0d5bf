local pipeline = require("azcmk.pipeline")
local static = require("azcmk.credential.static")
local log = require("azcmk.log")
local stub = require("support.stub_transport")
local cjson = require("cjson.safe")

local CH = 'Bearer authorization="https://login.microsoftonline.com/tenant-1", '
  .. 'resource="https://vault.azure.net"'

local function counting_cred()
  local n = 0
  return static.new({ get = function(scope) n = n + 1; return "tok" .. n .. "-" .. scope,
    os.time() + 3600 end }),
         function() return n end
end

local function mk(t, cred, extra)
  local c = stub.clock()
  local o = { transport = t, credential = cred, cloud = "AzureCloud", log = log.new(), now = c.now,
    sleep = c.sleep }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(pipeline.new(o)), c
end

local function auth_of(req)
  for k, v in pairs(req.headers) do if k:lower() == "authorization" then return v end end
end

describe("azcmk.pipeline (unit, scripted transport)", function()
  it("builds the URL, adds headers and decodes JSON", function()
    local t = stub.sequence({ { status = 200,
      headers = { ["content-type"] = "application/json; charset=utf-8",
      ["x-ms-request-id"] = "rid" }, body = '{"name":"rg"}' } })
    local p = mk(t, (counting_cred()))
    local res = assert(p:arm("PUT", "/subscriptions/s/resourcegroups/rg",
      { api_version = "2021-04-01", query = { ["$filter"] = "a b" }, body = { location = "westeurope" } }))
    local req = t.calls[1]
    assert.equal("https://management.azure.com/subscriptions/s/resourcegroups/rg"
      .. "?%24filter=a%20b&api-version=2021-04-01",
      req.url)
    assert.equal("PUT", req.method)
    assert.equal("application/json", req.headers["Content-Type"])
    assert.same({ location = "westeurope" }, cjson.decode(req.body))
    assert.truthy(auth_of(req):find("^Bearer tok1%-https://management.azure.com/.default"))
    assert.truthy(req.headers["x-ms-client-request-id"]:match("^%x+%-%x+%-4%x+%-%x+%-%x+$"))
    assert.equal("rg", res.json.name)
    assert.equal("rid", res.request_id)
    assert.equal(req.headers["x-ms-client-request-id"], res.client_request_id)
  end)

  it("returns structured errors with request ids", function()
    local t = stub.sequence({ { status = 404, headers = { ["x-ms-request-id"] = "r404" },
      body = '{"error":{"code":"ResourceGroupNotFound",'
        .. '"message":"Resource group \'rg\' could not be found."}}' } })
    local p = mk(t, (counting_cred()))
    local res, err = p:arm("GET", "/subscriptions/s/resourcegroups/rg", { api_version = "2021-04-01" })
    assert.is_nil(res)
    assert.equal("azure", err.kind); assert.equal(404, err.status); assert.equal("ResourceGroupNotFound",
      err.code)
    assert.equal("r404", err.request_id); assert.truthy(err.hint)
    assert.equal("GET /subscriptions/s/resourcegroups/rg", err.operation)
  end)

  it("sends tokens only over https and only to hosts of the cloud profile", function()
    local t = stub.sequence({ { status = 200 } })
    local p = mk(t, (counting_cred()))
    local _, e1 = p:send({ method = "GET", url = "https://evil.example/x",
      scope = "https://management.azure.com/.default" })
    assert.equal("UntrustedTokenTarget", e1.code)
    local _, e2 = p:send({ method = "GET", url = "http://management.azure.com/x" })
    assert.equal("InsecureTokenTarget", e2.code)
    local _, e3 = p:send({ method = "GET", url = "https://management.azure.com/x", scope = "https://x/ bad" })
    assert.equal("InvalidScope", e3.code)
    assert.equal(0, #t.calls)
    -- other hosts without a scope: sent without a token
    assert(p:send({ method = "GET", url = "https://example.com/x" }))
    assert.is_nil(auth_of(t.calls[1]))
    local _, e4 = p:send({ method = "GET", url = "https://management.azure.com/x",
      headers = { Authorization = "x" } })
    assert.equal("InvalidHeader", e4.code)
  end)

  it("drops the cached token once on 401 and retries", function()
    local t = stub.sequence({ { status = 200 }, { status = 401,
      body = '{"error":{"code":"ExpiredAuthenticationToken"}}' },
      { status = 200 }, { status = 401 }, { status = 401 } })
    local cred, count = counting_cred()
    local p = mk(t, cred)
    assert(p:arm("GET", "/a", { api_version = "1" }))
    assert(p:arm("GET", "/a", { api_version = "1" }))       -- 401 then 200 with a new token
    assert.equal(2, count())
    assert.are_not.equal(auth_of(t.calls[2]), auth_of(t.calls[3]))
    local res, err = p:arm("GET", "/a", { api_version = "1" })   -- 401, new token, 401 again: give up
    assert.is_nil(res); assert.equal(401, err.status); assert.equal("auth", err.kind)
    assert.equal(3, count())
  end)

  it("runs the Key Vault challenge flow: bodiless probe, verified challenge, then the real request",
    function()
    local t = stub.new(function(req)
      if not auth_of(req) then return { status = 401, headers = { ["www-authenticate"] = CH } } end
      return { status = 200, headers = { ["content-type"] = "application/json" },
        body = '{"key":{"kid":"k"}}' }
    end)
    local cred, count = counting_cred()
    local p = mk(t, cred)
    local res = assert(p:vault("POST", "https://myvault.vault.azure.net", "/keys/k/create",
      { body = { kty = "RSA" } }))
    assert.equal("k", res.json.key.kid)
    assert.equal(2, #t.calls)
    assert.is_nil(t.calls[1].body)
    assert.equal("0", t.calls[1].headers["Content-Length"])
    assert.truthy(t.calls[1].url:find("api-version=2025-07-01", 1, true))
    assert.truthy(auth_of(t.calls[2]):find("https://vault.azure.net/.default", 1, true))
    assert.same({ kty = "RSA" }, cjson.decode(t.calls[2].body))
    -- the challenge is cached per vault: no second probe
    assert(p:vault("GET", "https://myvault.vault.azure.net", "/keys/k"))
    assert.equal(3, #t.calls)
    assert.equal(1, count())
  end)

  it("refuses a challenge that names a foreign resource and never gets a token for it", function()
    local t = stub.sequence({ { status = 401, headers = { ["www-authenticate"] =
      'Bearer authorization="https://login.microsoftonline.com/t", resource="https://management.azure.com"' }
        } })
    local cred, count = counting_cred()
    local p = mk(t, cred)
    local res, err = p:vault("GET", "https://myvault.vault.azure.net", "/keys/k")
    assert.is_nil(res)
    assert.equal("auth", err.kind); assert.equal("ChallengeResourceMismatch",
      err.code); assert.truthy(err.hint)
    assert.equal(0, count())
    assert.equal(1, #t.calls)
  end)

  it("refuses vault URLs outside the cloud's vault suffix", function()
    local p = mk(stub.sequence({ { status = 200 } }), (counting_cred()))
    local _, err = p:vault("GET", "https://myvault.vault.evil.example", "/keys")
    assert.equal("InvalidVaultUrl", err.code)
  end)
end)

describe("pipeline.encode_json", function()
  it("writes EMPTY_ARRAY as [] and leaves other values alone", function()
    local s = pipeline.encode_json({ properties = { accessPolicies = pipeline.EMPTY_ARRAY, tags = {} },
      key_ops = { "wrapKey" }, name = "x" })
    local back = cjson.decode(s)
    assert.equal("[]", s:match('"accessPolicies":(%[%])'))
    assert.same({ "wrapKey" }, back.key_ops)
    assert.equal("x", back.name)
  end)

  it("keeps a string that merely mentions the marker's text", function()
    local s = pipeline.encode_json({ note = "azcmk-empty-array" })
    assert.equal("azcmk-empty-array", cjson.decode(s).note)
  end)
end)
