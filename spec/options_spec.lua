-- azcmk.options: one checker for every public options table (playbooks, clients, the state
-- reader). An unknown key is a programmer error that raises and names the closest known key;
-- nothing is sent before the check.
local options = require("azcmk.options")

local function raises(pat, f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok, "expected an error matching " .. pat)
  assert.matches(pat, tostring(err))
  return tostring(err)
end

describe("azcmk.options", function()
  local spec = { registry = "string", versionless = "boolean?", key_size = "number?" }

  it("returns the table when every key is known and of its type", function()
    local o = { registry = "r1", versionless = true }
    assert.equal(o, options.check(o, spec, "f"))
  end)

  it("refuses an unknown key and names the closest known one", function()
    local msg = raises("unknown option 'versionles' %(did you mean versionless%?%)", options.check,
      { registry = "r1", versionles = true }, spec, "azcmk.playbook.setup")
    assert.matches("^[^:]*:?%d*:? ?azcmk.playbook.setup: ", msg)
    assert.matches("known options: key_size, registry, versionless", msg)
    -- far from every known key: no suggestion, still the list
    msg = raises("unknown option 'colour'", options.check, { registry = "r1", colour = "red" }, spec, "f")
    assert.is_nil(msg:find("did you mean", 1, true))
  end)

  it("refuses wrong types, missing required keys and a non-table", function()
    raises("option versionless must be a boolean, not a string", options.check,
      { registry = "r1", versionless = "yes" }, spec, "f")
    raises("option registry %(string%) is required", options.check, {}, spec, "f")
    raises("options table expected, got string", options.check, "r1", spec, "f")
  end)

  it("suggests only what is close enough to be a typo", function()
    assert.equal("versionless", options.suggest("versionles", { "versionless", "vault" }))
    assert.equal("resource_group", options.suggest("resource_grop", { "registry", "resource_group" }))
    assert.equal("kek_id", options.suggest("key_id", { "kek_id", "registry_name" }))
    assert.is_nil(options.suggest("x", { "key", "yes" }))
    assert.is_nil(options.suggest("location", { "registry", "vault" }))
  end)

  it("merges specs, later ones winning", function()
    assert.same({ a = "string?", b = "number" }, options.merge({ a = "string" }, { a = "string?" }, nil,
      { b = "number" }))
  end)

  it("is what every playbook and service client uses: a typo raises before any request", function()
    local pb = require("azcmk.playbook")
    -- no pipeline needed: the check comes first
    raises("azcmk.playbook.setup: unknown option 'versionles' %(did you mean versionless%?%)", pb.setup,
      { resource_group = "rg1", registry = "myregistry1", vault = "kv-1", versionles = true })
    raises("did you mean registry%?", pb.show, { registy = "myregistry1" })
    raises("did you mean yes%?", pb.revoke, { registry = "myregistry1", yse = true })
    raises("did you mean versionless%?", pb.rotate, { registry = "myregistry1", versoinless = true })
    raises("did you mean concurrency%?", pb.audit, { concurency = 4 })
    raises("azcmk.playbook.restore: unknown option 'dryrun' %(did you mean dry_run%?%)", pb.restore,
      { registry = "myregistry1", dryrun = true })
    raises("azcmk.playbook.identity.assign: unknown option 'identiy' %(did you mean identity%?%)",
      pb.identity_assign, { registry = "myregistry1", identity = "[system]", identiy = "x" })
    raises("azcmk.playbook.recover: unknown option 'kye' %(did you mean key%?%)", pb.recover,
      { vault = "kv1", kye = "k" })
    raises("azcmk.playbook.deploy: unknown option 'paramters' %(did you mean parameters%?%)", pb.deploy,
      { resource_group = "rg1", template = {}, paramters = {} })
    raises("azcmk.playbook.doctor: unknown option 'fixx' %(did you mean fix%?%)", pb.doctor,
      { registry = "myregistry1", fixx = true })
    local client = require("azcmk.client")
    local p = { arm = function() error("no request may be sent") end, cloud = {} }
    local c = client.new(p, { subscription = "00000000-0000-4000-8000-000000000000" })
    raises("azcmk.client.registries:get: unknown option 'resource_grup' %(did you mean resource_group%?%)",
      c.registries.get, c.registries, { resource_grup = "rg1", name = "r" })
    raises("azcmk.client.keys:create: unknown option 'ktype' %(did you mean kty%?%)",
      c.keys.create, c.keys, { vault = "kv1", name = "k", ktype = "RSA" })
  end)

  it("is what every composition root uses: azcmk.new, compose, pipeline.new, the nginx status", function()
    local azcmk = require("azcmk")
    local getenv = function() return nil end
    raises("azcmk.new: unknown option 'subscripton' %(did you mean subscription%?%)", azcmk.new,
      { getenv = getenv, subscripton = "x" })
    raises("azcmk.compose.pipeline: unknown option 'credentail' %(did you mean credential%?%)",
      require("azcmk.compose").pipeline, { getenv = getenv, credentail = {} })
    raises("azcmk.pipeline.new: unknown option 'lro_intervall' %(did you mean lro_interval%?%)",
      require("azcmk.pipeline").new, { cloud = "AzureCloud", lro_intervall = 1 })
    raises("azcmk.ngx.status.configure: unknown option 'periode' %(did you mean period%?%)",
      require("azcmk.ngx.status").configure, { registries = {}, periode = 5 })
    -- the playbooks behind azcmk.playbook (the face that makes a pipeline when none is given)
    raises("azcmk.playbook.setup: unknown option 'versionles'", azcmk.playbook.setup,
      { pipeline = {}, resource_group = "rg1", registry = "myregistry1", vault = "kv-1", versionles = true })
  end)
end)
