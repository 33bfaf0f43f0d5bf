-- azcmk.sender: the retry and log policies in front of a transport, as credentials use them.
local retry = require("azcmk.retry")
local sender = require("azcmk.sender")
local contract = require("azcmk.transport.contract")
local stub = require("support.stub_transport")

describe("azcmk.sender", function()
  it("retries with the server's delays and stops at success", function()
    local c = stub.clock()
    local t = stub.sequence({
      { status = 429, headers = { ["retry-after"] = "2" } },
      { status = 503, headers = { ["x-ms-retry-after-ms"] = "100" } },
      { status = 200, body = "ok" },
    })
    local res = sender.send({ transport = t, now = c.now, sleep = c.sleep }, { method = "GET",
      url = "https://h/x" })
    assert.equal(200, res.status)
    assert.equal(3, res.attempts)
    assert.same({ 2, 0.1 }, c.sleeps)
  end)

  it("returns the last answer when retries are exhausted", function()
    local c = stub.clock()
    local t = stub.sequence({ { status = 503 } })
    local res = sender.send({ transport = t, now = c.now, sleep = c.sleep,
                              retry = retry.new({ random = function() return 0 end }) },
                            { method = "GET", url = "https://h/x" })
    assert.equal(503, res.status)
    assert.equal(4, #t.calls)
    assert.equal(3, #c.sleeps)
  end)

  it("keeps to the time budget", function()
    local c = stub.clock()
    local t = stub.sequence({ { status = 429, headers = { ["retry-after"] = "100" } } })
    local res = sender.send({ transport = t, now = c.now, sleep = c.sleep,
      retry = retry.new({ budget = 50 }) },
                            { method = "GET", url = "https://h/x" })
    assert.equal(429, res.status)
    assert.is_true(res.budget_exhausted)
    assert.equal(1, #t.calls)
    assert.same({}, c.sleeps)
  end)

  it("never retries TLS verification failures", function()
    local c = stub.clock()
    local t = stub.new(function() return nil, contract.error("TLSVerificationFailed", "x") end)
    local res, err = sender.send({ transport = t, now = c.now, sleep = c.sleep }, { method = "GET",
      url = "https://h/" })
    assert.is_nil(res)
    assert.equal("TLSVerificationFailed", err.code)
    assert.equal(1, #t.calls)
  end)

  it("caps each try's timeout by the remaining budget", function()
    local c = stub.clock()
    local t = stub.sequence({ { status = 200 } })
    sender.send({ transport = t, now = c.now, sleep = c.sleep, retry = retry.new({ budget = 2 }) },
                { method = "GET", url = "https://h/", timeout_ms = 10000 })
    assert.equal(2000, t.calls[1].timeout_ms)
    sender.send({ transport = t, now = c.now, sleep = c.sleep }, { method = "GET", url = "https://h/" })
    assert.is_nil(t.calls[2].timeout_ms)      -- the transport's default applies
  end)
end)
