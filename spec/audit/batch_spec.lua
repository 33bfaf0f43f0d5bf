-- p:arm_batch / p:send_batch / p:parallel against the emulator: every request takes the
-- ordinary path (token, retries honouring Retry-After, structured errors), in parallel.
local H = require("support.cmk_helper")

describe("pipeline batch", function()
  local p, sub

  setup(function()
    H.env()
    H.reset()
    p = H.pipeline({ sleep = function() end })
    sub = H.seed().subscription_id
  end)

  teardown(function()
    H.E.control("DELETE", "faults")
    H.E.assert_no_internal_errors()
    H.reset() -- leave the seeded state (and clock) to the next spec file
  end)

  local function rg_req(name)
    return { "GET", "/subscriptions/" .. sub .. "/resourcegroups" .. (name and ("/" .. name) or ""),
      api_version = "2021-04-01" }
  end

  it("sends many ARM requests and keeps their order", function()
    local reqs = {}
    for i = 1, 30 do reqs[i] = rg_req() end
    reqs[7] = rg_req("no-such-group")
    local results, errs = p:arm_batch(reqs, { concurrency = 8 })
    assert.equal(30, #results)
    for i = 1, 30 do
      if i == 7 then
        assert.is_false(results[i])
        assert.equal(404, errs[i].status)
        assert.equal("ResourceGroupNotFound", errs[i].code)
      else
        assert.equal(200, results[i].status)
        assert.truthy(results[i].request_id)
      end
    end
  end)

  it("retries throttled requests after their Retry-After, each on its own", function()
    H.E.control("POST", "faults", { rules = { { host = "management.azure.com",
      path = "/subscriptions/" .. sub .. "/resourcegroups", status = 429, retry_after = 1, count = 3 } } })
    local waits = {}
    local q = H.pipeline({ sleep = function(s) waits[#waits + 1] = s end })
    local results = q:arm_batch({ rg_req(), rg_req(), rg_req(), rg_req() }, { concurrency = 4 })
    local tries = 0
    for i = 1, 4 do
      assert.equal(200, results[i].status)
      tries = tries + results[i].attempts
    end
    assert.equal(7, tries)
    H.E.control("DELETE", "faults")
  end)

  it("runs multi-step tasks (ARM and Key Vault) with bounded concurrency", function()
    local tasks = {}
    for i = 1, 5 do
      tasks[i] = function(v)
        local a = assert(v:arm("GET", "/subscriptions/" .. sub, { api_version = "2022-12-01" }))
        local _, err = v:vault("GET", "https://nosuchvault" .. i .. ".vault.azure.net", "/keys")
        return a.json.subscriptionId, err and err.code
      end
    end
    local out = p:parallel(tasks, { concurrency = 2 })
    for i = 1, 5 do
      assert.equal(sub, out[i][1])
      assert.equal("VaultNotFound", out[i][2])
    end
  end)

  it("works on a transport without batch", function()
    local t = require("azcmk.transport.curl").new({ env = H.env() })
    local plain = { request = function(_, r) return t:request(r) end }
    local q = H.pipeline({ transport = plain })
    local results = q:arm_batch({ rg_req(), rg_req() })
    assert.equal(200, results[1].status)
    assert.equal(200, results[2].status)
  end)
end)
