-- The audit as a fleet job, against the emulator: what it sends (the emulator's request log)
-- for a small fleet - three CMK registries sharing one key and one identity, two without CMK -
-- rows streamed as they are judged (on_row, -o ndjson), a 429 waited out without losing a
-- registry, pacing by the remaining-reads headers under the emulator's throttling (no 429 when
-- the budget allows; a misjudged pace is throttled, waits and loses nothing), the Prometheus
-- output; and nextLink paging over a scripted transport.
local H = require("support.cmk_helper")
local W = require("support.cmk_world")
local E = H.E
local audit = require("azcmk.playbook.audit")
local json = require("azcmk.json")

describe("audit of a fleet", function()
  local sub, w, cmk, plain

  setup(function()
    H.env()
    H.reset()
    H.p = H.pipeline()
    sub = H.seed().subscription_id
    w = W.world()
    cmk = { w.reg }
    -- two more registries on the same key and identity (one versionless)
    for i, kid in ipairs({ w.kid, W.versionless(w.kid) }) do
      local name = W.uniq("fleetcmk" .. i)
      W.wait(E.arm("PUT", W.reg_path(sub, w.rg, name), W.cmk_body(w.uai, kid), { api_version = W.ACR_API }))
      cmk[#cmk + 1] = name
    end
    plain = {}
    for i = 1, 2 do
      local name = W.uniq("fleetplain" .. i)
      W.wait(E.arm("PUT", W.reg_path(sub, w.rg, name), { location = "westus", sku = { name = "Basic" } },
        { api_version = W.ACR_API }))
      plain[#plain + 1] = name
    end
  end)

  teardown(function()
    E.control("DELETE", "faults")
    E.assert_no_internal_errors()
    H.reset()
  end)

  local function count(entries, pred)
    local n = 0
    for _, e in ipairs(entries) do if pred(e) then n = n + 1 end end
    return n
  end

  it("reads the list, one identity list and the shared key once - no registry on its own", function()
    local seq = H.seq()
    local rows = {}
    local result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub }, resource_group = w.rg,
      on_row = function(r) rows[#rows + 1] = r end }))
    local log = H.log(seq)
    -- streamed, not kept
    assert.equal(5, #rows)
    assert.equal(0, #result.registries)
    assert.equal(5, result.summary.registries)
    assert.equal(3, result.summary.cmk)
    for _, r in ipairs(rows) do
      assert.equal("ok", r.health, r.name .. ": " .. table.concat(r.problems, "; "))
    end
    local arm = function(e) return e.host == "management.azure.com" end
    local lists = count(log, function(e)
      local path = e.path:lower()
      return arm(e) and e.method == "GET" and path:match("/providers/microsoft.containerregistry/registries$")
    end)
    assert.is_true(lists >= 1, H.describe(log))
    -- no registry read one by one
    assert.equal(0, count(log, function(e)
      return arm(e) and e.path:lower():match("/registries/[^/]+$") ~= nil
    end), H.describe(log))
    -- the identity from its subscription's list, once; never by id
    assert.equal(1, count(log, function(e)
      return arm(e) and e.path:lower():match("/providers/microsoft.managedidentity/userassignedidentities$")
    end), H.describe(log))
    assert.equal(0, count(log, function(e)
      return arm(e) and e.path:lower():match("/userassignedidentities/[^/]+$") ~= nil
    end))
    -- the key: three registries, one read of its vault (the versioned id is the newest version)
    local kv = count(log, function(e)
      return e.host == w.vault:lower() .. ".vault.azure.net" and e.method == "GET" and e.status == 200
    end)
    assert.equal(1, kv, H.describe(log))
    -- the run's memo: the identity list and the key read once, each used twice more
    assert.equal(2, result.stats.cache_reads)
    assert.equal(4, result.stats.cache_hits)
    -- the data plane of each CMK registry (anonymous), nothing else
    assert.equal(3, count(log, function(e) return e.path == "/v2/" end))
    assert.equal(0, #H.writes(seq))
  end)

  it("waits out a 429 as Retry-After says and loses no registry", function()
    E.control("POST", "faults", { rules = { { host = "management.azure.com",
      path = "/subscriptions/" .. sub .. "/providers/Microsoft.ContainerRegistry/registries",
      method = "GET", status = 429, retry_after = 1, count = 1 } } })
    local result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub }, resource_group = w.rg }))
    E.control("DELETE", "faults")
    assert.equal(5, result.summary.registries)
    assert.equal(1, result.stats.throttled)
    assert.is_nil(result.subscriptions[1].error)
  end)

  -- The emulator's Resource Manager read bucket at Azure's scale (scale 1, not the suite's
  -- x1000), made tiny: 1 read, refilled at 0.5 per second (slow enough that a loaded machine's
  -- delays do not refill it between the two reads). The audit of the fleet's group sends
  -- two ARM reads (the registry list, then the identity list), more than the bucket holds at
  -- once but within what it refills. The suite's settings are put back afterwards.
  describe("under the emulator's throttling", function()
    local saved
    before_each(function()
      saved = E.control("GET", "config").json.throttle
      local r = E.control("POST", "config", { throttle = { enabled = true, scale = 1,
        arm = { enabled = true, reads = { bucket = 1, refill = 0.5 } } } })
      assert.equal(200, r.status, r.body)
    end)
    after_each(function()
      assert.equal(200, E.control("POST", "config", { throttle = saved }).status)
    end)

    local function throttled(log)
      return count(log, function(e) return e.status == 429 end)
    end

    it("paces itself by the remaining-reads headers: a fleet that fits the budget meets no 429", function()
      local seq = H.seq()
      local result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub }, resource_group = w.rg,
        pace = { rate = 0.5 } }))
      local log = H.log(seq)
      assert.equal(0, throttled(log), H.describe(log))
      assert.equal(5, result.summary.registries)
      assert.equal(5, result.summary.ok)
      assert.equal(0, result.stats.throttled)
      -- the second read waited for the refill instead of being refused
      assert.is_true(result.stats.paced >= 1, "paced " .. result.stats.paced)
      assert.is_true(result.stats.paced_seconds > 0, "waited " .. result.stats.paced_seconds)
    end)

    it("throttled (its pace misjudged), waits as Retry-After says and loses no row", function()
      local seq = H.seq()
      -- a pacer that believes in 1,000 reads a second sends at once and meets the empty bucket
      local result = assert(audit.audit({ pipeline = H.p, subscriptions = { sub }, resource_group = w.rg,
        pace = { rate = 1000 } }))
      local log = H.log(seq)
      local n429 = throttled(log)
      assert.is_true(n429 >= 1, H.describe(log))
      for _, e in ipairs(log) do
        if e.status == 429 then assert.equal("management.azure.com", e.host) end
      end
      assert.equal(n429, result.stats.throttled)
      assert.is_nil(result.subscriptions[1].error)
      assert.equal(5, result.summary.registries)
      assert.equal(5, result.summary.ok)
      -- every 429 was followed by the same read, answered
      local ok_after = count(log, function(e)
        local path = e.path:lower()
        return e.status == 200 and path:match("/providers/microsoft.managedidentity/userassignedidentities$")
      end)
      assert.equal(1, ok_after, H.describe(log))
    end)
  end)

  it("azcmk audit -o ndjson: a JSON line per registry, then the summary", function()
    local r = H.cli({ "audit", "--subscription", sub, "-g", w.rg, "-o", "ndjson" })
    assert.equal(0, r.code, r.stderr)
    local names, last = {}, nil
    for line in r.stdout:gmatch("[^\n]+") do
      local v = assert(json.decode(line), line)
      if v.summary then
        last = v
      else
        names[#names + 1] = v.name
        assert.equal("table", type(v.problems))
        -- camelCase, as -o json
        assert.truthy(v.resourceGroup, line)
        assert.is_nil(v.resource_group, line)
        if v.cmk then assert.truthy(v.keyVersionInUse, line) end
      end
    end
    table.sort(names)
    local want = {}
    for _, n in ipairs(cmk) do want[#want + 1] = n end
    for _, n in ipairs(plain) do want[#want + 1] = n end
    table.sort(want)
    assert.same(want, names)
    assert.equal(5, last.summary.registries)
  end)

  it("azcmk audit -o prometheus: the metrics of each registry", function()
    local r = H.cli({ "audit", "--subscription", sub, "-g", w.rg, "-o", "prometheus" })
    assert.equal(0, r.code, r.stderr)
    local lbl = 'subscription="' .. sub .. '",resource_group="' .. w.rg .. '",registry="' .. cmk[1] .. '"'
    local esc = lbl:gsub("%p", "%%%0")
    assert.matches("azcmk_registry_cmk_state{" .. esc .. ',state="ok"} 1', r.stdout)
    assert.matches("azcmk_registry_cmk_enabled{" .. esc .. "} 1", r.stdout)
    assert.matches("azcmk_key_version_age_seconds{" .. esc .. "} %d+", r.stdout)
    assert.matches("azcmk_key_rotation_due{" .. esc .. "} 0", r.stdout)
    assert.matches("azcmk_doctor_findings{" .. esc .. "} 0", r.stdout)
    assert.matches("azcmk_registry_last_check_timestamp_seconds{" .. esc .. "} %d+", r.stdout)
    -- one HELP and TYPE per family
    local _, helps = r.stdout:gsub("# HELP azcmk_registry_cmk_state ", "")
    assert.equal(1, helps)
  end)
end)

describe("audit paging (scripted transport)", function()
  it("follows nextLink across pages of the registry list", function()
    local stub = require("support.stub_transport")
    local sub = "11111111-2222-4333-8444-555555555555"
    local base = "https://management.azure.com/subscriptions/" .. sub
      .. "/providers/Microsoft.ContainerRegistry/registries"
    local function reg(n)
      return { id = "/subscriptions/" .. sub
        .. "/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r" .. n,
        name = "r" .. n, location = "westus", sku = { name = "Basic" }, properties = {} }
    end
    local t = stub.new(function(req)
      local body
      if req.url:find("skip=2", 1, true) then
        body = { value = { reg(3) } }
      else
        body = { value = { reg(1), reg(2) }, nextLink = base .. "?api-version=2025-04-01&skip=2" }
      end
      return { status = 200, headers = { ["content-type"] = "application/json" }, body = json.encode(body) }
    end)
    local p = assert(require("azcmk.pipeline").new({ cloud = "AzureCloud", transport = t, log = "off",
      credential = require("azcmk.credential.static").new({ token = "t" }) }))
    local seen = {}
    local result = assert(audit.audit({ pipeline = p, subscriptions = { sub }, sequential = true,
      on_row = function(r) seen[#seen + 1] = r.name end }))
    assert.same({ "r1", "r2", "r3" }, seen)
    assert.equal(3, result.summary.listed)
    assert.equal(2, #t.calls)
  end)
end)

describe("audit scheduling (scripted transport)", function()
  -- More subscriptions than tasks at once, each with more CMK registries than the queue of
  -- registry tasks holds (4 x concurrency): every listing task must finish on its own (it
  -- inspects a registry itself when the queue is full) - none may wait for tasks that cannot
  -- start while every running task is a listing one.
  for _, conc in ipairs({ 1, 2 }) do
    it("finishes with every row at concurrency " .. conc .. " (5 subscriptions, 12 CMK each)", function()
      local stub = require("support.stub_transport")
      local subs = {}
      for i = 1, 5 do subs[i] = string.format("%08d-2222-4333-8444-555555555555", i) end
      local function reg(sub, n)
        local rg = "/subscriptions/" .. sub .. "/resourceGroups/rg"
        return { id = rg .. "/providers/Microsoft.ContainerRegistry/registries/r" .. n, name = "r" .. n,
          location = "westus", sku = { name = "Premium" },
          identity = { type = "UserAssigned", userAssignedIdentities = {
            [rg .. "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"] = {
              principalId = "p", clientId = "c" } } },
          properties = { loginServer = "r" .. n .. ".azurecr.io", encryption = { status = "enabled",
            keyVaultProperties = { keyIdentifier = "https://kv.vault.azure.net/keys/k/0123456789abcdef",
              versionedKeyIdentifier = "https://kv.vault.azure.net/keys/k/0123456789abcdef",
              identity = "c" } } } }
      end
      local t = stub.new(function(req)
        local sub = req.url:match("^https://management%.azure%.com/subscriptions/([^/?]+)/providers/"
          .. "Microsoft%.ContainerRegistry/registries%?")
        if not sub then   -- anything else (identities, the key, the probe): not there
          return { status = 404, headers = { ["content-type"] = "application/json" },
            body = '{"error":{"code":"NotFound","message":"not here"}}' }
        end
        local value = {}
        for n = 1, 12 do value[n] = reg(sub, n) end
        return { status = 200, headers = { ["content-type"] = "application/json" },
          body = json.encode({ value = value }) }
      end)
      -- every task waiting on the others would sleep for ever: fail instead of hanging
      local naps = 0
      local function sleep(sec)
        naps = naps + 1
        if naps > 2000 then error("the audit's tasks all wait: a deadlock", 0) end
        require("azcmk.clock").sleep(sec)
      end
      local p = assert(require("azcmk.pipeline").new({ cloud = "AzureCloud", transport = t, log = "off",
        sleep = sleep, credential = require("azcmk.credential.static").new({ token = "t" }) }))
      local rows = {}
      local result = assert(audit.audit({ pipeline = p, subscriptions = subs, concurrency = conc,
        on_row = function(r) rows[#rows + 1] = r.subscription .. "/" .. r.name end }))
      assert.equal(60, #rows)
      assert.equal(60, result.summary.registries)
      assert.equal(60, result.summary.cmk)
      local seen = {}
      for _, k in ipairs(rows) do
        assert.is_nil(seen[k], "a registry judged twice: " .. k)
        seen[k] = true
      end
      for _, s in ipairs(result.subscriptions) do assert.equal(12, s.listed) end
    end)
  end
end)
