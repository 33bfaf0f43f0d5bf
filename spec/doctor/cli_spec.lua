-- `azcmk doctor` end to end (bin/azcmk under this run's interpreter) against the emulator:
-- exit status, text and table output, the -o json shape, --fix without --yes (plan, exit 2,
-- no writes) and --fix --yes (repairs, healthy again).
local H = require("support.cmk_helper")
local W = require("support.cmk_world")
local E = H.E

describe("azcmk doctor (CLI)", function()
  setup(function()
    H.env()
    H.reset()
  end)

  teardown(function()
    E.assert_no_internal_errors()
    H.reset() -- leave the seeded state (and clock) to the next spec file
  end)

  it("exits 0 for a healthy registry and 1 for a broken one, failures first", function()
    local w = W.world()
    local r = H.cli({ "doctor", "-n", w.reg })
    assert.equal(0, r.code, r.stderr .. r.stdout)
    assert.matches("registry " .. w.reg .. ": HEALTHY", r.stdout)
    assert.matches("checked as the caller", r.stdout)
    W.policy(w.sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
    r = H.cli({ "doctor", "-n", w.reg, "-g", w.rg })
    assert.equal(1, r.code, r.stderr .. r.stdout)
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.matches(": BROKEN %(", lines[1])
    assert.matches("^FAIL access", lines[3])
    assert.matches("FAIL access%s+the registry identity has no access policy", r.stdout)
    assert.matches("fix: add an access policy", r.stdout)
    assert.matches("azcmk doctor %-n " .. w.reg .. " %-%-fix", r.stdout)
    -- table output
    r = H.cli({ "doctor", "-n", w.reg, "-o", "table" })
    assert.equal(1, r.code)
    assert.matches("access%s+fail%s+the registry identity", r.stdout)
  end)

  it("prints JSON for scripts", function()
    local w = W.world()
    W.set_key_enabled(w.kid, false)
    local r = H.cli({ "doctor", "-n", w.reg, "-o", "json" })
    assert.equal(1, r.code, r.stderr)
    local j = assert(H.json(r.stdout), r.stdout)
    assert.equal(w.reg, j.registry.name)
    assert.equal(w.rg, j.registry.resourceGroup)
    assert.is_false(j.healthy)
    assert.equal("broken", j.status)
    assert.is_true(j.counts.fail >= 1)
    assert.equal(H.seed().owner.object_id, j.caller.objectId)
    assert.equal("fail", j.checks[1].status)
    local key
    for _, c in ipairs(j.checks) do
      assert.truthy(c.id and c.title and c.status and c.summary)
      assert.equal("table", type(c.evidence))
      if c.id == "key" then key = c end
    end
    assert.equal("fail", key.status)
    assert.matches("disabled", key.summary)
    assert.truthy(key.fix)
    -- no secret in the output
    assert.is_nil(r.stdout:find(H.seed().owner.client_secret, 1, true))
    assert.is_nil(r.stdout:find("eyJ", 1, true))
  end)

  it("--fix without --yes prints the plan, exits 2 and writes nothing; --fix --yes repairs", function()
    local w = W.world()
    E.control("POST", "registries/remove-identity", { id = W.reg_path(w.sub, w.rg, w.reg),
        identity = w.uai.id })
    local seq = H.seq()
    local r = H.cli({ "doctor", "-n", w.reg, "--fix" })
    assert.equal(2, r.code, r.stderr .. r.stdout)
    assert.matches("doctor %-%-fix would:", r.stdout)
    assert.matches("re%-assign the user%-assigned identity cmk%-uai", r.stdout)
    assert.matches("needs %-%-yes", r.stderr)
    local writes = H.writes(seq)
    assert.equal(0, #writes, H.describe(writes))
    -- JSON: the plan, not applied
    r = H.cli({ "doctor", "-n", w.reg, "--fix", "-o", "json" })
    assert.equal(2, r.code)
    local j = H.json(r.stdout)
    assert.is_false(j.fix.applied)
    assert.equal("reassign_identity", j.fix.plan[1].repair)
    assert.equal(0, #H.writes(seq))
    assert.equal(403, (H.data_plane(w.reg:lower() .. ".azurecr.io")))
    -- --yes: repaired and checked again
    r = H.cli({ "doctor", "-n", w.reg, "--fix", "--yes" })
    assert.equal(0, r.code, r.stderr .. r.stdout)
    assert.matches("before:\nregistry " .. w.reg .. ": BROKEN", r.stdout)
    assert.matches("after:\nregistry " .. w.reg .. ": HEALTHY", r.stdout)
    assert.equal(401, (H.data_plane(w.reg:lower() .. ".azurecr.io")))
    for _, e in ipairs(H.log(seq)) do assert.is_not.equal("DELETE", e.method) end
  end)

  it("refuses without -n", function()
    local r = H.cli({ "doctor" })
    assert.equal(2, r.code)
    assert.matches("%-n/%-%-name REGISTRY is required", r.stderr)
  end)
end)
