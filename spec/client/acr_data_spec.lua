-- azcmk.client.acr_data against the emulator over HTTPS: ACR's token flow (Entra ID token ->
-- /oauth2/exchange -> /oauth2/token -> bearer=), a push and pull of a small image, the catalog
-- and tags, and the structured errors a script branches on: the key unusable after a revoke
-- (and usable again after restore and rotate, naming the new key version), a caller without
-- a data-plane role, absent repositories and manifests. No token reaches a log or an error.
local H = require("support.cmk_helper")
local pb = require("azcmk.playbook")
local AcrData = require("azcmk.client.acr_data")
local errors = require("azcmk.errors")

describe("azcmk.client.acr_data", function()
  local seed, s, lines, d

  setup(function()
    seed = select(2, H.start())
    s = H.setup()
    lines = {}
    -- a pipeline that logs everything (debug) into `lines`
    H.p = H.pipeline({ log = require("azcmk.log").new({ level = "debug",
      sink = function(l) lines[#lines + 1] = l end }) })
    d = AcrData.new(H.p, { login_server = s.registry.login_server })
  end)

  teardown(function() H.done() end)

  local function same_kid(a, b) return tostring(a):lower() == tostring(b):lower() end

  it("pushes an image and reads it back: catalog, tags, manifest, blobs, and the key version that wraps them",
    function()
      local img = H.push_image(s.registry.login_server, "tools/probe", "v1")
      local cat = assert(d:catalog())
      assert.same({ "tools/probe" }, cat.repositories)
      local kid = H.content_key(s.registry.id)
      assert.truthy(kid and kid:match("/keys/"))
      assert.is_true(same_kid(kid, cat.content_key))
      assert.same({ "v1" }, assert(d:tags({ repository = "tools/probe" })).tags)
      local m = assert(d:manifest({ repository = "tools/probe", reference = "v1" }))
      assert.equal(img.digest, m.digest)
      assert.equal(img.manifest, m.body)
      assert.equal(AcrData.digest(m.body), m.digest)
      assert.equal("application/vnd.oci.image.manifest.v1+json", m.media_type)
      local head = assert(d:manifest({ repository = "tools/probe", reference = img.digest, head = true }))
      assert.equal(img.digest, head.digest)
      assert.is_nil(head.body)
      local b = assert(d:blob({ repository = "tools/probe", digest = img.layer }))
      assert.equal(img.layer_data, b.data)
      assert.is_true(same_kid(kid, b.content_key))
    end)

  it("names absent repositories and manifests (404) with a next step", function()
    local _, err = d:tags({ repository = "nosuch/repo" })
    assert.equal("RepositoryNotFound", err.code)
    assert.equal(404, err.status)
    assert.is_true(errors.is(err, "NAME_UNKNOWN"))
    assert.matches("catalog", err.hint)
    _, err = d:manifest({ repository = "tools/probe", reference = "nosuchtag" })
    assert.equal("ManifestNotFound", err.code)
    assert.matches("nosuchtag", err.message)
  end)

  it("says the registry cannot use its key after revoke; reads again after restore, and after " ..
    "rotate names the new key version", function()
      local before = H.content_key(s.registry.id)
      assert(pb.revoke(H.opts({ registry = s.registry.name, yes = true })))
      for _, call in ipairs({ function() return d:catalog() end,
        function() return d:manifest({ repository = "tools/probe", reference = "v1" }) end,
        function() return d:put_blob({ repository = "tools/probe", data = "more" }) end }) do
        local r, err = call()
        assert.is_nil(r)
        assert.equal("azure", err.kind)
        assert.equal(403, err.status)
        assert.equal("RegistryKeyUnusable", err.code)
        assert.is_true(errors.is(err, "DENIED"))
        assert.equal("registry", err.param)
        assert.matches("restore{registry = \"" .. s.registry.name .. "\"}", err.hint, 1, true)
      end
      assert(pb.restore(H.opts({ registry = s.registry.name })))
      local m = assert(d:manifest({ repository = "tools/probe", reference = "v1" }))
      assert.is_true(same_kid(before, m.content_key))
      local r = assert(pb.rotate(H.opts({ registry = s.registry.name })))
      assert.is_true(r.changed)
      m = assert(d:manifest({ repository = "tools/probe", reference = "v1" }))
      assert.is_true(same_kid(r.versioned_key_id, m.content_key))
      assert.is_false(same_kid(before, m.content_key))
      assert.is_true(same_kid(H.content_key(s.registry.id), m.content_key))
    end)

  it("tells a caller without a data-plane role which role it needs", function()
    local credential = require("azcmk.credential")
    local p2 = H.pipeline({ credential = credential.client_secret({ tenant_id = seed.tenant_id,
      client_id = seed.noaccess.app_id, client_secret = seed.noaccess.client_secret }) })
    local d2 = AcrData.new(p2, { login_server = s.registry.login_server })
    local _, err = d2:catalog()
    assert.equal("auth", err.kind)
    assert.equal(401, err.status)
    assert.equal("InsufficientScope", err.code)
    assert.equal("AcrPull", err.role)
    assert.matches("AcrPull", err.hint)
    _, err = d2:put_blob({ repository = "tools/probe", data = "x" })
    assert.equal("InsufficientScope", err.code)
    assert.equal("AcrPush", err.role)
    -- with AcrPull on the registry it pulls, and still may not push
    local ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
    require("support.cmk_world").assign_role(seed.subscription_id, s.registry.id, ACR_PULL,
      seed.noaccess.object_id)
    d2:forget()
    assert(d2:manifest({ repository = "tools/probe", reference = "v1" }))
    _, err = d2:put_blob({ repository = "tools/probe", data = "x" })
    assert.equal("AcrPush", err.role)
  end)

  it("keeps every token out of the log, errors and tostring", function()
    assert.truthy(#lines > 0)
    local all = table.concat(lines, "\n")
    assert.matches("/oauth2/exchange", all, 1, true)
    assert.is_nil(all:find("eyJ", 1, true))
    assert.is_nil(all:find("refresh_token=e", 1, true))
    assert.equal("azcmk.client.acr_data(" .. s.registry.login_server .. ")", tostring(d))
    for _, v in pairs(d) do assert.is_nil(tostring(v):find("eyJ", 1, true)) end
    local _, err = d:tags({ repository = "nosuch/repo" })
    assert.is_nil(tostring(err):find("eyJ", 1, true))
  end)
end)
