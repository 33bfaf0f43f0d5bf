-- The audit narrowed with -g / -n against the emulator: registries in two resource groups of the
-- seeded subscription; the filter picks the group (case-insensitively) or the registry, the
-- registries filtered out are never inspected (no GET in the emulator's log), and a filter that
-- matches nothing gives summary.registries = 0 and, on the command line, exit 1 with a line
-- saying what to check.
local H = require("support.cmk_helper")
local W = require("support.cmk_world")
local E = H.E
local audit = require("azcmk.playbook.audit")

describe("audit -g / -n", function()
  local sub, rg_a, rg_b
  local in_a, in_b = {}, {}

  local function registry(rg, name)
    W.wait(E.arm("PUT", W.reg_path(sub, rg, name), { location = "westus", sku = { name = "Standard" } },
      { api_version = W.ACR_API }))
    return name
  end

  setup(function()
    H.env()
    H.reset()
    H.p = H.pipeline()
    sub = H.seed().subscription_id
    rg_a, rg_b = W.uniq("FiltRgA"), W.uniq("FiltRgB")   -- mixed case: the match ignores it
    W.create_rg(sub, rg_a)
    W.create_rg(sub, rg_b)
    in_a = { registry(rg_a, W.uniq("filta")), registry(rg_a, W.uniq("filta")) }
    in_b = { registry(rg_b, W.uniq("filtb")) }
  end)

  teardown(function()
    E.assert_no_internal_errors()
    H.reset()
  end)

  local function names(result)
    local t = {}
    for _, r in ipairs(result.registries) do t[#t + 1] = r.name end
    table.sort(t)
    return t
  end

  local function sorted(list)
    local t = {}
    for i, v in ipairs(list) do t[i] = v end
    table.sort(t)
    return t
  end

  --- GETs of a registry itself (the list request ends in /registries, not in a name).
  local function inspected(since, name)
    local n = 0
    for _, e in ipairs(H.log(since)) do
      if e.method == "GET" and tostring(e.path):lower():match("/registries/" .. name:lower() .. "$") then
        n = n + 1
      end
    end
    return n
  end

  it("-g keeps the registries of that resource group; the list answers them all (no GET each)", function()
    local seq = H.seq()
    local result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub }, resource_group = rg_a }))
    assert.same(sorted(in_a), names(result))
    assert.equal(2, result.summary.registries)
    assert.equal(2, result.summary.ok)
    assert.equal(0, result.summary.cmk)
    assert.is_true(result.summary.listed >= 3)
    assert.equal(2, result.subscriptions[1].registries)
    assert.equal(result.summary.listed, result.subscriptions[1].listed)
    assert.same({ resource_group = rg_a }, result.filter)
    for _, r in ipairs(result.registries) do
      assert.equal(rg_a:lower(), tostring(r.resource_group):lower())
    end
    -- without CMK there is nothing to read beyond the list: no registry is read on its own
    for _, n in ipairs(in_a) do assert.equal(0, inspected(seq, n), n) end
    assert.equal(0, inspected(seq, in_b[1]))
    assert.equal(0, #H.writes(seq))
  end)

  it("compares the resource group case-insensitively, as Azure does", function()
    local upper = assert(audit.audit({ pipeline = H.p, subscriptions = { sub },
      resource_group = rg_b:upper() }))
    assert.same(in_b, names(upper))
    local lower = assert(audit.audit({ pipeline = H.p, subscriptions = { sub },
      resource_group = rg_a:lower(), sequential = true }))
    assert.same(sorted(in_a), names(lower))
  end)

  it("-n keeps one registry, with or without -g", function()
    local seq = H.seq()
    local result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub }, name = in_a[2] }))
    assert.same({ in_a[2] }, names(result))
    assert.equal(1, result.summary.registries)
    assert.equal(0, inspected(seq, in_a[1]))
    assert.equal(0, inspected(seq, in_b[1]))
    result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub }, resource_group = rg_a,
      name = in_a[1]:upper() }))
    assert.same({ in_a[1] }, names(result))
    -- the name in another group than -g's: nothing
    result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub }, resource_group = rg_a,
      name = in_b[1] }))
    assert.equal(0, result.summary.registries)
    assert.equal(0, #result.registries)
  end)

  it("a filter that matches nothing: no registry inspected, summary.registries 0", function()
    local seq = H.seq()
    local result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub },
      resource_group = "no-such-rg" }))
    assert.equal(0, result.summary.registries)
    assert.equal(0, result.summary.ok + result.summary.warn + result.summary.fail + result.summary.cmk)
    assert.is_true(result.summary.listed >= 3)
    assert.equal(0, result.subscriptions[1].registries)
    for _, n in ipairs({ in_a[1], in_a[2], in_b[1] }) do assert.equal(0, inspected(seq, n), n) end
  end)

  it("refuses an empty -g or -n before any request", function()
    local seq = H.seq()
    local r, err = audit.audit({ pipeline = H.p, subscriptions = { sub }, resource_group = "" })
    assert.is_nil(r)
    assert.equal("input", err.kind)
    assert.equal("InvalidFilter", err.code)
    r, err = audit.audit({ pipeline = H.p, subscriptions = { sub }, name = "" })
    assert.is_nil(r)
    assert.equal("InvalidFilter", err.code)
    local sent = H.sent(seq)
    assert.equal(0, #sent, H.describe(sent))
  end)

  it("azcmk audit -g / -n: the table, JSON and the exit status", function()
    local r = H.cli({ "audit", "--subscription", sub, "-g", rg_a:upper() })
    assert.equal(0, r.code, r.stderr)
    for _, n in ipairs(in_a) do assert.matches(n .. "%s+Standard%s+off", r.stdout) end
    assert.not_matches(in_b[1], r.stdout)
    assert.matches("2 registries in 1 subscription%(s%): 0 with CMK; 2 ok, 0 warn, 0 fail", r.stdout)
    assert.matches("2 of %d+ registries in 1 subscription%(s%) match %-g " .. rg_a:upper(), r.stderr)
    r = H.cli({ "audit", "--subscription", sub, "--resource-group", rg_b, "--name", in_b[1], "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    local j = assert(H.json(r.stdout), r.stdout)
    assert.equal(1, #j.registries)
    assert.equal(in_b[1], j.registries[1].name)
    assert.equal(1, j.summary.registries)
    assert.same({ resourceGroup = rg_b, name = in_b[1] }, j.filter)
    -- no match: exit 1, the table says so, stderr says what to check
    r = H.cli({ "audit", "--subscription", sub, "-g", rg_b, "-n", "nosuchreg1" })
    assert.equal(1, r.code, r.stderr)
    assert.matches("no registry matched %-g " .. rg_b .. " %-n nosuchreg1 in 1 subscription%(s%)", r.stdout)
    assert.matches("0 registries in 1 subscription%(s%)", r.stdout)
    assert.matches("azcmk audit: no registry matched %-g " .. rg_b .. " %-n nosuchreg1", r.stderr)
    assert.matches("NoMatchingRegistry", r.stderr)
    assert.matches("next: check the resource group and registry names", r.stderr)
    r = H.cli({ "audit", "--subscription", sub, "-n", "nosuchreg1", "-o", "json" })
    assert.equal(1, r.code, r.stderr)
    j = assert(H.json(r.stdout), r.stdout)   -- stdout stays JSON only
    assert.equal(0, j.summary.registries)
    assert.equal(0, #j.registries)
    r = H.cli({ "audit", "--help" })
    assert.equal(0, r.code)
    assert.matches("%[%-g RESOURCE_GROUP%] %[%-n REGISTRY%]", r.stdout)
    r = H.cli({ "audit", "--subscription", sub, "-g", "" })
    assert.equal(2, r.code)
    assert.matches("InvalidFilter", r.stderr)
  end)
end)
