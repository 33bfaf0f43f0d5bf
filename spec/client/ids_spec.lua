-- Names and identifiers, checked before anything is sent (no emulator needed).
local ids = require("azcmk.client.ids")
local cloud = require("azcmk.cloud")

describe("azcmk.client.ids", function()
  local AZ = cloud.profiles.AzureCloud

  it("parses versioned and versionless key ids", function()
    local kid = "https://myvault.vault.azure.net/keys/mykey/0123456789abcdef0123456789abcdef"
    local k = assert(ids.parse_key_id(kid, AZ))
    assert.equal("myvault", k.vault)
    assert.equal("mykey", k.name)
    assert.equal("0123456789abcdef0123456789abcdef", k.version)
    assert.equal("https://myvault.vault.azure.net/keys/mykey", k.versionless)
    local v = assert(ids.parse_key_id("https://myvault.vault.azure.net/keys/mykey", AZ))
    assert.is_nil(v.version)
    assert.equal("https://myvault.vault.azure.net/keys/mykey", v.id)
  end)

  it("refuses key ids of the wrong shape, with a hint", function()
    for _, bad in ipairs({ "http://myvault.vault.azure.net/keys/k",
      "https://myvault.vault.azure.net/secrets/s",
      "https://myvault.vault.azure.net/keys/", "https://myvault.vault.azure.net/keys/k/v/x",
      "https://myvault.vault.azure.net/keys/k_1", "https://myvault.vault.azure.net/keys/k/not-hex",
      "https://evil.example.com/keys/k", "not a url" }) do
      local k, err = ids.parse_key_id(bad, AZ)
      assert.is_nil(k, bad)
      assert.equal("input", err.kind)
      assert.matches("InvalidKeyId", err.code)
      assert.truthy(err.hint)
    end
  end)

  it("refuses a key of another cloud's vault host and names that cloud", function()
    local k, err = ids.parse_key_id("https://myvault.vault.azure.cn/keys/k", AZ)
    assert.is_nil(k)
    assert.equal("KeyVaultInOtherCloud", err.code)
    assert.matches("AzureChinaCloud", err.message)
    assert.matches("AZURE_CLOUD=AzureChinaCloud", err.hint)
    assert.truthy(ids.parse_key_id("https://myvault.vault.azure.cn/keys/k", cloud.profiles.AzureChinaCloud))
  end)

  it("validates resource names like Azure", function()
    assert.truthy(ids.check_registry_name("myRegistry01"))
    for _, n in ipairs({ "abcd", string.rep("a", 51), "my-reg", "my_reg", "" }) do
      local ok, err = ids.check_registry_name(n)
      assert.is_nil(ok, n)
      assert.equal("input", err.kind)
    end
    assert.truthy(ids.check_vault_name("kv-1"))
    for _, n in ipairs({ "kv", "1kv", "kv-", "k--v", string.rep("a", 25), "kv_1" }) do
      assert.is_nil((ids.check_vault_name(n)), n)
    end
    assert.truthy(ids.check_key_name("my-key-1"))
    assert.is_nil((ids.check_key_name("my_key")))
    assert.is_nil((ids.check_key_name(string.rep("k", 128))))
    assert.truthy(ids.check_resource_group("my.rg_(1)"))
    assert.is_nil((ids.check_resource_group("rg.")))
    assert.is_nil((ids.check_resource_group("rg/x")))
    assert.is_nil((ids.check_resource_group(string.rep("r", 91))))
  end)

  it("takes identity values as the Azure CLI does", function()
    assert.same({ kind = "system", value = "system" }, ids.parse_identity("[system]"))
    assert.equal("client_id", ids.parse_identity("0F6A2B3C-4D5E-4F70-8A9B-0C1D2E3F4A5B").kind)
    local r = ids.parse_identity("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
      .. "userAssignedIdentities/id1")
    assert.equal("id", r.kind)
    assert.equal("name", ids.parse_identity("my-identity").kind)
    local bad, err = ids.parse_identity("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Foo/bars/x")
    assert.is_nil(bad)
    assert.equal("InvalidIdentity", err.code)
  end)
  it("builds the ids and URLs a plan names, which the parsers read back", function()
    local sub = "0f6a2b3c-4d5e-4f70-8a9b-0c1d2e3f4a5b"
    local vid = ids.resource_id(sub, "rg1", "vault", "kv1")
    assert.equal("/subscriptions/" .. sub .. "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1",
      vid)
    local parsed = ids.parse_resource_id(vid)
    assert.equal("kv1", parsed.name)
    assert.equal("Microsoft.KeyVault/vaults", parsed.type)
    assert.equal("rg1", ids.parse_resource_id(ids.resource_id(sub, "rg1", "registry", "r1")).resource_group)
    assert.equal("/subscriptions/" .. sub .. "/resourceGroups/rg1", ids.resource_group_id(sub, "rg1"))
    assert.equal(vid .. "/providers/Microsoft.Authorization/roleAssignments/...", ids.role_assignment_id(vid))
    assert.equal(vid .. "/providers/Microsoft.Authorization/roleAssignments",
      ids.role_assignment_id(vid, false))
    assert.equal(vid .. "/accessPolicies/add", ids.access_policy_path(vid, "add"))
    local kurl = ids.key_url("https://kv1.vault.azure.net/", "k1")
    assert.equal("https://kv1.vault.azure.net/keys/k1", kurl)
    assert.equal("k1", ids.parse_key_id(kurl).name)
    assert.equal("https://kv1.vault.azure.net/keys/k1/create",
      ids.key_url("https://kv1.vault.azure.net", "k1", "create"))
    assert.equal("https://kv1.vault.azure.net/deletedkeys/k1/recover",
      ids.deleted_key_url("https://kv1.vault.azure.net", "k1", "recover"))
    assert.is_true(ids.looks_like_key_id(kurl))
    assert.is_false(ids.looks_like_key_id("https://example.com/other"))
  end)
  it("names the option a bad value came from (param), and never a command-line flag", function()
    local _, err = ids.check_registry_name("a-b")
    assert.equal("registry", err.param)
    _, err = ids.check_registry_name("", "name")
    assert.equal("name", err.param)
    assert.matches("`name`", err.hint)
    _, err = ids.check_vault_name("")
    assert.equal("vault", err.param)
    _, err = ids.parse_key_id("http://kv1.vault.azure.net/keys/k")
    assert.equal("key_id", err.param)
    for _, e in ipairs({ select(2, ids.check_key_name("")), select(2, ids.check_resource_group("")),
      select(2, ids.check_location("?")), select(2, ids.parse_key_id("x")) }) do
      assert.is_nil((e.message .. " " .. tostring(e.hint)):find("%-%-%a"), e.message)
    end
  end)
end)
