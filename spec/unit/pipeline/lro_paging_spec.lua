local lro = require("azcmk.lro")
local paging = require("azcmk.paging")
local cjson = require("cjson.safe")
local stub = require("support.stub_transport")

-- a scripted pipeline: send(req) answers from a list, recording requests
local function fake_p(answers)
  local c = stub.clock()
  local p = { calls = {}, now = c.now, sleep = c.sleep, clock = c }
  function p.send(self, req)
    self.calls[#self.calls + 1] = req
    local a = answers[#self.calls] or answers[#answers]
    if a.err then return nil, a.err end
    a.headers = a.headers or {}
    if a.body then a.json = cjson.decode(a.body) end
    a.url = a.url or req.url
    return a
  end
  return p
end

local ORIG = { method = "PUT", url = "https://management.azure.com/sub/r?api-version=1" }

describe("azcmk.lro", function()
  it("knows terminal states in any case", function()
    assert.equal("Succeeded", lro.terminal("succeeded"))
    assert.equal("Canceled", lro.terminal("CANCELED"))
    assert.is_nil(lro.terminal("Updating"))
  end)

  it("maps the initial status for body polling", function()
    assert.equal("InProgress", lro.initial_body_state({ status = 202 }))
    assert.equal("Succeeded", lro.initial_body_state({ status = 204 }))
    assert.equal("Creating", lro.initial_body_state({ status = 201,
      json = { properties = { provisioningState = "Creating" } } }))
    assert.equal("InProgress", lro.initial_body_state({ status = 201 }))
    assert.equal("Succeeded", lro.initial_body_state({ status = 200 }))
  end)

  it("prefers Azure-AsyncOperation, then Location, then provisioningState", function()
    assert.equal("async", (lro.strategy("PUT", { status = 201, headers = { ["azure-asyncoperation"] = "a",
      location = "l" } })))
    assert.equal("location", (lro.strategy("DELETE", { status = 202, headers = { location = "l" } })))
    assert.equal("body", (lro.strategy("PUT", { status = 201, headers = {},
      json = { properties = { provisioningState = "Creating" } } })))
    assert.equal("done", (lro.strategy("POST", { status = 200, headers = {} })))
  end)

  it("polls the operation with Retry-After, then GETs the resource", function()
    local p = fake_p({
      { status = 200, body = '{"status":"InProgress"}', headers = { ["retry-after"] = "2" } },
      { status = 200, body = '{"status":"Succeeded"}' },
      { status = 200, body = '{"name":"r","properties":{"provisioningState":"Succeeded"}}' },
    })
    local seen = {}
    local initial = { status = 201,
      headers = { ["azure-asyncoperation"] = "https://management.azure.com/op/1",
                                                ["retry-after"] = "1" } }
    local res = assert(lro.poll(p, initial, ORIG, { interval = 5,
      progress = function(i) seen[#seen + 1] = i.state end }))
    assert.equal("r", res.json.name)
    assert.same({ 1, 2 }, p.clock.sleeps)
    assert.same({ "InProgress", "Succeeded" }, seen)
    assert.equal("https://management.azure.com/op/1", p.calls[1].url)
    assert.equal(ORIG.url, p.calls[3].url)
  end)

  it("surfaces a failed operation as a structured error", function()
    local p = fake_p({ { status = 200,
      body = '{"status":"Failed","error":{"code":"KeyVaultAccessDenied","message":"no"}}' } })
    local res, err = lro.poll(p, { status = 202,
      headers = { ["azure-asyncoperation"] = "https://management.azure.com/op" } },
                              ORIG, { interval = 0 })
    assert.is_nil(res)
    assert.equal("azure", err.kind); assert.equal("KeyVaultAccessDenied", err.code); assert.equal("no",
      err.message)
  end)

  it("times out", function()
    local p = fake_p({ { status = 202, headers = { location = "https://management.azure.com/op" } } })
    local res, err = lro.poll(p, { status = 202, headers = { location = "https://management.azure.com/op" } },
                              { method = "DELETE", url = ORIG.url }, { interval = 10, timeout = 35 })
    assert.is_nil(res)
    assert.equal("timeout", err.kind); assert.equal("LroTimeout", err.code)
    assert.equal(3, #p.calls)
  end)

  it("refuses polling URLs on another host", function()
    local p = fake_p({ { status = 200 } })
    local res, err = lro.poll(p, { status = 202,
      headers = { ["azure-asyncoperation"] = "https://evil.example/op" } },
                              ORIG, { interval = 0 })
    assert.is_nil(res); assert.equal("UntrustedPollingUrl", err.code)
    assert.equal(0, #p.calls)
  end)

  it("follows provisioningState on the resource", function()
    local p = fake_p({ { status = 200, body = '{"properties":{"provisioningState":"Updating"}}' },
                       { status = 200, body = '{"properties":{"provisioningState":"Canceled"}}' } })
    local res, err = lro.poll(p, { status = 201, headers = {},
      json = { properties = { provisioningState = "Creating" } } },
                              ORIG, { interval = 1 })
    assert.is_nil(res); assert.equal("OperationCanceled", err.code)
  end)
end)

describe("azcmk.paging", function()
  it("iterates items across pages and stops at the last", function()
    local p = fake_p({
      { status = 200,
        body = '{"value":[1,2],"nextLink":"https://management.azure.com/l?api-version=1&$skiptoken=a"}' },
      { status = 200,
        body = '{"value":[3],"nextLink":"https://management.azure.com/l?api-version=1&$skiptoken=b"}' },
      { status = 200, body = '{"value":[]}' },
    })
    local got = {}
    for item, err in paging.items(p, { method = "GET", url = "https://management.azure.com/l",
      api_version = "1" }) do
      assert.is_nil(err); got[#got + 1] = item
    end
    assert.same({ 1, 2, 3 }, got)
    assert.equal(3, #p.calls)
    assert.is_nil(p.calls[2].api_version)     -- nextLink already carries it
  end)

  it("yields false, err on failure and refuses foreign nextLinks", function()
    local p = fake_p({ { status = 200, body = '{"value":[1],"nextLink":"https://evil.example/next"}' } })
    local got, errs = {}, {}
    for item, err in paging.items(p, { method = "GET", url = "https://management.azure.com/l" }) do
      if item then got[#got + 1] = item else errs[#errs + 1] = err end
    end
    assert.same({ 1 }, got)
    assert.equal(1, #errs); assert.equal("UntrustedNextLink", errs[1].code)
  end)
end)
