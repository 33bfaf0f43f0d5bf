-- Structured errors from the emulator's real error bodies (ARM, Key Vault, Entra ID).
local H = require("support.pipeline_helper")
local credential = require("azcmk.credential")
local errors = require("azcmk.errors")

describe("structured errors against the emulator", function()
  local seed, lines, owner, noaccess
  setup(function() local _; _, seed = H.env() end)
  teardown(function() H.reset() end)   -- leave the shared emulator as seeded
  before_each(function()
    H.reset(); lines = {}
    owner = H.pipeline({ lines = lines, credential = H.client_secret(seed) })
    noaccess = H.pipeline({ lines = lines, credential = H.client_secret(seed, "noaccess") })
  end)
  after_each(function() H.assert_no_secrets(lines) end)

  it("ARM 403 AuthorizationFailed with request id and hint", function()
    local res, err = noaccess:arm("GET", "/subscriptions/" .. seed.subscription_id .. "/resourcegroups",
      { api_version = "2021-04-01" })
    assert.is_nil(res)
    assert.equal("azure", err.kind)
    assert.equal(403, err.status)
    assert.equal("AuthorizationFailed", err.code)
    assert.truthy(err.request_id)
    assert.truthy(err.hint:find("RBAC", 1, true))
  end)

  it("ARM 404 ResourceGroupNotFound", function()
    local _, err = owner:arm("GET", "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/nope-rg",
      { api_version = "2021-04-01" })
    assert.equal("ResourceGroupNotFound", err.code)
    assert.is_true(errors.is(err, 404))
    assert.truthy(err.hint)
  end)

  it("Entra ID: unknown client is AADSTS700016", function()
    local p = H.pipeline({ lines = lines, credential = credential.client_secret({ tenant_id = seed.tenant_id,
      client_id = "00000000-0000-4000-8000-000000000001", client_secret = "some-secret-value" }) })
    local _, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
    assert.equal("auth", err.kind)
    assert.equal("AADSTS700016", err.code)
    assert.truthy(err.hint)
  end)

  it("Key Vault: a missing key is KeyNotFound, a denied caller ForbiddenByPolicy", function()
    local vault = H.vault(owner, seed)
    local _, err = owner:vault("GET", vault, "/keys/nokey")
    assert.equal("azure", err.kind)
    assert.equal("KeyNotFound", err.code)
    assert.truthy(err.hint:find("recover", 1, true))
    local _, e2 = noaccess:vault("GET", vault, "/keys")
    assert.equal(403, e2.status)
    assert.equal("ForbiddenByPolicy", e2.code)
    assert.is_true(errors.is(e2, "Forbidden"))
    assert.truthy(e2.hint:find("access policy", 1, true))
  end)
end)
