-- azcmk.policy.log: one line per try through the logger, nothing when it is off.
local log_policy = require("azcmk.policy.log")
local log = require("azcmk.log")
local policy = require("azcmk.policy")
local stub = require("support.stub_transport")

describe("azcmk.policy.log", function()
  it("logs each try with status, try number and request ids", function()
    local lines = {}
    local owner = { log = log.new({ level = "info", sink = function(l) lines[#lines + 1] = l end }) }
    local t = stub.sequence({ { status = 503, headers = { ["x-ms-request-id"] = "r1" } } })
    local c = policy.chain({ log_policy.new(owner) }, t)
    c:send({ method = "GET", url = "https://management.azure.com/x?api-version=1&sig=SECRET", headers = {},
      attempt = 2 })
    assert.equal(1, #lines)
    assert.matches("^azcmk http GET management%.azure%.com /x api%-version=1 %-> 503 %d+ms "
      .. "x%-ms%-request%-id=r1 try=2$", lines[1])
    assert.falsy(lines[1]:find("SECRET", 1, true))
  end)

  it("logs a failure without an answer by its kind and code", function()
    local lines = {}
    local owner = { log = log.new({ level = "info", sink = function(l) lines[#lines + 1] = l end }) }
    local c = policy.chain({ log_policy.new(owner) }, stub.new(function()
      return nil, { kind = "network", code = "ConnectFailed" } end))
    c:send({ method = "GET", url = "https://h/x", headers = {} })
    assert.matches("%-> network ConnectFailed", lines[1])
  end)

  it("writes nothing and measures nothing when the logger is off", function()
    local lines = {}
    local owner = { log = log.new({ level = "off", sink = function(l) lines[#lines + 1] = l end }) }
    local c = policy.chain({ log_policy.new(owner) }, stub.sequence({ { status = 200 } }))
    assert.equal(200, c:send({ method = "GET", url = "https://h/x", headers = {} }).status)
    assert.same({}, lines)
  end)
end)
