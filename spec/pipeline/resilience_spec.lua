-- Retries against the emulator's faults: Retry-After, 503 bursts, dropped connections,
-- timeouts, TLS verification failures.
local H = require("support.pipeline_helper")
local transport = require("azcmk.transport.curl")
local pipeline = require("azcmk.pipeline")

describe("retries against the emulator", function()
  local seed, env, lines
  setup(function() env, seed = H.env() end)
  teardown(function() H.reset() end)   -- leave the shared emulator as seeded
  before_each(function() H.reset(); lines = {}; H.sleeps = {} end)
  after_each(function() H.control("DELETE", "faults"); H.assert_no_secrets(lines) end)

  local function owner()
    return H.client_secret(seed)
  end
  local function faults(rules) assert.equal(200, H.control("POST", "faults", { rules = rules }).status) end
  local function subs(p, opts)
    local o = { api_version = "2022-12-01" }
    for k, v in pairs(opts or {}) do o[k] = v end
    return p:arm("GET", "/subscriptions", o)
  end

  it("waits as Retry-After (seconds) says on 429", function()
    local p = H.pipeline({ credential = owner(), lines = lines })
    assert(p:token("https://management.azure.com/.default"))
    faults({ { host = "management.azure.com", path = "/subscriptions", status = 429, retry_after = 7,
      count = 2 } })
    local seq = H.log_seq()
    local res, err = subs(p)
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.same({ 7, 7 }, H.sleeps)
    assert.equal(3, H.count(H.log_entries(seq), "management.azure.com", "/subscriptions"))
  end)

  it("rides out a 503 burst, and reports the 503 when it lasts", function()
    local p = H.pipeline({ credential = owner(), lines = lines })
    assert(p:token("https://management.azure.com/.default"))
    faults({ { host = "management.azure.com", path = "/subscriptions", status = 503, count = 3 } })
    assert(subs(p))
    assert.equal(3, #H.sleeps)
    faults({ { host = "management.azure.com", path = "/subscriptions", status = 503, count = 4 } })
    local res, err = subs(p)
    assert.is_nil(res)
    assert.equal(503, err.status)
    assert.truthy(err.hint)
    assert.truthy(err.request_id)
  end)

  it("retries a POST that is not repeatable on 429 (throttled: not applied), not on 503", function()
    local p = H.pipeline({ credential = owner(), lines = lines })
    assert(p:token("https://management.azure.com/.default"))
    local path = "/subscriptions/" .. seed.subscription_id .. "/providers/Microsoft.Fake/doThing"
    faults({ { host = "management.azure.com", path = path, method = "POST", status = 429, count = 1 } })
    local seq = H.log_seq()
    p:arm("POST", path, { api_version = "2022-12-01", body = {} })
    assert.equal(2, H.count(H.log_entries(seq), "management.azure.com", path))
    assert.equal(1, #H.sleeps)
    faults({ { host = "management.azure.com", path = path, method = "POST", status = 503, retry_after = 1,
      count = 1 } })
    seq = H.log_seq()
    local res, err = p:arm("POST", path, { api_version = "2022-12-01", body = {} })
    assert.is_nil(res)
    assert.equal(503, err.status)
    assert.equal("unknown", err.outcome)
    assert.equal(1, H.count(H.log_entries(seq), "management.azure.com", path))
  end)

  it("retries a GET whose connection was dropped, not a POST", function()
    local p = H.pipeline({ credential = owner(), lines = lines })
    assert(p:token("https://management.azure.com/.default"))
    faults({ { host = "management.azure.com", path = "/subscriptions", method = "GET", drop = true,
      count = 2 } })
    local res, err = subs(p)
    assert.is_nil(err)
    assert.equal(200, res.status)
    local path = "/subscriptions/" .. seed.subscription_id .. "/providers/Microsoft.Fake/doThing"
    faults({ { host = "management.azure.com", path = path, method = "POST", drop = true, count = 1 } })
    local r2, e2 = p:arm("POST", path, { api_version = "2022-12-01", body = {} })
    assert.is_nil(r2)
    assert.equal("network", e2.kind)
    assert.equal("io", e2.phase)
    assert.equal("unknown", e2.outcome)
  end)

  it("retries the token endpoint (an idempotent POST) on 503", function()
    faults({ { host = "login.microsoftonline.com", status = 503, count = 2 } })
    local p = H.pipeline({ credential = owner(), lines = lines })
    local res, err = subs(p)
    assert.is_nil(err)
    assert.equal(200, res.status)
  end)

  it("maps a slow answer to a timeout error", function()
    local p = H.pipeline({ credential = owner(), lines = lines, retry = { max_retries = 0 } })
    assert(p:token("https://management.azure.com/.default"))
    faults({ { host = "management.azure.com", path = "/subscriptions", delay_ms = 1500, count = 1 } })
    local res, err = subs(p, { timeout_ms = 300 })
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.truthy(err.hint)
  end)

  it("never retries a TLS verification failure", function()
    local t = transport.new({ env = { AZCMK_CONNECT_TO = env.AZCMK_CONNECT_TO } })   -- no emulator CA
    local p = assert(pipeline.new({ transport = t, credential = owner(), log = H.logger(lines),
      sleep = H.sleep }))
    local res, err = subs(p)
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal("TLSVerificationFailed", err.code)
    assert.is_true(err.tls)
    assert.equal(0, #H.sleeps)
  end)
end)
