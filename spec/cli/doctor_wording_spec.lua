-- The doctor's wording: "run --fix to see the safe repairs" only when there are some, and the
-- "newer key version" warning only when a newer version really exists.
local H = require("support.cmk_helper")
local W = require("support.cmk_world")
local E = require("support.emulator")

describe("azcmk doctor wording", function()
  setup(function() H.start() end)
  teardown(function() H.done() end)

  local function doctor(name)
    return H.cli({ "doctor", "-n", name })
  end

  it("healthy: no word about --fix", function()
    local s = H.setup()
    local r = doctor(s.registry.name)
    assert.equal(0, r.code, r.stderr .. r.stdout)
    assert.is_nil(r.stdout:find("--fix", 1, true))
    assert.is_nil(r.stdout:find("safe repair", 1, true))
  end)

  it("a failure with a safe repair: says --fix and how many; without one: says there is none", function()
    local s, n = H.setup()
    E.control("POST", "registries/remove-identity", { id = W.reg_path(H.seed().subscription_id,
      n.resource_group, n.registry), identity = s.identity.id })
    local r = doctor(n.registry)
    assert.equal(1, r.code)
    assert.matches("run `azcmk doctor %-n " .. n.registry .. " %-%-fix` to see the safe repairs %(1%)\n",
      r.stdout, "stderr: " .. r.stderr)
    local s2 = H.setup()
    W.set_key_enabled(W.versionless(s2.versioned_key_id), false)
    r = doctor(s2.registry.name)
    assert.equal(1, r.code)
    assert.is_nil(r.stdout:find("--fix", 1, true), r.stdout)
    assert.matches("no safe repair for these failures: see each check's fix\n", r.stdout)
  end)

  it("an older enabled version is no 'newer key version'", function()
    local s = H.setup()
    local old = s.versioned_key_id
    -- Key Vault's creation times have whole seconds: the rotation's version must be younger
    E.control("POST", "clock", { advance = 2 })
    local rot = assert(require("azcmk.playbook.rotate").rotate(H.opts({ registry = s.registry.name })))
    assert.are_not.equal(old, rot.versioned_key_id)
    -- the old version enabled, the one in use too: the rotation check is ok
    local r = doctor(s.registry.name)
    assert.matches("ok%s+rotation%s+on the newest enabled version", r.stdout)
    assert.is_nil(r.stdout:find("newer key version", 1, true))
    -- the version in use disabled, only the older one enabled: not "a newer version exists"
    W.set_key_enabled(rot.versioned_key_id, false)
    r = doctor(s.registry.name)
    assert.equal(1, r.code)
    assert.is_nil(r.stdout:find("newer key version", 1, true), r.stdout)
    assert.matches("FAIL rotation%s+the version in use %(" .. rot.versioned_key_id:match("[^/]+$")
      .. "%) is disabled; only older versions are enabled", r.stdout)
  end)
end)
