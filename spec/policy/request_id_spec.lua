-- azcmk.policy.request_id: one client request id per call, kept when the caller gave one.
local request_id = require("azcmk.policy.request_id")
local policy = require("azcmk.policy")
local stub = require("support.stub_transport")

describe("azcmk.policy.request_id", function()
  it("adds a new UUID v4 per call, the same for every try of that call", function()
    local t = stub.sequence({ { status = 200 } })
    local retry_twice = { send = function(_, req, next)
      next:send(req)
      return next:send(req)
    end }
    local c = policy.chain({ request_id.new(), retry_twice }, t)
    c:send({ method = "GET", url = "https://h/", headers = {} })
    c:send({ method = "GET", url = "https://h/", headers = {} })
    local ids = {}
    for i, r in ipairs(t.calls) do ids[i] = r.headers["x-ms-client-request-id"] end
    assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", ids[1])
    assert.equal(ids[1], ids[2])
    assert.are_not.equal(ids[1], ids[3])
    assert.equal(ids[3], ids[4])
  end)

  it("keeps the caller's id, whatever the case of its header name", function()
    local t = stub.sequence({ { status = 200 } })
    local c = policy.chain({ request_id.new() }, t)
    local req = { method = "GET", url = "https://h/", headers = { ["X-MS-Client-Request-Id"] = "mine" } }
    c:send(req)
    assert.equal("mine", t.calls[1].headers["X-MS-Client-Request-Id"])
    assert.is_nil(t.calls[1].headers["x-ms-client-request-id"])
    assert.equal("mine", request_id.of(req))
  end)
end)
