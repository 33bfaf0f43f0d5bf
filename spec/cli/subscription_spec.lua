-- --subscription by name or id (as az): a name is looked up among the subscriptions the caller
-- sees; none or several is a clear error with the choices.
local H = require("support.cmk_helper")
local sub = require("azcmk.cli.subscription")

describe("azcmk.cli.subscription", function()
  local LIST = { { subscriptionId = "11111111-1111-1111-1111-111111111111", displayName = "Prod" },
    { subscriptionId = "22222222-2222-2222-2222-222222222222", displayName = "Dev" },
    { subscriptionId = "33333333-3333-3333-3333-333333333333", displayName = "dev" } }

  it("picks the one subscription with that name, case-insensitively", function()
    assert.equal("11111111-1111-1111-1111-111111111111", sub.pick(LIST, "prod"))
  end)

  it("refuses a name that matches several, naming them", function()
    local id, err = sub.pick(LIST, "Dev")
    assert.is_nil(id)
    assert.equal("AmbiguousSubscription", err.code)
    assert.equal("subscription", err.param)
    assert.matches("2 subscriptions are named 'Dev'", err.message)
    assert.matches("Dev %(2222.*dev %(3333", err.hint)
  end)

  it("refuses a name that matches none, with the choices", function()
    local id, err = sub.pick(LIST, "test")
    assert.is_nil(id)
    assert.equal("SubscriptionNotFound", err.code)
    assert.equal("input", err.kind)
    assert.matches("Prod %(1111", err.hint)
  end)
end)

describe("azcmk --subscription NAME_OR_ID", function()
  local subs, s

  setup(function()
    H.start()
    subs = H.E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01" }).json.value
    s = H.setup()
  end)

  teardown(function() H.done() end)

  local function find(id)
    for _, x in ipairs(subs) do if x.subscriptionId == id then return x end end
  end

  it("a subscription's display name works like its id", function()
    local seed = H.seed()
    local name = find(seed.subscription_id).displayName
    assert.truthy(name and not sub.is_id(name))
    local r = H.cli({ "show", "-n", s.registry.name, "--subscription", name:upper(), "--query", "status" },
      { AZURE_SUBSCRIPTION_ID = false })
    assert.equal(0, r.code, r.stderr)
    assert.equal('"enabled"\n', r.stdout)
    local second = find(seed.subscription2_id or "7e4a1b2c-9d8e-4f70-8a1b-2c3d4e5f6a7b").displayName
    r = H.cli({ "audit", "--subscription", second, "--query", "subscriptions[].id", "-o", "tsv" })
    assert.equal(0, r.code, r.stderr)
    assert.equal((seed.subscription2_id or "7e4a1b2c-9d8e-4f70-8a1b-2c3d4e5f6a7b") .. "\n", r.stdout)
  end)

  it("an unknown name: exit 2, one line with the choices", function()
    local r = H.cli({ "show", "-n", s.registry.name, "--subscription", "no such subscription" })
    assert.equal(2, r.code)
    assert.matches("^azcmk show: no subscription named 'no such subscription' among the %d+ the caller sees "
      .. "%[SubscriptionNotFound, %-%-subscription%] %-%- next: pass one of: [^\n]+\n$", r.stderr)
    for _, x in ipairs(subs) do assert.truthy(r.stderr:find(x.subscriptionId, 1, true)) end
    r = H.cli({ "audit", "--subscription", "no such subscription" })
    assert.equal(2, r.code)
    assert.matches("SubscriptionNotFound", r.stderr)
  end)
end)
