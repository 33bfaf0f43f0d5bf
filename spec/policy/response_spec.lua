-- azcmk.policy.response: JSON decoding and structured errors, with the request ids.
local response = require("azcmk.policy.response")
local policy = require("azcmk.policy")
local url = require("azcmk.url")
local stub = require("support.stub_transport")

local function call(answer, err)
  local t = stub.new(function() return answer, err end)
  local c = policy.chain({ response.new() }, t)
  local u = "https://management.azure.com/subscriptions/s/resourcegroups/rg?api-version=1"
  return c:send({ method = "GET", url = u, target = url.parse(u),
    headers = { ["x-ms-client-request-id"] = "crid" } })
end

describe("azcmk.policy.response", function()
  it("decodes a JSON 2xx and names its request ids", function()
    local res, err = call({ status = 200, headers = { ["x-ms-request-id"] = "rid" },
      body = ' {"name":"rg"}' })
    assert.is_nil(err)
    assert.same({ name = "rg" }, res.json)
    assert.equal("rid", res.request_id)
    assert.equal("crid", res.client_request_id)
    assert.equal("GET", res.method)
    assert.truthy(res.url:find("api-version=1", 1, true))
  end)

  it("decodes by content type, and leaves other bodies alone", function()
    local res = call({ status = 200, headers = { ["content-type"] = "application/json" }, body = '"x"' })
    assert.equal("x", res.json)
    res = call({ status = 200, headers = { ["content-type"] = "text/plain" }, body = "plain" })
    assert.is_nil(res.json)
    assert.equal("crid", res.request_id)      -- no service id: ours
  end)

  it("turns a non-2xx answer into a structured error and returns the answer too", function()
    local res, err, raw = call({ status = 404, headers = { ["x-ms-request-id"] = "r404" },
      body = '{"error":{"code":"ResourceGroupNotFound","message":"not found"}}' })
    assert.is_nil(res)
    assert.equal("azure", err.kind)
    assert.equal("ResourceGroupNotFound", err.code)
    assert.equal("r404", err.request_id)
    assert.equal("crid", err.client_request_id)
    assert.equal("GET /subscriptions/s/resourcegroups/rg", err.operation)
    assert.equal(404, raw.status)
    assert.equal("ResourceGroupNotFound", raw.json.error.code)
  end)

  it("gives a failure without an answer the client request id", function()
    local e = { kind = "network", code = "ConnectFailed" }
    local res, err = call(nil, e)
    assert.is_nil(res)
    assert.equal(e, err)
    assert.equal("crid", err.client_request_id)
    assert.equal("crid", err.request_id)
  end)
end)
