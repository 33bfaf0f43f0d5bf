-- azcmk.policy.retry: the retry loop (the rules are azcmk.retry's, spec/pipeline/retry_spec.lua).
local retry_policy = require("azcmk.policy.retry")
local retry = require("azcmk.retry")
local log = require("azcmk.log")
local policy = require("azcmk.policy")
local contract = require("azcmk.transport.contract")
local stub = require("support.stub_transport")

local function owner(extra)
  local c = stub.clock()
  local o = { retry = retry.new({ random = function() return 0 end }), now = c.now, sleep = c.sleep,
    clock = c }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe("azcmk.policy.retry", function()
  it("gives each try its own copy of the request with its try number", function()
    local o = owner()
    local t = stub.sequence({ { status = 500 }, { status = 500 }, { status = 200 } })
    local seen = {}
    local mark = { send = function(_, req, next)
      seen[#seen + 1] = req
      req.scope = "set by a policy below"
      return next:send(req)
    end }
    local req = { method = "GET", url = "https://h/x", headers = {} }
    local res = policy.chain({ retry_policy.new(o), mark }, t):send(req)
    assert.equal(200, res.status)
    assert.equal(3, res.attempts)
    assert.equal(3, #seen)
    assert.are_not.equal(seen[1], seen[2])
    assert.same({ 1, 2, 3 }, { seen[1].attempt, seen[2].attempt, seen[3].attempt })
    assert.is_nil(req.scope)
    assert.equal(2, #o.clock.sleeps)
  end)

  it("stops when a policy below marks its own error final", function()
    local o = owner()
    local t = stub.sequence({ { status = 200 } })
    local no_token = { send = function(_, req)
      req.final = true
      return nil, contract.error("ConnectFailed", "token endpoint unreachable")
    end }
    local res, err = policy.chain({ retry_policy.new(o), no_token }, t):send({ method = "GET",
      url = "https://h/", headers = {} })
    assert.is_nil(res)
    assert.equal("ConnectFailed", err.code)
    assert.is_nil(err.attempts)
    assert.same({}, o.clock.sleeps)
  end)

  it("takes its own rules, budget and decision when given (IMDS)", function()
    local o = owner()
    local t = stub.sequence({ { status = 410 }, { status = 410 }, { status = 200 } })
    local decide = function(_, res) if res.status == 410 then return 5, "updating" end end
    local res = policy.chain({ retry_policy.new(o, { decide = decide, budget = 100 }) }, t)
      :send({ method = "GET", url = "http://169.254.169.254/", headers = {} })
    assert.equal(200, res.status)
    assert.same({ 5, 5 }, o.clock.sleeps)
  end)

  it("ends with a Timeout error when the budget is spent before a try", function()
    local o = owner({ retry = retry.new({ budget = 1, random = function() return 0 end }) })
    local t = stub.new(function() o.clock.t = o.clock.t + 2; return { status = 503 } end)
    local res = policy.chain({ retry_policy.new(o) }, t):send({ method = "GET", url = "https://h/",
      headers = {} })
    -- the server's answer comes back when the wait would pass the budget
    assert.equal(503, res.status)
    assert.is_true(res.budget_exhausted)
    local res2, err = policy.chain({ retry_policy.new(o, { budget = 0 }) }, t):send({ method = "GET",
      url = "https://h/", headers = {} })
    assert.is_nil(res2)
    assert.equal("timeout", err.kind)
    assert.equal("Timeout", err.code)
  end)

  it("logs its decisions", function()
    local lines = {}
    local o = owner({ log = log.new({ level = "info", sink = function(l) lines[#lines + 1] = l end }) })
    local t = stub.sequence({ { status = 429, headers = { ["retry-after"] = "2" } }, { status = 200 } })
    policy.chain({ retry_policy.new(o) }, t):send({ method = "GET", url = "https://h.example/x",
      headers = {} })
    assert.equal("azcmk info: retrying GET h.example in 2.00s (status 429 with retry-after)", lines[1])
  end)
end)
