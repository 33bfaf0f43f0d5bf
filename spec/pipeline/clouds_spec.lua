-- Sovereign cloud profiles end to end: the credential talks to the cloud's authority, the
-- token is for the cloud's ARM scope, and tokens never go to another cloud's hosts.
local H = require("support.pipeline_helper")

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
