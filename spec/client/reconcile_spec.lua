-- Writes whose outcome is unknown, read back (azcmk.client.reconcile), against the emulator
-- over real HTTPS: its faults drop the answer of a write it applied (`after`), drop or fail a
-- write before applying it, and fail the read-back.
local H = require("support.cmk_helper")
local E = H.E
local client = require("azcmk.client")
local Keys = require("azcmk.client.keys")
local Vaults = require("azcmk.client.vaults")

describe("reconciling ambiguous writes against the emulator", function()
  local c, seed, rg, vault, vault_url, ident, lines

  local function faults(rules) assert.equal(200, E.control("POST", "faults", { rules = rules }).status) end
  local function count(entries, method, path)
    local n = 0
    for _, e in ipairs(entries) do
      if e.method == method and e.path == path then n = n + 1 end
    end
    return n
  end
  local function versions(name)
    return #assert(c.keys:versions({ vault_url = vault_url, name = name }))
  end

  setup(function()
    local _
    _, seed = H.start()
    lines = {}
    -- retries without waiting; warnings (the reconcile lines) into `lines`
    local p = H.pipeline({ sleep = function() end, log = require("azcmk.log").new({ level = "warn",
      sink = function(l) lines[#lines + 1] = l end }) })
    c = client.new(p, { subscription = seed.subscription_id })
    rg = H.unique("rg-")
    assert(c.resource_groups:create_or_update({ name = rg, location = "westus" }))
    vault = assert(c.vaults:create({ resource_group = rg, name = H.unique("kv-"), location = "westus",
      tenant_id = seed.tenant_id, access_policies = { { tenantId = seed.tenant_id,
        objectId = seed.owner.object_id, permissions = { keys = { "all" } } } } }))
    vault_url = vault.properties.vaultUri:gsub("/$", "")
    ident = assert(c.identities:create({ resource_group = rg, name = "id-rec", location = "westus" }))
    -- the vault's first request is the bodiless challenge: done here, so faults meet real writes
    assert(c.keys:list({ vault_url = vault_url }))
  end)
  teardown(function() H.done() end)
  before_each(function() E.control("DELETE", "faults"); for i = #lines, 1, -1 do lines[i] = nil end end)

  describe("a key create (POST, not repeatable)", function()
    it("applied: the answer is lost, the version is found by its tag and returned, not made again", function()
      local name = H.unique("k")
      local path = "/keys/" .. name .. "/create"
      faults({ { service = "vault", path = path, method = "POST", drop = true, after = true, count = 1 } })
      local seq = H.seq()
      local kb, err = c.keys:create({ vault_url = vault_url, name = name })
      assert.is_nil(err)
      assert.truthy(kb.key.kid)
      assert.is_string(kb.tags[Keys.INTENT_TAG])
      assert.equal(1, count(H.log(seq), "POST", path))
      assert.equal(1, versions(name))
      assert.matches("reconcile new version of key " .. name .. ": applied", lines[1], 1, true)
    end)

    it("not applied: a dropped or failed request is sent again, once", function()
      for _, fault in ipairs({ { drop = true }, { status = 500 }, { status = 503, retry_after = 1 } }) do
        local name = H.unique("k")
        local path = "/keys/" .. name .. "/create"
        local rule = { service = "vault", path = path, method = "POST", count = 1 }
        for k, v in pairs(fault) do rule[k] = v end
        faults({ rule })
        local seq = H.seq()
        local kb, err = c.keys:create({ vault_url = vault_url, name = name })
        assert.is_nil(err)
        assert.truthy(kb.key.kid)
        assert.equal(2, count(H.log(seq), "POST", path))
        assert.equal(1, versions(name))
        E.control("DELETE", "faults")
      end
      assert.matches(": not applied", lines[#lines], 1, true)
    end)

    it("unknown: reading back fails too; the error says what to check; the intent again finds it",
      function()
        local name = H.unique("k")
        assert(c.keys:create({ vault_url = vault_url, name = name }))            -- the key exists
        faults({ { service = "vault", path = "/keys/" .. name .. "/create", method = "POST", drop = true,
          after = true, count = 1 },
          { service = "vault", path = "/keys/" .. name .. "/versions", method = "GET", status = 403,
            count = 1 } })
        local kb, err = c.keys:create({ vault_url = vault_url, name = name })
        assert.is_nil(kb)
        assert.equal("WriteOutcomeUnknown", err.code)
        assert.equal("unknown", err.outcome)
        assert.matches("may or may not have been applied", err.message, 1, true)
        assert.matches("run the same command again", err.hint, 1, true)
        local once = err.hint:match(Keys.INTENT_TAG:gsub("%-", "%%-") .. "=(%x+)")
        assert.is_string(once)
        assert.matches(": unknown", lines[#lines], 1, true)
        E.control("DELETE", "faults")
        assert.equal(2, versions(name))                 -- it was applied
        -- the same intent again: the version made for it is reused, nothing new is made
        local seq = H.seq()
        local again = assert(c.keys:create({ vault_url = vault_url, name = name, once = once }))
        assert.is_true(again.reused)
        assert.equal(once, again.tags[Keys.INTENT_TAG])
        assert.equal(0, count(H.log(seq), "POST", "/keys/" .. name .. "/create"))
        assert.equal(2, versions(name))
      end)

    it("timed out, applied late: read back again after a wait, found, not sent again", function()
      local name = H.unique("k")
      local path = "/keys/" .. name .. "/create"
      -- 1 s per try; the emulator holds the request 1.5 s, then applies it (its client is gone)
      local log = require("azcmk.log").new({ level = "warn", sink = function(l) lines[#lines + 1] = l end })
      local slow = client.new(H.pipeline({ retry = { try_timeout_ms = 1000 }, log = log }),
        { subscription = seed.subscription_id })
      assert(slow.keys:list({ vault_url = vault_url }))
      faults({ { service = "vault", path = path, method = "POST", delay_ms = 1500, count = 1 } })
      local seq = H.seq()
      local kb, err = slow.keys:create({ vault_url = vault_url, name = name })
      assert.is_nil(err)
      assert.truthy(kb.key.kid)
      assert.equal(1, count(H.log(seq), "POST", path))
      assert.equal(1, versions(name))
      assert.matches(": applied (after Timeout)", lines[#lines], 1, true)
    end)

    it("once: the same intent twice is one version, another intent a new one", function()
      local name = H.unique("k")
      local a = assert(c.keys:create({ vault_url = vault_url, name = name, once = Keys.intent("a") }))
      local b = assert(c.keys:create({ vault_url = vault_url, name = name, once = Keys.intent("a") }))
      assert.equal(a.key.kid, b.key.kid)
      assert.is_true(b.reused)
      local d = assert(c.keys:create({ vault_url = vault_url, name = name, once = Keys.intent("b") }))
      assert.are_not.equal(a.key.kid, d.key.kid)
      assert.equal(2, versions(name))
    end)
  end)

  it("a key rotate (POST) whose answer is lost: the one new version is found", function()
    local name = H.unique("k")
    local first = assert(c.keys:create({ vault_url = vault_url, name = name }))
    local path = "/keys/" .. name .. "/rotate"
    faults({ { service = "vault", path = path, method = "POST", drop = true, after = true, count = 1 } })
    local seq = H.seq()
    local kb = assert(c.keys:rotate({ vault_url = vault_url, name = name }))
    assert.equal(1, count(H.log(seq), "POST", path))
    assert.equal(2, versions(name))
    local kids = {}
    for _, it in ipairs(assert(c.keys:versions({ vault_url = vault_url, name = name }))) do
      kids[it.kid] = true
    end
    assert.are_not.equal(first.key.kid, kb.key.kid)     -- the rotation's version, read back
    assert.is_true(kids[kb.key.kid])
  end)

  it("a role assignment whose every try lost its answer is looked up by principal, role and scope",
    function()
      local path = vault.id .. "/providers/Microsoft.Authorization/roleAssignments/"
      faults({ { service = "arm", path = path, method = "PUT", drop = true, after = true, count = 10 } })
      local seq = H.seq()
      local a, err = c.role_assignments:create({ scope = vault.id,
        principal_id = ident.properties.principalId, role = "crypto_service_encryption_user" })
      assert.is_nil(err)
      assert.truthy(a.id)
      local puts = 0
      for _, e in ipairs(H.log(seq)) do
        if e.method == "PUT" and e.path:lower():find(path:lower(), 1, true) == 1 then puts = puts + 1 end
      end
      assert.equal(4, puts)                   -- the PUT is repeatable: the first and 3 retries
      assert.equal(1, #assert(c.role_assignments:find({ scope = vault.id,
        principal_id = ident.properties.principalId, role = "crypto_service_encryption_user" })))
      assert.matches("reconcile role assignment of .*: applied", lines[#lines])
    end)

  it("an access-policy edit whose every try lost its answer is read back from the vault", function()
    faults({ { service = "arm", path = vault.id .. "/accessPolicies/add", method = "PUT", drop = true,
      after = true, count = 10 } })
    assert(c.vaults:add_access_policy({ id = vault.id, tenant_id = seed.tenant_id,
      object_id = ident.properties.principalId }))
    E.control("DELETE", "faults")
    local principal = ident.properties.principalId
    assert.is_true(Vaults.policy_grants(assert(c.vaults:get({ id = vault.id })), principal))
    faults({ { service = "arm", path = vault.id .. "/accessPolicies/remove", method = "PUT", status = 500,
      after = true, count = 10 } })
    assert(c.vaults:remove_access_policy({ id = vault.id, tenant_id = seed.tenant_id,
      object_id = ident.properties.principalId }))
    E.control("DELETE", "faults")
    assert.is_false(Vaults.policy_grants(assert(c.vaults:get({ id = vault.id })), principal))
  end)
end)
