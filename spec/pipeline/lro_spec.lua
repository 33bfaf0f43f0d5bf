-- azcmk.lro: the polling state machine over a scripted pipeline, then long-running operations
-- against the emulator's ARM (resource group delete: 202 + Location).
local H = require("support.pipeline_helper")

local lro = require("azcmk.lro")
local stub = require("support.stub_transport")

local fake_p = stub.pipeline

local ORIG = { method = "PUT", url = "https://management.azure.com/sub/r?api-version=1" }

describe("azcmk.lro", function()
  it("knows terminal states in any case", function()
    assert.equal("Succeeded", lro.terminal("succeeded"))
    assert.equal("Canceled", lro.terminal("CANCELED"))
    assert.is_nil(lro.terminal("Updating"))
  end)

  it("maps the initial status for body polling", function()
    assert.equal("InProgress", lro.initial_body_state({ status = 202 }))
    assert.equal("Succeeded", lro.initial_body_state({ status = 204 }))
    assert.equal("Creating", lro.initial_body_state({ status = 201,
      json = { properties = { provisioningState = "Creating" } } }))
    assert.equal("InProgress", lro.initial_body_state({ status = 201 }))
    assert.equal("Succeeded", lro.initial_body_state({ status = 200 }))
  end)

  it("prefers Azure-AsyncOperation, then Location, then provisioningState", function()
    assert.equal("async", (lro.strategy("PUT", { status = 201, headers = { ["azure-asyncoperation"] = "a",
      location = "l" } })))
    assert.equal("location", (lro.strategy("DELETE", { status = 202, headers = { location = "l" } })))
    assert.equal("body", (lro.strategy("PUT", { status = 201, headers = {},
      json = { properties = { provisioningState = "Creating" } } })))
    assert.equal("done", (lro.strategy("POST", { status = 200, headers = {} })))
  end)

  it("polls the operation with Retry-After, then GETs the resource", function()
    local p = fake_p({
      { status = 200, body = '{"status":"InProgress"}', headers = { ["retry-after"] = "2" } },
      { status = 200, body = '{"status":"Succeeded"}' },
      { status = 200, body = '{"name":"r","properties":{"provisioningState":"Succeeded"}}' },
    })
    local seen = {}
    local initial = { status = 201,
      headers = { ["azure-asyncoperation"] = "https://management.azure.com/op/1",
                                                ["retry-after"] = "1" } }
    local res = assert(lro.poll(p, initial, ORIG, { interval = 5,
      progress = function(i) seen[#seen + 1] = i.state end }))
    assert.equal("r", res.json.name)
    assert.same({ 1, 2 }, p.clock.sleeps)
    assert.same({ "InProgress", "Succeeded" }, seen)
    assert.equal("https://management.azure.com/op/1", p.calls[1].url)
    assert.equal(ORIG.url, p.calls[3].url)
  end)

  it("surfaces a failed operation as a structured error", function()
    local p = fake_p({ { status = 200,
      body = '{"status":"Failed","error":{"code":"KeyVaultAccessDenied","message":"no"}}' } })
    local res, err = lro.poll(p, { status = 202,
      headers = { ["azure-asyncoperation"] = "https://management.azure.com/op" } },
                              ORIG, { interval = 0 })
    assert.is_nil(res)
    assert.equal("azure", err.kind); assert.equal("KeyVaultAccessDenied", err.code); assert.equal("no",
      err.message)
  end)

  it("times out", function()
    local p = fake_p({ { status = 202, headers = { location = "https://management.azure.com/op" } } })
    local res, err = lro.poll(p, { status = 202, headers = { location = "https://management.azure.com/op" } },
                              { method = "DELETE", url = ORIG.url }, { interval = 10, timeout = 35 })
    assert.is_nil(res)
    assert.equal("timeout", err.kind); assert.equal("LroTimeout", err.code)
    assert.equal(3, #p.calls)
  end)

  it("refuses polling URLs on another host", function()
    local p = fake_p({ { status = 200 } })
    local res, err = lro.poll(p, { status = 202,
      headers = { ["azure-asyncoperation"] = "https://evil.example/op" } },
                              ORIG, { interval = 0 })
    assert.is_nil(res); assert.equal("UntrustedPollingUrl", err.code)
    assert.equal(0, #p.calls)
  end)

  it("follows provisioningState on the resource", function()
    local p = fake_p({ { status = 200, body = '{"properties":{"provisioningState":"Updating"}}' },
                       { status = 200, body = '{"properties":{"provisioningState":"Canceled"}}' } })
    local res, err = lro.poll(p, { status = 201, headers = {},
      json = { properties = { provisioningState = "Creating" } } },
                              ORIG, { interval = 1 })
    assert.is_nil(res); assert.equal("OperationCanceled", err.code)
  end)
end)

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
