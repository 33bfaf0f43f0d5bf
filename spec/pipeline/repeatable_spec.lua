-- azcmk.repeatable: which requests may be sent again when an earlier try's outcome is unknown,
-- and which failures leave a write's outcome unknown.
local repeatable = require("azcmk.repeatable")
local contract = require("azcmk.transport.contract")

local ARM = "https://management.azure.com"
local KV = "https://kv1.vault.azure.net"
local SUB = "/subscriptions/00000000-0000-0000-0000-000000000001"
local RG = SUB .. "/resourceGroups/rg"

local function req(method, kind, u)
  return { method = method, host_kind = kind, url = u }
end

describe("azcmk.repeatable", function()
  -- { method, host kind, url, repeatable }
  local CASES = {
    { "GET", "arm", ARM .. RG, true },
    { "HEAD", "arm", ARM .. RG, true },
    { "PUT", "arm", ARM .. RG .. "/providers/Microsoft.KeyVault/vaults/kv1", true },
    { "PATCH", "arm", ARM .. RG .. "/providers/Microsoft.ContainerRegistry/registries/r1", true },
    { "DELETE", "arm", ARM .. RG .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1", true },
    { "PUT", "arm", ARM .. RG .. "/providers/Microsoft.KeyVault/vaults/kv1/accessPolicies/add", true },
    { "PUT", "arm", ARM .. RG .. "/providers/Microsoft.KeyVault/vaults/kv1/providers/Microsoft.Authorization/"
      .. "roleAssignments/0b7d6d1e-4c1e-4a59-9b0a-1f2e3d4c5b6a", true },
    { "POST", "arm", ARM .. RG .. "/providers/Microsoft.ContainerRegistry/registries/r1/listCredentials",
      true },
    { "POST", "arm", ARM .. SUB .. "/providers/Microsoft.ContainerRegistry/checkNameAvailability", true },
    { "POST", "arm", ARM .. RG .. "/providers/Microsoft.Resources/deployments/d1/validate", true },
    { "POST", "arm", ARM .. SUB .. "/providers/Microsoft.KeyVault/register", true },
    { "POST", "arm", ARM .. RG .. "/providers/Microsoft.ContainerRegistry/registries/r1/regenerateCredential",
      false },
    { "POST", "arm", ARM .. RG .. "/providers/Microsoft.Fake/doThing", false },
    { "POST", "vault", KV .. "/keys/cmk/create", false },
    { "POST", "vault", KV .. "/keys/cmk/rotate", false },
    { "PUT", "vault", KV .. "/keys/cmk", false },
    { "PUT", "vault", KV .. "/secrets/s1", false },
    { "POST", "vault", KV .. "/deletedkeys/cmk/recover", false },
    { "POST", "vault", KV .. "/keys/restore", false },
    { "PATCH", "vault", KV .. "/keys/cmk/0123456789abcdef", true },
    { "PUT", "vault", KV .. "/keys/cmk/rotationpolicy", true },
    { "DELETE", "vault", KV .. "/keys/cmk", true },
    { "POST", "vault", KV .. "/keys/cmk/0123456789abcdef/wrapkey", true },
    { "POST", "vault", KV .. "/keys/cmk/0123456789abcdef/unwrapkey", true },
    { "POST", "vault", KV .. "/keys/cmk/backup", true },
    { "POST", "authority", "https://login.microsoftonline.com/t1/oauth2/v2.0/token", true },
    { "POST", nil, "https://login.microsoftonline.com/t1/oauth2/v2.0/token", true },
  }
  for _, c in ipairs(CASES) do
    it(c[1] .. " " .. c[3]:gsub("^https://[^/]+", "") .. " is " .. (c[4] and "" or "not ") .. "repeatable",
      function()
        local ok, why = repeatable.classify(req(c[1], c[2], c[3]))
        assert.equal(c[4], ok)
        assert.is_string(why)
      end)
  end

  it("takes the caller's own mark first", function()
    assert.is_true((repeatable.classify({ method = "POST", host_kind = "vault", url = KV .. "/keys/k/create",
      idempotent = true })))
    assert.is_false((repeatable.classify({ method = "PUT", host_kind = "arm", url = ARM .. RG,
      idempotent = false })))
  end)

  it("knows the failures that prove a try was not applied", function()
    assert.is_true(repeatable.not_applied(nil, contract.error("ConnectFailed", "refused")))
    assert.is_true(repeatable.not_applied(nil, contract.error("TLSHandshakeFailed", "tls")))
    assert.is_true(repeatable.not_applied({ status = 429, headers = {} }))
    assert.is_false(repeatable.not_applied(nil, contract.error("ReceiveFailed", "stream reset")))
    assert.is_false(repeatable.not_applied(nil, contract.error("Timeout", "slow")))
    assert.is_false(repeatable.not_applied({ status = 503, headers = {} }))
    assert.is_false(repeatable.not_applied({ status = 500, headers = {} }))
  end)

  it("calls a failure ambiguous when the write may have been applied", function()
    assert.is_true(repeatable.ambiguous(contract.error("ReceiveFailed", "stream reset")))
    assert.is_true(repeatable.ambiguous(contract.error("EmptyReply", "closed")))
    assert.is_true(repeatable.ambiguous(contract.error("Timeout", "slow")))
    assert.is_true(repeatable.ambiguous({ kind = "azure", status = 500 }))
    assert.is_true(repeatable.ambiguous({ kind = "azure", status = 409, outcome = "unknown" }))
    assert.is_false(repeatable.ambiguous(contract.error("ConnectFailed", "refused")))
    assert.is_false(repeatable.ambiguous({ kind = "azure", status = 409, code = "Conflict" }))
    assert.is_false(repeatable.ambiguous({ kind = "azure", status = 403 }))
    assert.is_false(repeatable.ambiguous(nil))
  end)
end)
