-- The end-to-end probe against the emulator: `show{probe = true}` reads a manifest and a blob
-- of a CMK registry as the caller and says whether the registry can really use its key and
-- which key version wraps its content; `verify` pushes a test artifact, pulls it back and
-- deletes it. After revoke both say the key is unusable (verify: both directions fail with
-- RegistryKeyUnusable); after restore and after rotate they work again and name the new key
-- version; a caller without a push role is told it needs AcrPush.
local H = require("support.cmk_helper")
local pb = require("azcmk.playbook")
local Keys = require("azcmk.client.keys")

describe("content probe and verify", function()
  local seed, s, img

  setup(function()
    seed = select(2, H.start())
    s = H.setup()
    img = H.push_image(s.registry.login_server, "app/web", "1.0")
  end)

  teardown(function() H.done() end)

  local function emulator_version() return Keys.version_of(H.content_key(s.registry.id)) end

  local function probe()
    local r = assert(pb.show(H.opts({ registry = s.registry.name, probe = true })))
    return r.content, r
  end

  local function tags(repo)
    local d = require("azcmk.client.acr_data").new(H.p, { login_server = s.registry.login_server })
    local t = d:tags({ repository = repo })
    return t and t.tags or {}
  end

  it("show's probe reads the image with the key version the emulator wrapped it with", function()
    local ct, r = probe()
    assert.equal("usable", ct.verdict)
    assert.is_true(ct.usable)
    assert.equal("app/web", ct.repository)
    assert.equal("1.0", ct.reference)
    assert.equal(img.digest, ct.manifest_digest)
    assert.equal(img.config, ct.blob_digest)
    assert.equal(emulator_version(), ct.key_version)
    assert.equal(r.key_version_in_use, ct.key_version)
    assert.matches("read app/web:1.0 %(manifest and blob%) with its key, key version " .. ct.key_version,
      ct.summary)
  end)

  it("verify pushes, pulls back and deletes its artifact; the dry run writes nothing", function()
    local seq = H.seq()
    local dry = H.assert_dry(assert(pb.verify(H.opts({ registry = s.registry.name, dry_run = true }))))
    assert.equal("push=create pull=check cleanup=remove", H.plan_of(dry.plan))
    assert.equal(0, #H.writes(seq), H.describe(H.writes(seq)))
    local r = assert(pb.verify(H.opts({ registry = s.registry.name })))
    assert.is_true(r.ok and r.push.ok and r.pull.ok and r.cleanup.ok and r.cleanup.needed)
    assert.matches("^azcmk%-verify%-%x+$", r.tag)
    assert.equal("azcmk-verify", r.repository)
    assert.equal(emulator_version(), r.key_version)
    assert.is_true(r.key_matches)
    -- pushed (a manifest PUT landed), then deleted: the tag is gone
    local puts, deletes = 0, 0
    for _, e in ipairs(H.writes(seq)) do
      if e.method == "PUT" and e.path == "/v2/azcmk-verify/manifests/" .. r.tag then puts = puts + 1 end
      if e.method == "DELETE" and e.path:match("^/v2/azcmk%-verify/manifests/sha256:") then
        deletes = deletes + 1
      end
    end
    assert.equal(1, puts)
    assert.equal(1, deletes)
    for _, t in ipairs(tags("azcmk-verify")) do assert.are_not.equal(r.tag, t) end
  end)

  it("after revoke: the probe says the key is unusable and verify fails both directions; after restore " ..
    "and rotate both work and name the new key version", function()
      local before = emulator_version()
      assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
      local ct = probe()
      assert.equal("key_unusable", ct.verdict)
      assert.equal("RegistryKeyUnusable", ct.error.code)
      assert.matches("cannot use its key", ct.summary)
      assert.is_nil(ct.key_version)
      local r, err = pb.verify(H.opts({ registry = s.registry.name }))
      assert.is_nil(r)
      assert.equal("RegistryKeyUnusable", err.code)
      assert.equal(403, err.status)
      local v = err.verification
      assert.is_false(v.ok)
      assert.equal("RegistryKeyUnusable", v.push.error.code)
      assert.equal("RegistryKeyUnusable", v.pull.error.code)
      assert.is_true(v.pull.existing)
      assert.is_false(v.cleanup.needed)

      assert(pb.restore(H.opts({ registry = s.registry.name })))
      assert.equal("usable", probe().verdict)
      r = assert(pb.verify(H.opts({ registry = s.registry.name })))
      assert.equal(before, r.key_version)

      local rot = assert(pb.rotate(H.opts({ registry = s.registry.name })))
      local new = Keys.version_of(rot.versioned_key_id)
      assert.are_not.equal(before, new)
      assert.equal(new, emulator_version())
      ct = probe()
      assert.equal("usable", ct.verdict)
      assert.equal(new, ct.key_version)
      r = assert(pb.verify(H.opts({ registry = s.registry.name })))
      assert.equal(new, r.key_version)
      assert.is_true(r.key_matches)
    end)

  it("tells a caller who may only pull that pushing needs AcrPush, and still proves the pull", function()
    -- Reader on the registry: reads it through ARM and pulls (as AcrPull), may not push
    local READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
    require("support.cmk_world").assign_role(seed.subscription_id, s.registry.id, READER,
      seed.noaccess.object_id)
    local p2 = H.pipeline({ credential = require("azcmk.credential").client_secret({
      tenant_id = seed.tenant_id,
      client_id = seed.noaccess.app_id, client_secret = seed.noaccess.client_secret }) })
    local r, err = pb.verify(H.opts({ registry = s.registry.name, resource_group = s.registry.resource_group,
      pipeline = p2 }))
    assert.is_nil(r)
    assert.equal("InsufficientScope", err.code)
    assert.equal("AcrPush", err.role)
    assert.matches("AcrPush", err.hint)
    assert.equal("AcrPush", err.verification.push.error.role)
    assert.is_true(err.verification.pull.ok)
    assert.is_true(err.verification.pull.existing)
  end)
end)
