-- Key Vault challenge flow against the emulator's Key Vault data plane. Pending until the
-- emulator serves Key Vault (its vault hosts answer 401 + WWW-Authenticate). The refusal of a
-- challenge naming a foreign resource cannot be produced by a well-behaved emulator; it is
-- covered by spec/unit/pipeline/pipeline_spec.lua and challenge_spec.lua.
local H = require("support.pipeline_helper")
local credential = require("azcmk.credential")

describe("Key Vault challenge flow against the emulator", function()
  local seed, lines, p, sub, vault_url
  setup(function() local _; _, seed = H.env(); sub = seed.subscription_id end)
  before_each(function()
    H.reset(); lines = {}
    p = H.pipeline({ lines = lines, credential = credential.client_secret({ tenant_id = seed.tenant_id,
      client_id = seed.owner.app_id, client_secret = seed.owner.client_secret }) })
  end)
  after_each(function() H.assert_no_secrets(lines) end)

  -- create a vault through ARM; returns its URL, or nil when the emulator cannot yet
  local function vault()
    local name = "pipekv" .. tostring(os.time() % 100000)
    local rg = "/subscriptions/" .. sub .. "/resourcegroups/pipe-kv"
    if not p:arm("PUT", rg, { api_version = "2021-04-01",
      body = { location = "westeurope" } }) then return nil end
    local res = p:arm_lro("PUT", rg .. "/providers/Microsoft.KeyVault/vaults/" .. name,
      { api_version = "2024-11-01",
      body = { location = "westeurope", properties = { tenantId = seed.tenant_id, sku = { family = "A",
        name = "standard" },
        enableRbacAuthorization = true, enableSoftDelete = true, enablePurgeProtection = true } } })
    if not res then return nil end
    local url = "https://" .. name .. ".vault.azure.net"
    local probe, e = p:send({ method = "GET", url = url .. "/keys", api_version = "2025-07-01",
      auth = false })
    if probe or not (e and e.status == 401) then return nil end   -- no challenge (yet)
    return url
  end

  it("elicits the challenge without body, verifies it, then sends the request with a vault token", function()
    vault_url = vault()
    if not vault_url then
      pending("needs the emulator's Key Vault (management plane + data plane with the 401 challenge)")
      return
    end
    local seq = H.log_seq()
    local res, err = p:vault("POST", vault_url, "/keys/pipe-key/create", { body = { kty = "RSA",
      key_size = 2048 } })
    -- access may be denied by RBAC (the owner has no data role); the flow is what we check
    assert.truthy(res or (err and err.status == 403))
    local log = H.log_entries(seq)
    local host = vault_url:match("^https://(.*)$")
    local statuses = {}
    for _, e in ipairs(log) do if e.host == host then statuses[#statuses + 1] = e.status end end
    assert.equal(401, statuses[1])
    assert.truthy(statuses[2] ~= 401)
    -- cached challenge: the next call goes straight with the token
    seq = H.log_seq()
    p:vault("GET", vault_url, "/keys")
    local n401 = 0
    for _, e in ipairs(H.log_entries(seq)) do if e.status == 401 then n401 = n401 + 1 end end
    assert.equal(0, n401)
  end)
end)
