-- azcmk.compose and the faces' composition roots: the transport, credential and pipeline are
-- built once, from options and the environment, and handed down.
local compose = require("azcmk.compose")

local function env(t) return function(k) return t[k] end end

local SUB = "5c2e8f14-3b6a-4d7e-8f90-1a2b3c4d5e6f"

describe("azcmk.compose", function()
  it("builds the default transport, credential chain and subscription from one getenv", function()
    local p = assert(compose.pipeline({ getenv = env({ AZURE_SUBSCRIPTION_ID = SUB,
      AZCMK_CONNECT_TO = "management.azure.com:443:127.0.0.1:1", AZURE_TENANT_ID = "t", AZURE_CLIENT_ID = "c",
      AZURE_CLIENT_SECRET = "s" }) }))
    assert.equal(SUB, p.subscription)
    assert.is_nil(p.operation_id)
    assert.equal("curl", p.transport.name)
    assert.same({ "management.azure.com:443:127.0.0.1:1" }, p.transport.cfg.connect_to)
    assert.equal("DefaultAzureCredential", p.credential.name)
    -- the credential does its I/O through the pipeline's transport, not one of its own
    assert.equal(p.transport, p.credential.ctx.transport)
    assert.truthy(p.transport.cfg.user_agent:match("^azcmk/"))
  end)

  it("names the job from AZCMK_OPERATION_ID, unless the face gives operation_id", function()
    local p = assert(compose.pipeline({ getenv = env({ AZCMK_OPERATION_ID = "nightly-42",
      AZURE_TENANT_ID = "t", AZURE_CLIENT_ID = "c", AZURE_CLIENT_SECRET = "s" }) }))
    assert.equal("nightly-42", p.operation_id)
    p = assert(compose.pipeline({ operation_id = "mine", getenv = env({ AZCMK_OPERATION_ID = "nightly-42",
      AZURE_TENANT_ID = "t", AZURE_CLIENT_ID = "c", AZURE_CLIENT_SECRET = "s" }) }))
    assert.equal("mine", p.operation_id)
  end)

  it("keeps what the face gives: transport, credential, subscription", function()
    local t = { name = "mine", request = function() end }
    local cred = require("azcmk.credential.static").new({ token = "T", expires_on = os.time() + 60 })
    local p = assert(compose.pipeline({ transport = t, credential = cred, subscription = "given",
      getenv = env({ AZURE_SUBSCRIPTION_ID = SUB }) }))
    assert.equal(t, p.transport)
    assert.equal(cred, p.credential)
    assert.equal("given", p.subscription)
  end)

  it("reports an invalid cloud in the environment", function()
    local p, err = compose.pipeline({ getenv = env({ AZURE_CLOUD = "NoSuchCloud" }) })
    assert.is_nil(p)
    assert.equal("input", err.kind)
  end)
end)

describe("azcmk (the script face)", function()
  local saved
  before_each(function() saved = rawget(_G, "ngx") end)
  after_each(function() rawset(_G, "ngx", saved) end)

  it("builds a libcurl pipeline in plain Lua and the phase-aware one inside nginx", function()
    local azcmk = require("azcmk")
    assert.equal("curl", assert(azcmk.new({ getenv = env({}) })).transport.name)
    rawset(_G, "ngx", { get_phase = function() return "init" end })
    assert.equal("auto", assert(azcmk.new({ getenv = env({}) })).transport.name)
  end)

  it("gives a playbook called without a pipeline one of its own, and passes a given one on", function()
    package.loaded["azcmk.playbook"] = { echo = function(o) return o end }
    local azcmk = require("azcmk")
    rawset(azcmk, "playbook", nil)
    local o = { registry = "r", getenv = env({ AZURE_SUBSCRIPTION_ID = SUB }) }
    local got = azcmk.playbook.echo(o)
    assert.is_nil(o.pipeline)                  -- the caller's table is left alone
    assert.equal(SUB, got.pipeline.subscription)
    assert.equal("r", got.registry)
    local p = got.pipeline
    assert.equal(p, azcmk.playbook.echo({ pipeline = p }).pipeline)
    assert.truthy(azcmk.playbook.echo().pipeline)
    package.loaded["azcmk.playbook"] = nil
    rawset(azcmk, "playbook", nil)
  end)
end)
