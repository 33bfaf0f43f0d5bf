-- Plan, then apply: every writing playbook with dry_run = true returns its plan and writes
-- nothing - the emulator's request log shows no PUT, PATCH, POST or DELETE (token requests
-- and the control API aside) - and the state is what it was; the same call without dry_run
-- then does what the plan said. (setup's dry run: spec/playbook/setup_spec.lua.)
local H = require("support.cmk_helper")
local pb = require("azcmk.playbook")

local function plan_of(r)
  local t = {}
  for _, a in ipairs(r.plan) do t[#t + 1] = a.step .. "=" .. a.action end
  return table.concat(t, " ")
end

-- Runs fn(opts + dry_run) and asserts it wrote nothing; returns the result.
local function dry(fn, opts)
  opts.dry_run = true
  local seq = H.seq()
  local r, err = fn(H.opts(opts))
  assert(r, tostring(err))
  local writes = H.writes(seq)
  assert.equal(0, #writes, H.describe(writes))
  assert.is_true(r.dry_run)
  assert.is_false(r.changed)
  assert.equal(0, #r.steps)
  for i, a in ipairs(r.plan) do
    assert.equal(i, a.order)
    assert.truthy(a.step and a.action and a.description and a.reason, plan_of(r))
    if a.writes then assert.truthy(a.request and a.id, a.description) end
  end
  return r
end

describe("dry run of every writing playbook", function()
  local c

  setup(function() c = H.start() end)

  teardown(function() H.done() end)

  it("rotate: plans the new version, the PATCH and the check; nothing changes until it runs", function()
    local s = H.setup()
    local r = dry(pb.rotate, { registry = s.registry.name })
    assert.equal("identity=reuse access=reuse key=create registry=rotate verify=check", plan_of(r))
    assert.equal(2, r.changes)
    assert.matches("create a new version of key", r.plan[3].description)
    assert.equal(s.versioned_key_id, assert(pb.show(H.opts({ registry = s.registry.name }))).versioned_key_id)
    -- to the system identity: enabled, then granted (its principal is known only then)
    r = dry(pb.rotate, { registry = s.registry.name, identity = "[system]", new_version = false })
    assert.equal("identity=enable access=grant key=reuse registry=rotate verify=check", plan_of(r))
    local raw = assert(c.registries:get({ id = s.registry.id }))
    assert.equal("userassigned", raw.identity.type:lower())
    local done = assert(pb.rotate(H.opts({ registry = s.registry.name, identity = "[system]",
      new_version = false })))
    assert.equal("system", done.identity)
    assert.equal(5, #done.plan)
  end)

  it("revoke needs no confirmation to plan; restore plans the grant back", function()
    local s = H.setup()
    local r = dry(pb.revoke, { registry = s.registry.name })
    assert.equal("access=remove", plan_of(r))
    assert.is_true(r.plan[1].irreversible)
    assert.matches("accessPolicies/remove$", r.plan[1].request)
    assert.equal(401, (H.data_plane(s.registry.login_server)))
    assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
    assert.equal(403, (H.data_plane(s.registry.login_server)))
    r = dry(pb.restore, { registry = s.registry.name })
    assert.equal("access=grant", plan_of(r))
    assert.equal(403, (H.data_plane(s.registry.login_server)))
    assert.is_true(assert(pb.restore(H.opts({ registry = s.registry.name }))).changed)
    assert.equal(401, (H.data_plane(s.registry.login_server)))
    r = dry(pb.restore, { registry = s.registry.name })
    assert.equal("access=reuse", plan_of(r))
    assert.equal(0, r.changes)
  end)

  it("identity assign: plans enabling [system]", function()
    local s = H.setup()
    local r = dry(pb.identity_assign, { registry = s.registry.name, identity = "[system]" })
    assert.equal("identity=enable", plan_of(r))
    assert.equal("userassigned", assert(c.registries:get({ id = s.registry.id })).identity.type:lower())
    r = dry(pb.identity_assign, { registry = s.registry.name, identity = s.identity.id })
    assert.equal("identity=reuse", plan_of(r))
  end)

  it("recover: a deleted key, and a deleted vault with its key", function()
    local s = H.setup()
    local key = s.key_id:match("/keys/([^/]+)")
    assert(c.keys:delete({ vault = s.vault.name, name = key }))
    local r = dry(pb.recover, { vault = s.vault.name, key = key })
    assert.equal("vault=reuse key=recover", plan_of(r))
    assert.is_nil(c.keys:get({ vault = s.vault.name, name = key }))
    assert(pb.recover(H.opts({ vault = s.vault.name, key = key })))
    assert.truthy(c.keys:get({ vault = s.vault.name, name = key }))
    assert(c.vaults:delete({ id = s.vault.id }))
    r = dry(pb.recover, { vault = s.vault.name, key = key })
    assert.equal("vault=recover key=recover", plan_of(r))
    assert.matches("once the vault is back", r.plan[2].description)
    assert.is_nil(c.vaults:get({ id = s.vault.id }))
    assert(pb.recover(H.opts({ vault = s.vault.name, key = key })))
    assert.truthy(c.vaults:get({ id = s.vault.id }))
  end)

  it("deploy: the resource group and the deployment", function()
    local rg = H.unique("rg-")
    local r = dry(pb.deploy, { resource_group = rg, location = "westus",
      template = { ["$schema"] = "https://schema.management.azure.com/schemas/2019-04-01/"
        .. "deploymentTemplate.json#", contentVersion = "1.0.0.0", resources = {} }, name = "empty" })
    assert.equal("resource_group=create deployment=deploy", plan_of(r))
    assert.matches("/deployments/empty$", r.plan[2].request)
    assert.is_nil(c.resource_groups:get({ name = rg }))
  end)

  it("doctor --fix: plans the repairs, asks no confirmation and applies none", function()
    local s = H.setup()
    assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
    local seq = H.seq()
    local r = assert(pb.doctor(H.opts({ registry = s.registry.name, fix = true, dry_run = true })))
    assert.equal(0, #H.writes(seq), H.describe(H.writes(seq)))
    assert.is_false(r.healthy)
    assert.is_true(r.fix.dry_run)
    assert.is_false(r.fix.applied)
    assert.equal("grant", r.fix.plan[1].repair)
    assert.equal(s.vault.id, r.fix.plan[1].id)
    assert.equal("access", r.fix.plan[1].check)
    assert.truthy(r.fix.plan[1].reason)
    assert.equal(403, (H.data_plane(s.registry.login_server)))
  end)
end)
