-- Re-runs finish what an interrupted run started, without duplicates: rotate against the
-- emulator over HTTPS, interrupted after it made its key version (the registry's PATCH
-- fails, or its key create loses its answer), then run again.
local H = require("support.cmk_helper")
local pb = require("azcmk.playbook")
local Keys = require("azcmk.client.keys")

describe("re-running an interrupted rotate", function()
  local c

  setup(function() c = H.start() end)
  teardown(function() H.done() end)
  after_each(function() H.E.control("DELETE", "faults") end)

  local function faults(rules) assert.equal(200, H.E.control("POST", "faults", { rules = rules }).status) end
  local function key_of(s) return s.key_id:match("/keys/([^/]+)") end
  local function versions(s, names)
    return #assert(c.keys:versions({ vault = names.vault, name = key_of(s) }))
  end
  local function step(r, kind)
    for _, st in ipairs(r.steps) do if st.step == kind then return st end end
  end

  it("reuses the version the failed run made (the registry never got it) and says so", function()
    local s, names = H.setup()
    assert.equal(1, versions(s, names))
    -- the registry's PATCH is refused once: the run fails after making its version
    faults({ { service = "arm", path = "/subscriptions/*/registries/" .. names.registry, method = "PATCH",
      status = 409, code = "Conflict", message = "injected", count = 1 } })
    local r, err = pb.rotate(H.opts({ registry = names.registry }))
    assert.is_nil(r)
    assert.equal(409, err.status)
    assert.equal(2, versions(s, names))
    H.E.control("DELETE", "faults")
    r = assert(pb.rotate(H.opts({ registry = names.registry })))
    assert.equal(2, versions(s, names))                     -- no second new version
    assert.truthy(r.verified)
    local st = step(r, "key")
    assert.equal("reused (made by an earlier run)", st.action)
    -- a rotation after the finished one makes a new version again
    assert(pb.rotate(H.opts({ registry = names.registry })))
    assert.equal(3, versions(s, names))
  end)

  it("with one operation id, a re-run after the registry moved reuses the version too", function()
    local s, names = H.setup()
    local p = H.pipeline({ operation_id = H.unique("job-") })
    local r1 = assert(pb.rotate(H.opts({ registry = names.registry, pipeline = p })))
    assert.equal(2, versions(s, names))
    -- the same job again (as after a kill between the PATCH and the end): nothing new
    local r2 = assert(pb.rotate(H.opts({ registry = names.registry, pipeline = p })))
    assert.equal(2, versions(s, names))
    assert.equal(r1.versioned_key_id, r2.versioned_key_id)
  end)

  it("a key create whose answer is lost makes one version (read back by its tag)", function()
    local s, names = H.setup()
    local key = key_of(s)
    faults({ { service = "vault", path = "/keys/" .. key .. "/create", method = "POST", drop = true,
      after = true, count = 1 } })
    local r = assert(pb.rotate(H.opts({ registry = names.registry })))
    assert.equal(2, versions(s, names))
    local kb = assert(c.keys:get({ vault = names.vault, name = key,
      version = Keys.version_of(r.versioned_key_id) }))
    assert.is_string(kb.tags[Keys.INTENT_TAG])
  end)
end)
