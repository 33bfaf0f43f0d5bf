-- The failures Azure makes, injected by /_emulator/faults and the LRO config, over real HTTPS:
-- each spec shows what the client sees on the wire and what the emulator did (state, log).
--   a write applied whose answer is dropped (after = true), a slow answer past the client's
--   timeout (applied or not, as configured), a throttled long-running-operation poll, an
--   operation that ends Failed with Azure's error body, a token endpoint outage, and random
--   faults of every kind at a ratio per service, reproducible with a seed.
local E = require("support.emulator")
local KV = require("support.keyvault")

local RG_API, ACR_API = "2024-11-01", "2025-04-01"

describe("emulator faults", function()
  local seed, sub
  local function faults(rules)
    local r = E.control("POST", "faults", { rules = rules })
    assert(r.status == 200, r.body)
    return r.json.rules
  end
  local function rg_path(name) return "/subscriptions/" .. sub .. "/resourcegroups/" .. name end
  local function rg_get(name) return E.arm("GET", rg_path(name), nil, { api_version = RG_API }).status end
  -- An ARM request through a client of its own (HTTP/1.1 or 2), with a timeout.
  local function arm_raw(method, path, body, opts)
    opts = opts or {}
    local cl = require("azcmk.http").new({ http_version = opts.http or "2", timeout_ms = opts.timeout_ms or 20000 },
      E.ensure())
    local res, err = E.request({ client = cl, method = method, body = body,
      url = "https://management.azure.com" .. path .. "?api-version=" .. (opts.api or RG_API),
      headers = { Authorization = "Bearer " .. E.arm_token() } })
    cl:close()
    return res, err
  end
  local function log_since(seq, filter)
    local out = {}
    for _, e in ipairs(E.log(seq)) do if not filter or filter(e) then out[#out + 1] = e end end
    return out
  end

  setup(function()
    seed = E.fresh()
    sub = seed.subscription_id
  end)
  after_each(function()
    E.control("DELETE", "faults")
  end)
  teardown(function()
    E.reset()
    E.assert_no_internal_errors()
  end)

  describe("a write applied whose answer is lost (after = true)", function()
    for _, http in ipairs({ "2", "1.1" }) do
      it("drop: the client gets a reset (HTTP/" .. http .. "), the resource group exists", function()
        local name = "fx-drop-" .. http:gsub("%.", "")
        faults({ { method = "PUT", path = rg_path(name), drop = true, after = true, count = 1 } })
        local seq = E.log_seq()
        local res, err = arm_raw("PUT", rg_path(name), { location = "westus" }, { http = http })
        assert.is_nil(res)
        assert.truthy(err)
        -- the write happened: the group is there, and the log says what was done to the answer
        assert.equal(200, rg_get(name))
        local put = log_since(seq, function(e) return e.method == "PUT" end)[1]
        assert.equal("drop_after", put.fault_action)
        assert.equal(444, put.status)
      end)
    end

    it("drop before: nothing applied", function()
      faults({ { method = "PUT", path = rg_path("fx-never"), drop = true, count = 1 } })
      local res = arm_raw("PUT", rg_path("fx-never"), { location = "westus" })
      assert.is_nil(res)
      assert.equal(404, rg_get("fx-never"))
    end)

    it("status after: a 500 in Azure's envelope for a write that was made", function()
      faults({ { method = "PUT", path = rg_path("fx-500"), status = 500, after = true, count = 1 } })
      local res = assert(arm_raw("PUT", rg_path("fx-500"), { location = "westus" }))
      E.assert_arm_error(res, 500, "InternalServerError")
      assert.equal(200, rg_get("fx-500"))
    end)

    it("a Key Vault key version created once, its answer dropped", function()
      KV.rg("fx-kv")
      local v = KV.uniq("fx")
      KV.vault("fx-kv", v)
      faults({ { host = v .. ".vault.azure.net", path = "/keys/cmk/create", drop = true, after = true, count = 1 } })
      local res, err = E.request({ method = "POST", body = { kty = "RSA", key_size = 2048 },
        url = "https://" .. v .. ".vault.azure.net/keys/cmk/create?api-version=" .. KV.DATA_API,
        headers = { Authorization = "Bearer " .. KV.token() } })
      assert.is_nil(res)
      assert.truthy(err)
      local vs = KV.req("GET", v, "/keys/cmk/versions")
      assert.equal(200, vs.status, vs.body)
      assert.equal(1, #vs.json.value)
    end)
  end)

  describe("a slow answer past the client's timeout", function()
    it("after = true: applied at once, the answer comes too late", function()
      faults({ { method = "PUT", path = rg_path("fx-slow-a"), delay_ms = 1500, after = true, count = 1 } })
      local res, err = arm_raw("PUT", rg_path("fx-slow-a"), { location = "westus" }, { timeout_ms = 400 })
      assert.is_nil(res)
      assert.truthy(tostring(err):lower():find("time"), tostring(err))
      assert.equal(200, rg_get("fx-slow-a"))
    end)

    it("delay then drop: never applied, however long one waits", function()
      faults({ { method = "PUT", path = rg_path("fx-slow-n"), delay_ms = 800, drop = true, count = 1 } })
      local res = arm_raw("PUT", rg_path("fx-slow-n"), { location = "westus" }, { timeout_ms = 300 })
      assert.is_nil(res)
      os.execute("sleep 1")
      assert.equal(404, rg_get("fx-slow-n"))
    end)

    it("a bare delay: processed after the wait, also when the client gave up (applied late)", function()
      faults({ { method = "PUT", path = rg_path("fx-slow-w"), delay_ms = 600, count = 1 } })
      local res = assert(arm_raw("PUT", rg_path("fx-slow-w"), { location = "westus" }, { timeout_ms = 5000 }))
      assert.equal(201, res.status, res.body)
      assert.truthy(res.info.total_ms >= 550, res.info.total_ms)
      for _, http in ipairs({ "2", "1.1" }) do
        local name = "fx-late-" .. http:gsub("%.", "")
        faults({ { method = "PUT", path = rg_path(name), delay_ms = 1000, count = 1 } })
        local seq = E.log_seq()
        assert.is_nil((arm_raw("PUT", rg_path(name), { location = "westus" }, { timeout_ms = 300, http = http })))
        -- a read-back right after the timeout finds nothing; the write lands when the wait ends
        assert.equal(404, rg_get(name))
        os.execute("sleep 1.2")
        assert.equal(200, rg_get(name))
        local put = log_since(seq, function(e) return e.method == "PUT" end)[1]
        assert.equal("delay", put.fault_action)
      end
    end)
  end)

  describe("long-running operations", function()
    local function reg_path(name)
      return rg_path("fx-acr") .. "/providers/Microsoft.ContainerRegistry/registries/" .. name
    end
    local function poll(url)
      return assert(E.request({ url = url, headers = { Authorization = "Bearer " .. E.arm_token() } }))
    end
    setup(function()
      assert.truthy(E.arm("PUT", rg_path("fx-acr"), { location = "westus" }, { api_version = RG_API }).status < 300)
    end)

    it("a throttled poll (429 + Retry-After on operationStatuses) does not count as a poll", function()
      -- the operation completes at its second poll
      E.control("POST", "config", { lro = { polls = 2 } })
      faults({ { path = "*/operationStatuses/", status = 429, retry_after = 3, count = 1 } })
      local r = E.arm("PUT", reg_path("fxpoll1"), { location = "westus", sku = { name = "Basic" } },
        { api_version = ACR_API })
      assert.equal(201, r.status, r.body)
      local p = poll(r.headers["azure-asyncoperation"])
      local err = E.assert_arm_error(p, 429, "SubscriptionRequestsThrottled")
      assert.equal("3", p.headers["retry-after"])
      assert.truthy(err.message:find("Please try again after '3' seconds", 1, true))
      -- the operation did not count the throttled poll: two more polls to complete it
      p = poll(r.headers["azure-asyncoperation"])
      assert.equal(200, p.status)
      assert.equal("InProgress", p.json.status)
      assert.equal("Succeeded", poll(r.headers["azure-asyncoperation"]).json.status)
      E.control("POST", "config", { lro = { polls = 1 } })
    end)

    it("a throttled Location poll (operationresults of a group deletion)", function()
      assert.truthy(E.arm("PUT", rg_path("fx-del"), { location = "westus" }, { api_version = RG_API }).status < 300)
      faults({ { path = "*/operationresults/", status = 429, retry_after = 2, count = 1 } })
      local d = E.arm("DELETE", rg_path("fx-del"), nil, { api_version = RG_API })
      assert.equal(202, d.status)
      local p = poll(d.headers["location"])
      E.assert_arm_error(p, 429, "SubscriptionRequestsThrottled")
      assert.equal(200, rg_get("fx-del")) -- still there (Deleting)
      assert.equal(200, poll(d.headers["location"]).status)
      assert.equal(404, rg_get("fx-del"))
    end)

    it("ends Failed with Azure's error body on the status, the result and the resource (lro.fail_next)", function()
      E.control("POST", "config", { lro = { fail_next = 1, fail_code = "ZoneCapacityExhausted",
        fail_message = "No capacity left in the zone." } })
      local r = E.arm("PUT", reg_path("fxfail1"), { location = "westus", sku = { name = "Basic" } },
        { api_version = ACR_API })
      assert.equal(201, r.status, r.body)
      local st = poll(r.headers["azure-asyncoperation"])
      assert.equal(200, st.status)
      assert.equal("Failed", st.json.status)
      assert.same({ code = "ZoneCapacityExhausted", message = "No capacity left in the zone." }, st.json.error)
      assert.is_nil(st.json.endTime) -- Container Registry's status body is {status, error} (recorded traffic)
      local g = E.arm("GET", reg_path("fxfail1"), nil, { api_version = ACR_API })
      assert.equal(200, g.status)
      assert.equal("Failed", g.json.properties.provisioningState)
      -- a group deletion forced to fail: the Location answer is the error, the group stays
      assert.truthy(E.arm("PUT", rg_path("fx-keep"), { location = "westus" }, { api_version = RG_API }).status < 300)
      E.control("POST", "config", { lro = { fail_next = 1 } })
      local d = E.arm("DELETE", rg_path("fx-keep"), nil, { api_version = RG_API })
      local res = poll(d.headers["location"])
      E.assert_arm_error(res, 400, "ZoneCapacityExhausted") -- (the code and text configured above stay)
      local kept = E.arm("GET", rg_path("fx-keep"), nil, { api_version = RG_API })
      assert.equal(200, kept.status)
      assert.equal("Succeeded", kept.json.properties.provisioningState)
    end)

    it("lro_fail: the operation this request starts fails (a fault rule)", function()
      faults({ { method = "PUT", path = reg_path("fxfail2"), lro_fail = true, count = 1 } })
      local r = E.arm("PUT", reg_path("fxfail2"), { location = "westus", sku = { name = "Basic" } },
        { api_version = ACR_API })
      assert.equal(201, r.status, r.body)
      local st = poll(r.headers["azure-asyncoperation"])
      assert.equal("Failed", st.json.status)
      assert.equal("InternalServerError", st.json.error.code)
      assert.truthy(#st.json.error.message > 0)
      assert.equal("Failed", E.arm("GET", reg_path("fxfail2"), nil, { api_version = ACR_API }).json.properties
        .provisioningState)
      -- the rule fired once: the same PUT again succeeds
      r = E.arm("PUT", reg_path("fxfail2"), { location = "westus", sku = { name = "Basic" } },
        { api_version = ACR_API })
      assert.equal("Succeeded", poll(r.headers["azure-asyncoperation"]).json.status)
    end)
  end)

  describe("a token endpoint outage", function()
    local function token()
      return E.request({ method = "POST", url = "https://login.microsoftonline.com/" .. seed.tenant_id ..
        "/oauth2/v2.0/token", form = { grant_type = "client_credentials", client_id = seed.owner.app_id,
        client_secret = seed.owner.client_secret, scope = "https://management.azure.com/.default" } })
    end
    local function imds()
      -- a connection of its own: libcurl silently re-sends a request whose reused HTTP/1.1
      -- connection closed without an answer, which would hide the drop
      local cl = require("azcmk.http").new({ timeout_ms = 20000 }, E.ensure())
      local res, err = E.request({ client = cl, headers = { Metadata = "true" },
        url = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01" ..
        "&resource=https://management.azure.com/" })
      cl:close()
      return res, err
    end

    it("Entra ID answers 503 then drops, on every login host name (service = login); no token is issued", function()
      faults({ { service = "login", status = 503, count = 1 }, { service = "login", drop = true, count = 1 } })
      local seq = E.log_seq()
      local r = assert(token())
      assert.equal(503, r.status)
      assert.equal("temporarily_unavailable", r.json.error)
      assert.truthy(r.json.error_description:find("^AADSTS"))
      assert.is_nil(r.json.access_token)
      local res, err = token()
      assert.is_nil(res)
      assert.truthy(err)
      r = assert(token())
      assert.equal(200, r.status)
      assert.truthy(r.json.access_token)
      local seen = {}
      for _, e in ipairs(log_since(seq, function(e) return e.kind == "login" end)) do
        seen[#seen + 1] = string.format("%d:%s", e.status, tostring(e.fault_action))
      end
      assert.same({ "503:status:503", "444:drop", "200:nil" }, seen)
    end)

    it("IMDS and App Service answer 500 / drop (service = msi)", function()
      faults({ { service = "msi", status = 500, count = 1 }, { service = "msi", drop = true, count = 1 } })
      local r = assert(imds())
      assert.equal(500, r.status)
      assert.truthy(r.json.error)
      assert.is_nil(r.json.access_token)
      assert.is_nil((imds()))
      r = assert(imds())
      assert.equal(200, r.status, r.body)
      assert.truthy(r.json.access_token)
    end)
  end)

  describe("random faults of every kind", function()
    -- 40 GETs through one rule; the outcome of each: status or "x" (no answer)
    local function run(n)
      local out = {}
      local tok = E.arm_token()
      for _ = 1, n do
        local cl = require("azcmk.http").new({ timeout_ms = 20000 }, E.ensure())
        local res = cl:request({ url = "https://management.azure.com/subscriptions/" .. sub ..
          "/resourcegroups?api-version=" .. RG_API, headers = { Authorization = "Bearer " .. tok } })
        cl:close()
        out[#out + 1] = res and tostring(res.status) or "x"
      end
      return out
    end

    it("fire at the ratio, every kind of the service, the same ones again with the same seed", function()
      local rule = { service = "arm", path = "/subscriptions/" .. sub .. "/resourcegroups", ratio = 0.5, seed = 42,
        pick = "all" }
      faults({ rule })
      local seq = E.log_seq()
      local first = run(40)
      local kinds, faulted = {}, 0
      for _, e in ipairs(log_since(seq, function(e) return e.kind == "arm" end)) do
        if e.fault_action then
          faulted = faulted + 1
          kinds[e.fault_action] = true
        end
      end
      assert.truthy(faulted >= 10 and faulted <= 30, "faulted " .. faulted)
      local n = 0
      for _ in pairs(kinds) do n = n + 1 end
      assert.truthy(n >= 4, "kinds seen: " .. n)
      -- the same rule again (a new rule: its draws start over): the same outcomes, in order
      E.control("DELETE", "faults")
      faults({ rule })
      assert.same(first, run(40))
      -- another seed draws otherwise
      E.control("DELETE", "faults")
      rule.seed = 43
      faults({ rule })
      assert.are_not.same(first, run(40))
    end)

    it("per service: a Key Vault rule leaves Resource Manager alone", function()
      faults({ { service = "vault", ratio = 1, seed = 1, pick = { { status = 503 } } } })
      for _, s in ipairs(run(5)) do assert.equal("200", s) end
      local kv = assert(E.request({ url = "https://kv1.vault.azure.net/keys?api-version=7.4" }))
      assert.equal(503, kv.status)
    end)

    it("refuses rules it cannot apply", function()
      for _, bad in ipairs({
        { service = "dns", status = 500 }, { pick = {}, ratio = 0.1 }, { pick = "some" },
        { pick = "all", status = 500 }, { pick = { { colour = "red" } } }, { after = true },
        { lro_fail = "yes" }, { status = 500, drop = true }, { seed = -1, status = 500 },
      }) do
        local r = E.control("POST", "faults", { rules = { bad } })
        assert.equal(400, r.status, require("cjson").encode(bad))
      end
    end)
  end)
end)
