local retry = require("azcmk.retry")
local sender = require("azcmk.sender")
local clock = require("azcmk.clock")
local errors = require("azcmk.errors")
local stub = require("support.stub_transport")

describe("azcmk.retry", function()
  it("parses every Retry-After form", function()
    local now = clock.timegm(2026, 11, 22, 5, 0, 0)
    assert.equal(7, retry.retry_after({ ["retry-after"] = "7" }, now))
    assert.equal(30, retry.retry_after({ ["retry-after"] = "Sun, 22 Nov 2026 05:00:30 GMT" }, now))
    assert.equal(0, retry.retry_after({ ["retry-after"] = "Sun, 22 Nov 2026 04:00:00 GMT" }, now))
    assert.equal(30, retry.retry_after({ ["retry-after"] = "Sunday, 22-Nov-26 05:00:30 GMT" }, now))
    assert.equal(30, retry.retry_after({ ["retry-after"] = "Sun Nov 22 05:00:30 2026" }, now))
    assert.equal(1.5, retry.retry_after({ ["retry-after-ms"] = "1500" }, now))
    assert.equal(0.25, retry.retry_after({ ["x-ms-retry-after-ms"] = "250" }, now))
    assert.equal(2, retry.retry_after({ ["retry-after"] = "2", ["retry-after-ms"] = "9000" }, now))
    assert.is_nil(retry.retry_after({}, now))
    assert.is_nil(retry.retry_after({ ["retry-after"] = "soon" }, now))
  end)

  it("converts HTTP dates like timegm", function()
    assert.equal(784111777, clock.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"))
    assert.equal(784111777, clock.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"))
    assert.equal(784111777, clock.parse_http_date("Sun Nov  6 08:49:37 1994"))
  end)

  it("backs off exponentially from 0.8 s with jitter and a cap", function()
    local p = retry.new({ random = function() return 0 end })   -- jitter factor 0.8
    assert.near(0.8 * 1 * 0.8, p:backoff(1), 1e-9)
    assert.near(0.8 * 3 * 0.8, p:backoff(2), 1e-9)
    assert.near(0.8 * 7 * 0.8, p:backoff(3), 1e-9)
    assert.equal(60, retry.new({ random = function() return 0.99 end }):backoff(10))
    local hi = retry.new({ random = function() return 0.999999 end })
    assert.truthy(hi:backoff(1) <= 0.8 * 1.3 and hi:backoff(1) > 0.8 * 1.29)
  end)

  it("decides like the Azure SDKs", function()
    local p = retry.new({ random = function() return 0.5 end })
    local get, post = { method = "GET" }, { method = "POST" }
    for _, s in ipairs({ 408, 429, 500, 502, 503, 504 }) do
      assert.truthy(p:decide(get, { status = s, headers = {} }, nil, 1), s)
    end
    assert.is_nil((p:decide(get, { status = 404, headers = {} }, nil, 1)))
    assert.is_nil((p:decide(get, { status = 401, headers = { ["retry-after"] = "1" } }, nil, 1)))
    assert.is_nil((p:decide(get, { status = 503, headers = {} }, nil, 4)))      -- 3 retries
    -- POST: only 500/503/504 unless Retry-After or idempotent
    assert.is_nil((p:decide(post, { status = 429, headers = {} }, nil, 1)))
    assert.is_nil((p:decide(post, { status = 502, headers = {} }, nil, 1)))
    assert.truthy(p:decide(post, { status = 503, headers = {} }, nil, 1))
    assert.equal(3, (p:decide(post, { status = 429, headers = { ["retry-after"] = "3" } }, nil, 1)))
    assert.truthy(p:decide({ method = "POST", idempotent = true }, { status = 429, headers = {} }, nil, 1))
    -- any >= 400 with Retry-After is retried (Python azure-core)
    assert.equal(1, (p:decide(get, { status = 409, headers = { ["retry-after"] = "1" } }, nil, 1)))
    -- connection failures
    local tls = errors.from_transport("bad cert", "CURLE_PEER_FAILED_VERIFICATION")
    assert.is_nil((p:decide(get, nil, tls, 1)))
    local reset = errors.from_transport("empty", "CURLE_GOT_NOTHING")
    assert.truthy(p:decide(get, nil, reset, 1))
    assert.is_nil((p:decide(post, nil, reset, 1)))
    local refused = errors.from_transport("refused", "CURLE_COULDNT_CONNECT")
    assert.truthy(p:decide(post, nil, refused, 1))
  end)
end)

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
    local t = stub.new(function() return nil, errors.from_transport("x",
      "CURLE_PEER_FAILED_VERIFICATION") end)
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
