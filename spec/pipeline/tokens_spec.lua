-- Token reuse, proactive refresh and the 401-once rule, observed in the emulator's request log.
local H = require("support.pipeline_helper")

describe("token cache against the emulator", function()
  local seed, lines
  setup(function() local _; _, seed = H.env() end)
  teardown(function() H.reset() end)   -- leave the shared emulator as seeded
  before_each(function() H.reset(); lines = {} end)
  after_each(function() H.assert_no_secrets(lines) end)

  local function secret_cred()
    return H.client_secret(seed)
  end
  local TOKEN_PATH = function() return "/" .. seed.tenant_id .. "/oauth2/v2.0/token" end

  it("fetches ONE token for many calls", function()
    local seq = H.log_seq()
    local p = H.pipeline({ credential = secret_cred(), lines = lines })
    for _ = 1, 5 do
      assert(p:arm("GET", "/subscriptions", { api_version = "2022-12-01" }))
    end
    local log = H.log_entries(seq)
    assert.equal(1, H.count(log, "login.microsoftonline.com", TOKEN_PATH()))
    assert.equal(5, H.count(log, "management.azure.com", "/subscriptions"))
  end)

  it("refreshes before expiry on its own clock (no 401 needed)", function()
    local offset = 0
    local p = H.pipeline({ credential = secret_cred(), lines = lines,
      now = function() return os.time() + offset end })
    local seq = H.log_seq()
    assert(p:arm("GET", "/subscriptions", { api_version = "2022-12-01" }))
    offset = 3400         -- < 300 s left of a ~3600 s token
    H.control("POST", "clock", { advance = 3400 })
    assert(p:arm("GET", "/subscriptions", { api_version = "2022-12-01" }))
    local log = H.log_entries(seq)
    assert.equal(2, H.count(log, "login.microsoftonline.com", TOKEN_PATH()))
    for _, e in ipairs(log) do assert.are_not.equal(401, e.status) end
  end)

  it("after a clock jump the service's 401 drops the token once and the call succeeds", function()
    local p = H.pipeline({ credential = secret_cred(), lines = lines })
    local seq = H.log_seq()
    assert(p:arm("GET", "/subscriptions", { api_version = "2022-12-01" }))
    H.control("POST", "clock", { advance = 7200 })    -- the emulator now sees the token as expired
    local res, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
    assert.is_nil(err)
    assert.equal(200, res.status)
    local log = H.log_entries(seq)
    assert.equal(2, H.count(log, "login.microsoftonline.com", TOKEN_PATH()))
    local n401 = 0
    for _, e in ipairs(log) do if e.status == 401 then n401 = n401 + 1 end end
    assert.equal(1, n401)
  end)

  it("keeps serving the valid token when a refresh fails, and damps refresh attempts", function()
    local offset = 0
    local p = H.pipeline({ credential = secret_cred(), lines = lines,
      now = function() return os.time() + offset end })
    assert(p:arm("GET", "/subscriptions", { api_version = "2022-12-01" }))
    offset = 3400                                   -- inside the refresh window, still valid
    H.control("POST", "faults", { rules = { { host = "login.microsoftonline.com", status = 503,
      count = 100 } } })
    local seq = H.log_seq()
    local res, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
    assert.is_nil(err)
    assert.equal(200, res.status)
    offset = 3410                                   -- 10 s later: no new attempt (30 s damping)
    assert(p:arm("GET", "/subscriptions", { api_version = "2022-12-01" }))
    local log = H.log_entries(seq)
    assert.equal(4, H.count(log, "login.microsoftonline.com", TOKEN_PATH()))   -- 1 try + 3 retries, once
    assert.equal(2, H.count(log, "management.azure.com", "/subscriptions"))
    H.control("DELETE", "faults")
  end)

  it("keeps one token per scope", function()
    local seq = H.log_seq()
    local p = H.pipeline({ credential = secret_cred(), lines = lines })
    assert(p:token("https://management.azure.com/.default"))
    assert(p:token("https://vault.azure.net/.default"))
    assert(p:token("https://management.azure.com/.default"))
    assert.equal(2, H.count(H.log_entries(seq), "login.microsoftonline.com", TOKEN_PATH()))
  end)
end)
