-- Key Vault challenge flow against the emulator's Key Vault data plane (its vault hosts answer
-- 401 + WWW-Authenticate). A challenge naming a foreign resource is produced with a fault rule
-- carrying its own WWW-Authenticate header (spec/pipeline/edges_spec.lua).
local H = require("support.pipeline_helper")

describe("Key Vault challenge flow against the emulator", function()
  local seed, lines, p, vault_url
  setup(function() local _; _, seed = H.env() end)
  teardown(function() H.reset() end)   -- leave the shared emulator as seeded
  before_each(function()
    H.reset(); lines = {}
    p = H.pipeline({ lines = lines, credential = H.client_secret(seed) })
  end)
  after_each(function() H.assert_no_secrets(lines) end)

  it("elicits the challenge without body, verifies it, then sends the request with a vault token", function()
    vault_url = H.vault(p, seed)
    local seq = H.log_seq()
    local token_path = "/" .. seed.tenant_id .. "/oauth2/v2.0/token"
    local res, err = p:vault("POST", vault_url, "/keys/pipe-key/create", { body = { kty = "RSA",
      key_size = 2048 } })
    assert.is_nil(err)
    assert.truthy(res.json.key.kid)
    local log = H.log_entries(seq)
    local host = vault_url:match("^https://(.*)$")
    local statuses = {}
    for _, e in ipairs(log) do if e.host == host then statuses[#statuses + 1] = e.status end end
    assert.equal(401, statuses[1])        -- the bodiless, token-less probe
    assert.equal(200, statuses[2])        -- the real request with a vault token
    assert.equal(1, H.count(log, "login.microsoftonline.com", token_path))
    -- cached challenge: the next call goes straight with the token
    seq = H.log_seq()
    p:vault("GET", vault_url, "/keys")
    local n401 = 0
    for _, e in ipairs(H.log_entries(seq)) do if e.status == 401 then n401 = n401 + 1 end end
    assert.equal(0, n401)
  end)

  it("renews an expired vault token once on the vault's 401", function()
    vault_url = H.vault(p, seed)
    assert(p:vault("GET", vault_url, "/keys"))
    H.control("POST", "clock", { advance = 7200 })
    local seq = H.log_seq()
    local res, err = p:vault("GET", vault_url, "/keys")
    assert.is_nil(err)
    assert.equal(200, res.status)
    local log = H.log_entries(seq)
    assert.equal(1, H.count(log, "login.microsoftonline.com", "/" .. seed.tenant_id .. "/oauth2/v2.0/token"))
    local host = vault_url:match("^https://(.*)$")
    local statuses = {}
    for _, e in ipairs(log) do if e.host == host then statuses[#statuses + 1] = e.status end end
    assert.same({ 401, 200 }, statuses)
  end)
end)
