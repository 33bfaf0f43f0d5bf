local challenge = require("azcmk.challenge")

describe("azcmk.challenge", function()
  it("parses scheme and key=value pairs", function()
    local c = assert(challenge.parse('Bearer authorization="https://login.windows.net/72f988bf-86f1", '
      .. 'resource="https://vault.azure.net"'))
    assert.equal("Bearer", c.scheme)
    assert.equal("https://login.windows.net/72f988bf-86f1", c.params.authorization)
    assert.equal("https://vault.azure.net", c.params.resource)
    c = assert(challenge.parse('Bearer authorization_uri=https://login.microsoftonline.com/t1,'
      .. 'scope="a b",x="q\\"d"'))
    assert.equal("https://login.microsoftonline.com/t1", c.params.authorization_uri)
    assert.equal("a b", c.params.scope)
    assert.equal('q"d', c.params.x)
    assert.is_nil((challenge.parse("")))
    assert.is_nil((challenge.parse('Bearer a="unterminated')))
  end)

  it("derives tenant and scope, resource or scope", function()
    local d = assert(challenge.discover('Bearer authorization="https://login.windows.net/tenant-1", '
      .. 'resource="https://vault.azure.net"', "myvault.vault.azure.net"))
    assert.equal("tenant-1", d.tenant)
    assert.equal("https://vault.azure.net/.default", d.scope)
    d = assert(challenge.discover('Bearer authorization_uri='
      .. '"https://login.microsoftonline.com/t2/oauth2/authorize", '
      .. 'scope="https://vault.azure.net/.default"', "kv.vault.azure.net"))
    assert.equal("t2", d.tenant)
    assert.equal("https://vault.azure.net/.default", d.scope)
  end)

  it("refuses a resource that is not a parent domain of the vault host", function()
    for _, res in ipairs({ "https://management.azure.com", "https://evil.example",
      "https://myvault.vault.azure.net",
                           "https://ault.azure.net" }) do
      local d, err = challenge.discover('Bearer authorization="https://login.windows.net/t", resource="' ..
        res .. '"',
                                        "myvault.vault.azure.net")
      assert.is_nil(d, res)
      assert.equal("auth", err.kind)
      assert.equal("ChallengeResourceMismatch", err.code)
      assert.truthy(err.hint)
    end
    assert.is_true(challenge.verify("https://vault.azure.net", "myvault.vault.azure.net"))
    assert.is_true(challenge.verify("https://managedhsm.azure.net", "hsm1.managedhsm.azure.net"))
    -- only the immediate parent: a grand-parent domain would mint tokens for all of azure.net
    for _, res in ipairs({ "https://azure.net", "https://net", "https://vault.azure.net" }) do
      assert.is_nil((challenge.verify(res, "a.b.vault.azure.net")))
    end
    assert.is_nil((challenge.verify("https://azure.net", "myvault.vault.azure.net")))
  end)

  it("rejects malformed challenges", function()
    local cases = {
      'Bearer resource="https://vault.azure.net"',                                   -- no authority
      'Bearer authorization="http://login.windows.net/t", resource="https://vault.azure.net"',  -- not https
      'Bearer authorization="https://login.windows.net/t%2F..", resource="https://vault.azure.net"',
      'Bearer authorization="https://login.windows.net/t"',                          -- no resource
      'Basic realm="x"',
    }
    for _, h in ipairs(cases) do
      local d, err = challenge.discover(h, "kv.vault.azure.net")
      assert.is_nil(d, h)
      assert.equal("auth", err.kind)
    end
  end)
end)
