-- azcmk.paging: the nextLink iterator over a scripted pipeline, then paging against the emulator.
local H = require("support.pipeline_helper")

local paging = require("azcmk.paging")
local stub = require("support.stub_transport")

local fake_p = stub.pipeline


describe("azcmk.paging", function()
  it("iterates items across pages and stops at the last", function()
    local p = fake_p({
      { status = 200,
        body = '{"value":[1,2],"nextLink":"https://management.azure.com/l?api-version=1&$skiptoken=a"}' },
      { status = 200,
        body = '{"value":[3],"nextLink":"https://management.azure.com/l?api-version=1&$skiptoken=b"}' },
      { status = 200, body = '{"value":[]}' },
    })
    local got = {}
    for item, err in paging.items(p, { method = "GET", url = "https://management.azure.com/l",
      api_version = "1" }) do
      assert.is_nil(err); got[#got + 1] = item
    end
    assert.same({ 1, 2, 3 }, got)
    assert.equal(3, #p.calls)
    assert.is_nil(p.calls[2].api_version)     -- nextLink already carries it
  end)

  it("yields false, err on failure and refuses foreign nextLinks", function()
    local p = fake_p({ { status = 200, body = '{"value":[1],"nextLink":"https://evil.example/next"}' } })
    local got, errs = {}, {}
    for item, err in paging.items(p, { method = "GET", url = "https://management.azure.com/l" }) do
      if item then got[#got + 1] = item else errs[#errs + 1] = err end
    end
    assert.same({ 1 }, got)
    assert.equal(1, #errs); assert.equal("UntrustedNextLink", errs[1].code)
  end)
end)
describe("paging against the emulator", function()
  local seed, lines, p, sub
  setup(function() local _; _, seed = H.env(); sub = seed.subscription_id end)
  teardown(function() H.reset() end)   -- leave the shared emulator as seeded
  before_each(function()
    H.reset(); lines = {}
    p = H.pipeline({ lines = lines, credential = H.client_secret(seed) })
  end)
  after_each(function() H.assert_no_secrets(lines) end)

  it("iterates an ARM list", function()
    for i = 1, 3 do
      assert(p:arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/page-rg" .. i,
        { api_version = "2021-04-01", body = { location = "westeurope" } }))
    end
    local names = {}
    for item, err in p:arm_pages("/subscriptions/" .. sub .. "/resourcegroups",
      { api_version = "2021-04-01" }) do
      assert.is_nil(err)
      assert.truthy(item)
      names[item.name] = true
    end
    for i = 1, 3 do assert.is_true(names["page-rg" .. i]) end
  end)

  it("follows nextLink across pages (more registries than one page holds)", function()
    local rg = "/subscriptions/" .. sub .. "/resourceGroups/page-acr"
    assert(p:arm("PUT", rg, { api_version = "2021-04-01", body = { location = "westeurope" } }))
    local n = 105
    for i = 1, n do
      assert(p:arm("PUT", rg .. "/providers/Microsoft.ContainerRegistry/registries/pagereg" .. i,
        { api_version = "2025-04-01", body = { location = "westeurope", sku = { name = "Basic" } } }))
    end
    local seq = H.log_seq()
    local seen, count = {}, 0
    for item, err in p:arm_pages(rg .. "/providers/Microsoft.ContainerRegistry/registries",
                                 { api_version = "2025-04-01" }) do
      assert.is_nil(err)
      assert.is_nil(seen[item.name])
      seen[item.name] = true
      count = count + 1
    end
    assert.equal(n, count)
    assert.equal(2, H.count(H.log_entries(seq), "management.azure.com",
                            rg .. "/providers/Microsoft.ContainerRegistry/registries", "GET"))
  end)

  it("yields false, err once when a page fails", function()
    H.control("POST", "faults", { rules = { { host = "management.azure.com", path = "/subscriptions/" .. sub
      .. "/resourcegroups", status = 404, code = "SubscriptionNotFound", message = "gone", count = 1 } } })
    local items, errs = 0, {}
    for item, err in p:arm_pages("/subscriptions/" .. sub .. "/resourcegroups",
      { api_version = "2021-04-01" }) do
      if item then items = items + 1 else errs[#errs + 1] = err end
    end
    assert.equal(0, items)
    assert.equal(1, #errs)
    assert.equal("SubscriptionNotFound", errs[1].code)
  end)

  it("follows nextLink across Key Vault pages (maxresults)", function()
    local vault = H.vault(p, seed)
    for i = 1, 3 do
      assert(p:vault("POST", vault, "/keys/pk" .. i .. "/create", { body = { kty = "RSA",
        key_size = 2048 } }))
    end
    local n = 0
    for item, err in p:vault_pages(vault, "/keys", { query = { maxresults = 1 } }) do
      assert.is_nil(err); assert.truthy(item); n = n + 1
    end
    assert.equal(3, n)
  end)
end)
