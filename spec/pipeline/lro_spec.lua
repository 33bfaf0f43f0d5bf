-- Long-running operations against the emulator's ARM (resource group delete: 202 + Location).
local H = require("support.pipeline_helper")

describe("long-running operations against the emulator", function()
  local seed, lines, p, sub
  setup(function() local _; _, seed = H.env(); sub = seed.subscription_id end)
  teardown(function() H.reset() end)   -- leave the shared emulator as seeded
  before_each(function()
    H.reset(); lines = {}; H.sleeps = {}
    p = H.pipeline({ lines = lines, credential = H.client_secret(seed) })
  end)
  after_each(function() H.control("DELETE", "faults"); H.assert_no_secrets(lines) end)

  local function make_rg(name)
    assert(p:arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/" .. name,
      { api_version = "2021-04-01", body = { location = "westeurope" } }))
  end

  it("succeeds: polls Location with the service's Retry-After and reports progress", function()
    make_rg("lro-ok")
    H.control("POST", "config", { lro = { polls = 3, seconds = 0, retry_after = 2 } })
    local seen = {}
    local res, err = p:arm_lro("DELETE", "/subscriptions/" .. sub .. "/resourcegroups/lro-ok",
      { api_version = "2021-04-01", progress = function(i) seen[#seen + 1] = i.state end })
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.same({ "InProgress", "InProgress", "Succeeded" }, seen)
    assert.same({ 2, 2, 2 }, H.sleeps)
    local _, gerr = p:arm("GET", "/subscriptions/" .. sub .. "/resourcegroups/lro-ok",
      { api_version = "2021-04-01" })
    assert.equal("ResourceGroupNotFound", gerr.code)
  end)

  it("succeeds: Azure-AsyncOperation polling, then the final GET of the created resource", function()
    make_rg("lro-acr")
    H.control("POST", "config", { lro = { polls = 2, seconds = 0, retry_after = 1 } })
    local path = "/subscriptions/" .. sub .. "/resourceGroups/lro-acr/providers/Microsoft.ContainerRegistry/"
      .. "registries/pipelro" .. tostring(os.time() % 100000)
    local seq = H.log_seq()
    local res, err = p:arm_lro("PUT", path, { api_version = "2025-04-01",
      body = { location = "westeurope", sku = { name = "Premium" } } })
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.equal("Succeeded", res.json.properties.provisioningState)
    assert.truthy(H.count(H.log_entries(seq), "management.azure.com", path .. "/operationStatuses/") >= 2)
  end)

  it("fails with a structured error when polling fails", function()
    make_rg("lro-fail")
    H.control("POST", "config", { lro = { polls = 2, seconds = 0, retry_after = 1 } })
    H.control("POST", "faults", { rules = { { host = "management.azure.com", path = "/subscriptions/" .. sub
      .. "/operationResults", status = 500, code = "InternalServerError", message = "boom", count = 10 } } })
    local res, err = p:arm_lro("DELETE", "/subscriptions/" .. sub .. "/resourcegroups/lro-fail",
      { api_version = "2021-04-01" })
    assert.is_nil(res)
    assert.equal("azure", err.kind)
    assert.equal(500, err.status)
    assert.equal("InternalServerError", err.code)
    assert.truthy(err.request_id)
  end)

  it("times out on the pipeline's clock, without waiting in real time", function()
    make_rg("lro-slow")
    H.control("POST", "config", { lro = { polls = 1000, seconds = 0, retry_after = 10 } })
    local t = os.time()
    local slow = H.pipeline({ lines = lines, now = function() return t end,
      sleep = function(s) t = t + s end,
      credential = H.client_secret(seed) })
    local res, err = slow:arm_lro("DELETE", "/subscriptions/" .. sub .. "/resourcegroups/lro-slow",
      { api_version = "2021-04-01", timeout = 45 })
    assert.is_nil(res)
    assert.equal("timeout", err.kind)
    assert.equal("LroTimeout", err.code)
    assert.truthy(err.hint)
  end)
end)
