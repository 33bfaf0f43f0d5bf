-- `--dry-run` on every writing verb of the command line: exit 0, the plan on stdout (as lines,
-- or with -o json as data: {dry_run, changed = false, changes, plan = [{order, step, action,
-- id, description, reason, request, writes, ...}]}), and the emulator's request log shows no
-- write to ARM, Key Vault or the registry. The same command without --dry-run then does what
-- the plan said.
local H = require("support.cmk_helper")

local function plan_of(j) return H.plan_of(j.plan) end

-- Runs argv (with --dry-run -o json), asserts no write and the plan's shape; returns the JSON.
local function dry_json(argv)
  local full = {}
  for i, a in ipairs(argv) do full[i] = a end
  for _, a in ipairs({ "--dry-run", "-o", "json" }) do full[#full + 1] = a end
  local seq = H.seq()
  local r = H.cli(full)
  assert.equal(0, r.code, r.stderr .. r.stdout)
  local writes = H.writes(seq)
  assert.equal(0, #writes, H.describe(writes))
  local j = assert(H.json(r.stdout), r.stdout)
  assert.equal("table", type(j.plan))
  return H.assert_dry(j)
end

describe("azcmk --dry-run", function()
  local c

  setup(function() c = H.start() end)

  teardown(function() H.done() end)

  it("setup: the plan as lines and as data, nothing written; then the real run does it", function()
    local rg, reg, kv = H.unique("rg-"), H.unique("cli"), H.unique("kv-")
    local argv = { "setup", "-g", rg, "-n", reg, "--vault", kv, "-l", "westus" }
    local j = dry_json(argv)
    assert.equal("resource_group=create identity=create vault=create access=grant key=create "
      .. "registry=create", plan_of(j))
    assert.is_true(j.plan[3].irreversible)
    assert.equal(6, j.changes)
    -- text: one line per action, the irreversible one marked, and the count
    local seq = H.seq()
    local r = H.cli({ "setup", "-g", rg, "-n", reg, "--vault", kv, "-l", "westus", "--dry-run" })
    assert.equal(0, r.code, r.stderr)
    assert.equal(0, #H.writes(seq))
    assert.matches("^setup would %(dry run%):\n", r.stdout)
    assert.matches("%+ create%s+vault%s+create Key Vault " .. kv:gsub("%-", "%%-"), r.stdout)
    assert.matches("%(IRREVERSIBLE%)", r.stdout)
    assert.matches("6 of 6 actions would change something", r.stdout)
    assert.is_nil(c.resource_groups:get({ name = rg }))
    -- the real run: what the plan said, then a dry run plans only reuses
    r = H.cli({ "setup", "-g", rg, "-n", reg, "--vault", kv, "-l", "westus", "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    local done = assert(H.json(r.stdout))
    local steps = {}
    for _, s in ipairs(done.steps) do steps[#steps + 1] = s.step .. "=" .. s.action end
    assert.equal("resource_group=created identity=created vault=created access=granted key=created "
      .. "registry=created", table.concat(steps, " "))
    j = dry_json(argv)
    assert.equal(0, j.changes)
  end)

  it("rotate, identity assign, revoke, restore: plans, no writes", function()
    local s = H.setup()
    local reg = s.registry.name
    local j = dry_json({ "rotate", "-n", reg })
    assert.equal("identity=reuse access=reuse key=create registry=rotate verify=check", plan_of(j))
    assert.equal(s.registry.id, j.plan[4].id)
    j = dry_json({ "identity", "assign", "-n", reg, "--identity", "[system]" })
    assert.equal("identity=enable", plan_of(j))
    j = dry_json({ "revoke", "-n", reg })      -- no --yes needed to look
    assert.equal("revocation=record access=remove", plan_of(j))
    assert.equal(s.registry.id, j.plan[1].id)
    assert.is_true(j.plan[2].irreversible)
    assert.equal(s.vault.id, j.plan[2].id)
    j = dry_json({ "restore", "-n", reg })
    assert.equal("access=reuse", plan_of(j))
    assert.equal(0, j.changes)
    -- the registry still serves: nothing was revoked
    assert.equal(401, (H.data_plane(s.registry.login_server)))
  end)

  it("recover and deploy: plans, no writes", function()
    local s = H.setup()
    local key = s.key_id:match("/keys/([^/]+)")
    assert(c.keys:delete({ vault = s.vault.name, name = key }))
    local j = dry_json({ "recover", "--vault", s.vault.name, "--key", key })
    assert.equal("vault=reuse key=recover", plan_of(j))
    assert.is_nil(c.keys:get({ vault = s.vault.name, name = key }))
    local rg = H.unique("rg-")
    j = dry_json({ "deploy", "-g", rg, "-l", "westus", "-f", "examples/cmk-template.json", "-n", "cmk",
      "--parameters", "registry_name=" .. H.unique("dep"), "vault_name=" .. s.vault.name,
      "kek_id=" .. s.key_id, "identity_name=" .. H.unique("id-") })
    assert.equal("resource_group=create deployment=deploy", plan_of(j))
    assert.matches("/deployments/cmk$", j.plan[2].id)
    assert.is_nil(c.resource_groups:get({ name = rg }))
  end)

  it("doctor --fix --dry-run: the repairs, their target and reason; none applied, nothing asked", function()
    local s = H.setup()
    -- the access removed by hand (no revocation recorded: a fault the doctor repairs)
    assert(c.vaults:remove_access_policy({ id = s.vault.id, tenant_id = H.seed().tenant_id,
      object_id = s.identity.principal_id, keys = { "get", "wrapKey", "unwrapKey" } }))
    local seq = H.seq()
    local r = H.cli({ "doctor", "-n", s.registry.name, "--fix", "--dry-run", "-o", "json" })
    assert.equal(1, r.code, r.stderr)   -- broken, and left so
    assert.equal(0, #H.writes(seq), H.describe(H.writes(seq)))
    local j = assert(H.json(r.stdout), r.stdout)
    assert.is_true(j.fix.dryRun)
    assert.is_false(j.fix.applied)
    assert.equal("grant", j.fix.plan[1].repair)
    assert.equal(s.vault.id, j.fix.plan[1].id)
    assert.truthy(j.fix.plan[1].reason)
    assert.equal(403, (H.data_plane(s.registry.login_server)))
  end)

  it("library words become flags: a refusal names the flag, not the option", function()
    local r = H.cli({ "setup", "-g", H.unique("rg-"), "-n", H.unique("cli"), "--vault", H.unique("kv-"),
      "--dry-run" })
    assert.equal(2, r.code)
    assert.matches("%[MissingArgument, %-l/%-%-location%]", r.stderr)
    assert.matches("pass %-l/%-%-location", r.stderr)
    assert.is_nil(r.stderr:find("`location`", 1, true))
  end)
end)
