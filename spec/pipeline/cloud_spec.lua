-- azcmk.cloud: the profiles and host classes (no network), then sovereign cloud profiles end
-- to end against the emulator: the credential talks to the cloud's authority, the token is
-- for the cloud's ARM scope, and tokens never go to another cloud's hosts.
local H = require("support.pipeline_helper")
local cloud = require("azcmk.cloud")

local function env(t) return function(k) return t[k] end end

describe("azcmk.cloud", function()
  it("has the three sovereign profiles", function()
    local p = cloud.get("AzureCloud")
    assert.equal("https://management.azure.com", p.arm_endpoint)
    assert.equal("https://management.azure.com/.default", p.arm_scope)
    assert.equal(".vault.azure.net", p.vault_suffix)
    assert.equal("https://vault.azure.net/.default", p.vault_scope)
    assert.equal(".azurecr.io", p.acr_suffix)
    local cn = cloud.get("azurechinacloud")
    assert.equal("https://login.chinacloudapi.cn", cn.authority_host)
    assert.equal(".vault.azure.cn", cn.vault_suffix)
    local us = cloud.get("AzureUSGovernment")
    assert.equal("https://login.microsoftonline.us", us.authority_host)
    assert.equal(".azurecr.us", us.acr_suffix)
    assert.is_nil((cloud.get("Nowhere")))
  end)

  it("selects by AZURE_CLOUD and AZURE_AUTHORITY_HOST (bare host gets https)", function()
    local p = cloud.from_env({ getenv = env({ AZURE_CLOUD = "AzureUSGovernment" }) })
    assert.equal("AzureUSGovernment", p.name)
    p = cloud.from_env({ getenv = env({ AZURE_AUTHORITY_HOST = "login.example.test/" }) })
    assert.equal("https://login.example.test", p.authority_host)
    local bad, err = cloud.from_env({ getenv = env({ AZURE_AUTHORITY_HOST = "http://login.example.test" }) })
    assert.is_nil(bad); assert.truthy(err:find("https", 1, true))
    p = cloud.from_env({ cloud = "AzureChinaCloud", getenv = env({ AZURE_CLOUD = "AzureUSGovernment" }) })
    assert.equal("AzureChinaCloud", p.name)
  end)

  it("classifies hosts", function()
    local p = cloud.get()
    assert.equal("arm", cloud.host_kind(p, "management.azure.com"))
    assert.equal("vault", cloud.host_kind(p, "MyVault.vault.azure.net"))
    assert.equal("acr", cloud.host_kind(p, "reg.azurecr.io"))
    assert.is_nil(cloud.host_kind(p, "vault.azure.net"))
    assert.is_nil(cloud.host_kind(p, "evil.vault.azure.net.example.com"))
    assert.is_nil(cloud.host_kind(p, "example.com"))
  end)

  it("builds custom profiles", function()
    local p = assert(cloud.custom({ name = "stack", arm_endpoint = "management.local.azurestack.external",
                                    vault_suffix = "vault.local.azurestack.external" }))
    assert.equal("https://management.local.azurestack.external", p.arm_endpoint)
    assert.equal("https://management.local.azurestack.external/.default", p.arm_scope)
    assert.equal(".vault.local.azurestack.external", p.vault_suffix)
    assert.equal("https://vault.local.azurestack.external/.default", p.vault_scope)
    assert.is_nil((cloud.custom({ arm_endpoint = "http://x" })))
  end)
end)

describe("cloud profiles against the emulator", function()
  local seed, lines
  setup(function() local _; _, seed = H.env() end)
  teardown(function() H.reset() end)   -- leave the shared emulator as seeded
  before_each(function() H.reset(); lines = {} end)
  after_each(function() H.assert_no_secrets(lines) end)

  for _, case in ipairs({
    { cloud = "AzureChinaCloud", login = "login.chinacloudapi.cn", arm = "management.chinacloudapi.cn" },
    { cloud = "AzureUSGovernment", login = "login.microsoftonline.us", arm = "management.usgovcloudapi.net" },
  }) do
    it(case.cloud, function()
      local cred = H.client_secret(seed)
      local p = H.pipeline({ credential = cred, cloud = case.cloud, lines = lines })
      local seq = H.log_seq()
      local res, err = p:arm("GET", "/subscriptions", { api_version = "2022-12-01" })
      assert.is_nil(err)
      assert.equal(200, res.status)
      local log = H.log_entries(seq)
      assert.equal(1, H.count(log, case.login))
      assert.equal(1, H.count(log, case.arm))
      assert.equal(0, H.count(log, "login.microsoftonline.com"))
      assert.equal(0, H.count(log, "management.azure.com"))
      -- a public-cloud host is not a host of this profile: no token goes there
      local r2, e2 = p:send({ method = "GET", url = "https://management.azure.com/subscriptions",
                              api_version = "2022-12-01", scope = p.cloud.arm_scope })
      assert.is_nil(r2)
      assert.equal("UntrustedTokenTarget", e2.code)
    end)
  end
end)
