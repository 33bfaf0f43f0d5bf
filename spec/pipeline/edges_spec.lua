-- The pipeline against answers a well-behaved service rarely gives, produced by the emulator's
-- fault rules (extra response headers) and forced long-running-operation outcomes:
-- Retry-After as an HTTP date, retry-after-ms, x-ms-retry-after-ms; a Key Vault challenge that
-- names a foreign resource; operations that end Failed or Canceled.
local H = require("support.pipeline_helper")

local function http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

describe("pipeline edge cases against the emulator", function()
  local seed, lines, p, sub
  setup(function() local _; _, seed = H.env(); sub = seed.subscription_id end)
  teardown(function() H.reset() end)
  before_each(function()
    H.reset(); lines = {}; H.sleeps = {}
    p = H.pipeline({ lines = lines, credential = H.client_secret(seed) })
    assert(p:token("https://management.azure.com/.default"))
  end)
  after_each(function() H.control("DELETE", "faults"); H.assert_no_secrets(lines) end)

  local function fault(rule)
    local res = H.control("POST", "faults", { rules = { rule } })
    assert.equal(200, res.status)
  end
  local function subs()
    return p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
  end

  it("waits until the HTTP date of Retry-After", function()
    fault({ host = "management.azure.com", path = "/subscriptions", status = 429, count = 1,
      headers = { ["Retry-After"] = http_date(os.time() + 20) } })
    local res, err = subs()
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.equal(1, #H.sleeps)
    assert.is_true(H.sleeps[1] > 15 and H.sleeps[1] <= 21, "slept " .. tostring(H.sleeps[1]))
  end)

  it("honours retry-after-ms and x-ms-retry-after-ms in milliseconds", function()
    fault({ host = "management.azure.com", path = "/subscriptions", status = 503, count = 1,
      headers = { ["retry-after-ms"] = "1500" } })
    assert(subs())
    fault({ host = "management.azure.com", path = "/subscriptions", status = 429, count = 1,
      headers = { ["x-ms-retry-after-ms"] = "2500" } })
    assert(subs())
    assert.same({ 1.5, 2.5 }, H.sleeps)
  end)

  it("refuses a Key Vault challenge whose resource is not a parent of the vault host", function()
    local vault = H.vault(p, seed)
    local host = vault:match("^https://(.*)$")
    fault({ host = host, path = "/keys", status = 401, headers = {
      ["WWW-Authenticate"] = 'Bearer authorization="https://login.windows.net/' .. seed.tenant_id
        .. '", resource="https://vault.attacker.example"' } })
    local seq = H.log_seq()
    local res, err = p:vault("GET", vault, "/keys")
    assert.is_nil(res)
    assert.equal("auth", err.kind)
    assert.equal("ChallengeResourceMismatch", err.code)
    assert.truthy(err.hint)
    -- no token was minted for the foreign resource
    for _, e in ipairs(H.log_entries(seq)) do
      assert.is_nil(e.path:find("/oauth2/", 1, true), "token request after a foreign challenge")
    end
  end)

  for _, outcome in ipairs({ "Failed", "Canceled" }) do
    it("turns an operation that ends " .. outcome .. " into a structured error", function()
      assert(p:arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/lro-edge",
        { api_version = "2021-04-01", body = { location = "westeurope" } }))
      H.control("POST", "config", { lro = { polls = 1, fail_next = 1, fail_status = outcome,
        fail_code = "ZoneCapacityExhausted", fail_message = "No capacity left in the zone." } })
      local path = "/subscriptions/" .. sub .. "/resourceGroups/lro-edge/providers/"
        .. "Microsoft.ContainerRegistry/registries/edge" .. outcome:lower() .. tostring(os.time() % 100000)
      local seen = {}
      local res, err = p:arm_lro("PUT", path, { api_version = "2025-04-01",
        body = { location = "westeurope", sku = { name = "Premium" } },
        progress = function(i) seen[#seen + 1] = i.state end })
      assert.is_nil(res)
      assert.equal("azure", err.kind)
      assert.equal("ZoneCapacityExhausted", err.code)
      assert.equal("No capacity left in the zone.", err.message)
      assert.equal(outcome, seen[#seen])
      -- the next operation is not forced
      local ok = p:arm_lro("PUT", path .. "b", { api_version = "2025-04-01",
        body = { location = "westeurope", sku = { name = "Premium" } } })
      assert.truthy(ok)
    end)
  end

  it("rejects fault headers it cannot send", function()
    local bad_name = { status = 429, headers = { ["Bad Name"] = "x" } }
    local res = H.control("POST", "faults", { rules = { bad_name } })
    assert.equal(400, res.status)
    res = H.control("POST", "faults", { rules = { { delay_ms = 1, headers = { ["X-A"] = "x" } } } })
    assert.equal(400, res.status)
    res = H.control("POST", "config", { lro = { fail_status = "Exploded" } })
    assert.equal(400, res.status)
  end)
end)
