-- Retry waits longer than a second are said on stderr (what failed, how long, which attempt),
-- through the retry policy's on_wait hook that the command line's composition root sets; a
-- refused connection says what to do next.
local H = require("support.cmk_helper")
local E = require("support.emulator")
local retry_policy = require("azcmk.policy.retry")
local retry = require("azcmk.retry")
local policy = require("azcmk.policy")
local stub = require("support.stub_transport")

describe("azcmk.policy.retry on_wait", function()
  it("is called before each wait with what failed, the delay and the attempt", function()
    local c = stub.clock()
    local waits = {}
    local o = { retry = retry.new({ random = function() return 0 end }), now = c.now, sleep = c.sleep,
      on_wait = function(w) waits[#waits + 1] = w end }
    local t = stub.sequence({ { status = 503, headers = { ["retry-after"] = "3" } }, { status = 200 } })
    local res = policy.chain({ retry_policy.new(o) }, t):send({ method = "GET", url = "https://h.example/x",
      headers = {} })
    assert.equal(200, res.status)
    assert.equal(1, #waits)
    assert.same({ method = "GET", host = "h.example", delay = 3, why = "status 503 with retry-after",
      attempt = 1, status = 503 }, waits[1])
    assert.same({ 3 }, c.sleeps)
  end)
end)

describe("azcmk: waits and refused connections on stderr", function()
  local s
  setup(function() s = H.start_with_registry() end)
  teardown(function() H.done() end)

  -- show, with ARM's first GET answered `status` + Retry-After
  local function show_after(status, retry_after)
    E.control("POST", "faults", { rules = { { host = "management.azure.com", path = "/subscriptions",
      method = "GET", status = status, retry_after = retry_after, count = 1 } } })
    local r = H.cli({ "show", "-n", s.registry.name, "--query", "status" })
    E.control("DELETE", "faults")
    assert.equal(0, r.code, r.stderr)
    return r
  end

  it("a 429 with Retry-After: 2 says the wait, then the command succeeds", function()
    local r = show_after(429, 2)
    assert.matches("  waiting 2s before retrying GET management%.azure%.com %(attempt 1 failed: status 429 "
      .. "with retry%-after%)\n", r.stderr)
  end)

  it("waits of a second or less stay quiet", function()
    assert.equal("", show_after(503, 1).stderr)
  end)

  it("a refused connection: the waits, then one error line with a next step", function()
    local port = E.free_port()
    local r = H.cli({ "show", "-n", s.registry.name }, { AZCMK_CONNECT_TO = ":443:127.0.0.1:" .. port })
    assert.equal(1, r.code)
    assert.matches("waiting [%d.]+s before retrying POST login%.microsoftonline%.com %(attempt %d failed: "
      .. "ConnectFailed%)", r.stderr)
    local last = r.stderr:match("([^\n]+)\n$")
    assert.matches("^azcmk show: .*%[ConnectFailed%] %-%- next: check that the host is reachable", last)
    assert.matches("azcmk emulator status", last)
  end)
end)
