-- azcmk.policy.trace: the record of every call that the doctor shows as evidence.
local pipeline = require("azcmk.pipeline")
local trace = require("azcmk.policy.trace")
local static = require("azcmk.credential.static")
local stub = require("support.stub_transport")

describe("azcmk.policy.trace", function()
  it("records each call once, after retries, with its outcome and the answer's headers", function()
    local c = stub.clock()
    local t = stub.sequence({
      { status = 429, headers = { ["retry-after"] = "1" } },
      { status = 200, body = "{}",
        headers = { ["x-ms-request-id"] = "r1", ["x-ms-ratelimit-remaining-subscription-reads"] = "11999" } },
      { status = 404, headers = { ["x-ms-request-id"] = "r2" },
        body = '{"error":{"code":"KeyNotFound","message":"no"}}' },
      { status = 200 },
    })
    local p = assert(pipeline.new({ transport = t, cloud = "AzureCloud", log = "off", now = c.now,
      sleep = c.sleep, credential = static.new({ token = "T", expires_on = os.time() + 3600 }) }))
    local tr = trace.new()
    local sunk = {}
    local sink = trace.new({ keep = false, sink = function(r) sunk[#sunk + 1] = r end })
    local tp = p:with({ per_call = { tr, sink } })
    assert(tp:arm("GET", "/subscriptions/s/resources", { api_version = "1",
      query = { ["$filter"] = "name eq 'r'" } }))
    assert.is_nil((tp:vault("GET", "https://kv.vault.azure.net", "/keys/k", { auth = false })))
    assert.equal(2, #tr.calls)
    local a, b = tr.calls[1], tr.calls[2]
    assert.equal("GET /subscriptions/s/resources?$filter=name eq 'r'", a.call)
    assert.equal(200, a.status)
    assert.equal("r1", a.request_id)
    assert.equal(2, a.attempts)
    assert.equal("11999", a.headers["x-ms-ratelimit-remaining-subscription-reads"])
    assert.equal("GET https://kv.vault.azure.net/keys/k (anonymous)", b.call)
    assert.equal(404, b.status)
    assert.equal("KeyNotFound", b.code)
    assert.equal("r2", b.request_id)
    assert.equal(2, #sunk)
    assert.equal(0, #trace.new({ keep = false }).calls)
    -- the pipeline it was made from records nothing
    assert(p:arm("GET", "/x", { api_version = "1" }))
    assert.equal(2, #tr.calls)
    tr:clear()
    assert.same({}, tr.calls)
  end)
end)
