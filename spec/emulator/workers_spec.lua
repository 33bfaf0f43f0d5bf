-- State is shared by every nginx worker: many parallel requests over several connections see
-- one world, and racing creates resolve atomically.
local E = require("support.emulator")
local core = require("azcmk.core")
local cjson = require("cjson.safe")

describe("state across workers", function()
  local seed, S, client, auth
  setup(function()
    E.ensure()
    E.reset()
    seed = E.seed()
    S = "https://management.azure.com/subscriptions/" .. seed.subscription_id
    client = require("azcmk.http").new({ http_version = "1.1" }, E.ensure())
    auth = { Authorization = "Bearer " .. E.arm_token(), ["Content-Type"] = "application/json" }
  end)
  teardown(function()
    client:close()
    E.reset()
    E.assert_no_internal_errors()
  end)

  local function batch(reqs)
    local out = client:batch(reqs, { max_parallel = 16 })
    for i, r in ipairs(out) do
      assert.is_nil(r.error, tostring(r.error))
      r.json = cjson.decode(r.body or "")
      out[i] = r
    end
    return out
  end

  it("parallel requests are served by more than one worker", function()
    local reqs = {}
    for i = 1, 64 do reqs[i] = { url = "https://management.azure.com/_emulator/health" } end
    local pids = {}
    for _, r in ipairs(batch(reqs)) do pids[r.json.pid] = true end
    local n = 0
    for _ in pairs(pids) do n = n + 1 end
    assert.truthy(n >= 2, "only " .. n .. " worker answered")
  end)

  it("racing creates of one resource group: exactly one 201", function()
    local reqs = {}
    for i = 1, 32 do
      reqs[i] = { method = "PUT", url = S .. "/resourcegroups/race?api-version=2024-11-01", headers = auth,
        body = '{"location":"westus"}' }
    end
    local created, ok = 0, 0
    for _, r in ipairs(batch(reqs)) do
      if r.status == 201 then created = created + 1 elseif r.status == 200 then ok = ok + 1 end
    end
    assert.equal(1, created)
    assert.equal(31, ok)
  end)

  it("racing role assignments for one principal, role and scope: one 201, the rest 409", function()
    local reqs = {}
    local body = cjson.encode({ properties = {
      roleDefinitionId = "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
      principalId = seed.noaccess.object_id, principalType = "ServicePrincipal" } })
    for i = 1, 24 do
      reqs[i] = { method = "PUT", url = S .. "/resourceGroups/race/providers/Microsoft.Authorization/" ..
        "roleAssignments/" .. core.uuid4() .. "?api-version=2022-04-01", headers = auth, body = body }
    end
    local counts = {}
    for _, r in ipairs(batch(reqs)) do counts[r.status] = (counts[r.status] or 0) + 1 end
    assert.equal(1, counts[201])
    assert.equal(23, counts[409])
  end)

  it("many creates in parallel, then every reader on every worker sees all of them", function()
    local reqs = {}
    for i = 1, 40 do
      reqs[i] = { method = "PUT", url = S .. "/resourceGroups/race/providers/Microsoft.ManagedIdentity/" ..
        "userAssignedIdentities/par-" .. i .. "?api-version=2024-11-30", headers = auth,
        body = '{"location":"westus"}' }
    end
    local ids = {}
    for _, r in ipairs(batch(reqs)) do
      assert.equal(201, r.status, r.body)
      ids[r.json.properties.principalId] = true
    end
    local n = 0
    for _ in pairs(ids) do n = n + 1 end
    assert.equal(40, n) -- 40 distinct principals
    reqs = {}
    for i = 1, 32 do
      reqs[i] = { url = S .. "/resourceGroups/race/providers/Microsoft.ManagedIdentity/userAssignedIdentities" ..
        "?api-version=2024-11-30", headers = auth }
    end
    for _, r in ipairs(batch(reqs)) do
      assert.equal(200, r.status)
      assert.equal(40, #r.json.value)
    end
  end)

  it("the simulated clock is the same on every worker", function()
    E.control("POST", "clock", { advance = 12345 })
    local reqs = {}
    for i = 1, 32 do reqs[i] = { url = "https://management.azure.com/_emulator/clock" } end
    for _, r in ipairs(batch(reqs)) do assert.equal(12345, r.json.offset) end
    E.reset()
  end)

  it("an operation polled from many connections completes exactly once", function()
    E.control("POST", "config", { lro = { polls = 5, retry_after = 0 } })
    auth.Authorization = "Bearer " .. E.arm_token()
    assert.equal(201, E.arm("PUT", "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/race",
      { location = "westus" }, { api_version = "2024-11-01" }).status)
    local r = E.arm("DELETE", "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/race", nil,
      { api_version = "2024-11-01" })
    assert.equal(202, r.status)
    local reqs = {}
    for i = 1, 20 do reqs[i] = { url = r.headers["location"], headers = auth } end
    local counts = {}
    for _, p in ipairs(batch(reqs)) do counts[p.status] = (counts[p.status] or 0) + 1 end
    assert.equal(4, counts[202])
    assert.equal(16, counts[200])
    E.assert_arm_error(E.arm("GET", "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/race", nil,
      { api_version = "2024-11-01" }), 404, "ResourceGroupNotFound")
  end)
end)
