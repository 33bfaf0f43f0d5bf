-- Revocation is a recorded, deliberate state: revoke tags the registry (azcmk-revoked =
-- "<time> by <caller>") on Azure itself, keeping the user's other tags; while the tag stands,
-- rotate, identity assign, setup re-runs and doctor's repairs refuse before any write
-- (RegistryRevoked, also in a dry run) unless force = true; restore removes the tag; show,
-- audit and doctor report the registry as revoked, not as broken. Against the emulator.
local H = require("support.cmk_helper")
local pb = require("azcmk.playbook")

local TAG = "azcmk-revoked"

-- the registry's tags as Azure has them (a GET of the emulator's ARM)
local function tags_of(c, s)
  return assert(c.registries:get({ id = s.registry.id })).tags or {}
end

-- Asserts that fn(opts) is refused as revoked, before any write: the structured error.
local function refused_revoked(fn, opts)
  local err = H.refused(fn, opts, "RegistryRevoked", "was revoked on %d%d%d%d%-%d%d%-%d%dT[%d:]+Z by %S+",
    "`restore{registry = \"")
  assert.equal("registry", err.param)
  assert.matches("`force = true`", err.hint)
  assert.truthy(err.revoked.at and err.revoked.by)
  return err
end

describe("revocation as a recorded state", function()
  local c, seed

  setup(function() c, seed = H.start() end)

  teardown(function() H.done() end)

  -- a CMK registry with a user tag, revoked
  local function revoked_registry(extra)
    local s = H.setup(extra)
    assert(c.registries:update({ id = s.registry.id, body = { tags = { team = "blue", env = "prod" } } }))
    local r = assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
    assert.is_true(r.changed)
    return s, r
  end

  it("revoke records when and by whom on the registry, in the plan too, and keeps the other tags", function()
    local s = H.setup()
    assert(c.registries:update({ id = s.registry.id, body = { tags = { team = "blue", env = "prod" } } }))
    local seq = H.seq()
    local dry = assert(pb.revoke(H.opts({ registry = s.registry.name, dry_run = true })))
    assert.equal(0, #H.writes(seq))
    assert.equal("revocation=record access=remove", H.plan_of(dry.plan))
    assert.equal("PATCH " .. s.registry.id, dry.plan[1].request)
    assert.is_nil(tags_of(c, s)[TAG])
    local r = assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
    local tags = tags_of(c, s)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ by " .. seed.owner.object_id:gsub("%-", "%%-")
      .. "$", tags[TAG])
    assert.equal("blue", tags.team)
    assert.equal("prod", tags.env)
    assert.equal(seed.owner.object_id, r.revoked.by)
    assert.equal(403, (H.data_plane(s.registry.login_server)))
    -- once recorded and removed, a second revoke changes nothing
    seq = H.seq()
    r = assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
    assert.is_false(r.changed)
    assert.equal(0, #H.writes(seq))
  end)

  it("a plain rotate refuses (dry run too) and writes nothing; rotate with force re-opens and clears the tag",
    function()
      local s = revoked_registry()
      refused_revoked(pb.rotate, { registry = s.registry.name })
      refused_revoked(pb.rotate, { registry = s.registry.name, dry_run = true })
      refused_revoked(pb.rotate, { registry = s.registry.name, identity = "[system]" })
      assert.equal(403, (H.data_plane(s.registry.login_server)))
      local dry = assert(pb.rotate(H.opts({ registry = s.registry.name, force = true, dry_run = true })))
      assert.equal("identity=reuse access=grant key=create registry=rotate verify=check revocation=clear",
        H.plan_of(dry.plan))
      local r = assert(pb.rotate(H.opts({ registry = s.registry.name, force = true })))
      assert.is_true(r.verified)
      assert.equal(401, (H.data_plane(s.registry.login_server)))
      local tags = tags_of(c, s)
      assert.is_nil(tags[TAG])
      assert.equal("blue", tags.team)
    end)

  it("identity assign and a setup re-run refuse; with force they go on", function()
    local s, names = H.setup()
    assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
    refused_revoked(pb.identity_assign, { registry = s.registry.name, identity = "[system]" })
    refused_revoked(pb.identity_assign, { registry = s.registry.name, identity = s.identity.id,
      dry_run = true })
    refused_revoked(pb.setup, names)
    local dry_names = {}
    for k, v in pairs(names) do dry_names[k] = v end
    dry_names.dry_run = true
    refused_revoked(pb.setup, dry_names)
    assert.equal(403, (H.data_plane(s.registry.login_server)))
    -- identity assign with force attaches, and leaves the record (it gives no access)
    local r = assert(pb.identity_assign(H.opts({ registry = s.registry.name, identity = "[system]",
      force = true })))
    assert.is_true(r.changed)
    assert.truthy(tags_of(c, s)[TAG])
    -- setup with force gives the access back and clears the record
    local forced = {}
    for k, v in pairs(names) do forced[k] = v end
    forced.force = true
    r = assert(pb.setup(H.opts(forced)))
    assert.is_true(r.changed)
    assert.is_nil(tags_of(c, s)[TAG])
    assert.equal(401, (H.data_plane(s.registry.login_server)))
  end)

  it("doctor reports revoked (when, by whom), not broken; --fix refuses; --fix with force repairs", function()
    local s = revoked_registry()
    local report = assert(pb.doctor(H.opts({ registry = s.registry.name })))
    assert.equal("revoked", report.status)
    assert.is_false(report.healthy)
    assert.equal(0, report.counts.fail)
    assert.equal(seed.owner.object_id, report.revoked.by)
    local by = {}
    for _, ch in ipairs(report.checks) do by[ch.id] = ch end
    for _, id in ipairs({ "access", "registry.data_plane" }) do
      assert.equal("warn", by[id].status)
      assert.is_true(by[id].revoked)
      assert.matches("revoked deliberately on .* by .*run restore to undo", by[id].summary)
      assert.matches("`restore{registry = ", by[id].fix)
    end
    -- --fix, --fix --dry-run: refused, nothing written
    local err = refused_revoked(pb.doctor, { registry = s.registry.name, fix = true, yes = true })
    assert.equal("revoked", err.report.status)
    refused_revoked(pb.doctor, { registry = s.registry.name, fix = true, dry_run = true })
    assert.equal(403, (H.data_plane(s.registry.login_server)))
    -- with force: the grant and the record's removal are planned, then applied
    local dry = assert(pb.doctor(H.opts({ registry = s.registry.name, fix = true, dry_run = true,
      force = true })))
    local repairs = {}
    for _, a in ipairs(dry.fix.plan) do repairs[#repairs + 1] = a.repair end
    assert.same({ "grant", "clear_revocation" }, repairs)
    report = assert(pb.doctor(H.opts({ registry = s.registry.name, fix = true, yes = true, force = true })))
    assert.is_true(report.healthy, report.status)
    assert.equal("healthy", report.status)
    assert.is_nil(tags_of(c, s)[TAG])
    assert.equal("blue", tags_of(c, s).team)
    assert.equal(401, (H.data_plane(s.registry.login_server)))
  end)

  it("show and audit say revoked (when, by whom); restore clears the tag, and rotate works again", function()
    local s = revoked_registry({ access = "rbac" })
    local shown = assert(pb.show(H.opts({ registry = s.registry.name })))
    assert.equal("revoked", shown.state)
    assert.equal(seed.owner.object_id, shown.revoked.by)
    assert.matches("revoked deliberately", shown.warnings[#shown.warnings])
    local a = assert(pb.audit({ pipeline = H.p, subscriptions = { seed.subscription_id },
      name = s.registry.name }))
    local row = a.registries[1]
    assert.equal("revoked", row.state)
    assert.equal(seed.owner.object_id, row.revoked_by)
    assert.truthy(row.revoked_at)
    assert.equal("warn", row.health)
    assert.matches("revoked deliberately", table.concat(row.problems, "; "))
    -- restore: planned (grant, then the record's removal), applied, read back
    local dry = assert(pb.restore(H.opts({ registry = s.registry.name, dry_run = true })))
    assert.equal("access=grant revocation=clear", H.plan_of(dry.plan))
    assert.truthy(tags_of(c, s)[TAG])
    assert(pb.restore(H.opts({ registry = s.registry.name })))
    local tags = tags_of(c, s)
    assert.is_nil(tags[TAG])
    assert.same({ team = "blue", env = "prod" }, tags)
    assert.equal("active", assert(pb.show(H.opts({ registry = s.registry.name }))).state)
    a = assert(pb.audit({ pipeline = H.p, subscriptions = { seed.subscription_id }, name = s.registry.name }))
    assert.equal("active", a.registries[1].state)
    assert.equal("ok", a.registries[1].health)
    assert.is_true(assert(pb.rotate(H.opts({ registry = s.registry.name }))).verified)
  end)

  it("a registry left Failed (its tag write failed after an earlier try had landed) is sent its tags again "
    .. "by restore and by revoke", function()
    local s = H.setup()
    local path = s.registry.id
    local function fail_next_patch()
      H.E.control("POST", "faults",
        { rules = { { method = "PATCH", path = path, lro_fail = true, count = 1 } } })
      assert.is_nil(c.registries:update({ id = s.registry.id, body = { tags = { team = "blue" } } }))
      H.E.control("DELETE", "faults")
      assert.equal("Failed", assert(c.registries:get({ id = s.registry.id })).properties.provisioningState)
    end
    -- not revoked, Failed: restore plans the re-apply (dry run: no write) and applies it
    fail_next_patch()
    local dry = assert(pb.restore(H.opts({ registry = s.registry.name, dry_run = true })))
    local kinds = {}
    for _, a in ipairs(dry.plan) do kinds[#kinds + 1] = a.action end
    assert.truthy(table.concat(kinds, ","):find("reapply", 1, true), table.concat(kinds, ","))
    assert(pb.restore(H.opts({ registry = s.registry.name })))
    local reg = assert(c.registries:get({ id = s.registry.id }))
    assert.equal("Succeeded", reg.properties.provisioningState)
    -- revoked and Failed: a revoke re-run (the record stands) re-applies too
    assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
    fail_next_patch()
    assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
    reg = assert(c.registries:get({ id = s.registry.id }))
    assert.equal("Succeeded", reg.properties.provisioningState)
    assert.truthy(tags_of(c, s)[TAG])
  end)
end)
