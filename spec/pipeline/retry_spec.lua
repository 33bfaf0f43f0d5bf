-- azcmk.retry: the retry rules (statuses, methods, failures, backoff, Retry-After forms).
local retry = require("azcmk.retry")
local clock = require("azcmk.clock")
local contract = require("azcmk.transport.contract")

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
    local tls = contract.error("TLSVerificationFailed", "bad cert")
    assert.is_nil((p:decide(get, nil, tls, 1)))
    local reset = contract.error("EmptyReply", "empty")
    assert.truthy(p:decide(get, nil, reset, 1))
    assert.is_nil((p:decide(post, nil, reset, 1)))
    local refused = contract.error("ConnectFailed", "refused")
    assert.truthy(p:decide(post, nil, refused, 1))
  end)
end)
