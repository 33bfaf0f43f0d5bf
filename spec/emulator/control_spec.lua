-- The control API under /_emulator/: health, reset, clock, faults, log, seed, config,
-- federated-token, managed identity hosts.
local E = require("support.emulator")

describe("emulator control API", function()
  local seed
  setup(function()
    E.ensure()
    E.reset()
    seed = E.seed()
  end)
  after_each(function()
    E.control("DELETE", "faults")
  end)
  teardown(function()
    E.reset()
    E.assert_no_internal_errors()
  end)

  it("answers on every emulated host name", function()
    for _, host in ipairs({ "management.azure.com", "login.microsoftonline.com", "kv1.vault.azure.net",
      "reg.azurecr.io", "login.chinacloudapi.cn", "management.usgovcloudapi.net" }) do
      local res = assert(E.request({ url = "https://" .. host .. "/_emulator/health" }))
      assert.equal(200, res.status)
      assert.equal("ok", res.json.status)
    end
  end)

  it("refuses the control API for another Host (DNS rebinding), on both ports", function()
    local e = E.ensure()
    local function code(port, scheme, host, path)
      local p = io.popen("curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert " .. e.AZCMK_CA_FILE ..
        " --connect-to ::127.0.0.1:" .. port .. " -H 'Host: " .. host .. "' " .. scheme ..
        "://management.azure.com" .. path)
      local out = p:read("*a")
      p:close()
      return out
    end
    for _, host in ipairs({ "evil.example.com", "attacker.test:" .. e.http_port, "management.azure.com.evil.test" }) do
      assert.equal("421", code(e.http_port, "http", host, "/_emulator/seed"), host)
      assert.equal("421", code(e.port, "https", host, "/_emulator/seed"), host)
    end
    for _, host in ipairs({ "127.0.0.1:" .. e.http_port, "localhost", "[::1]:" .. e.http_port,
      "management.azure.com", "169.254.169.254" }) do
      assert.equal("200", code(e.http_port, "http", host, "/_emulator/health"), host)
    end
  end)

  it("writes DIR/federated-token readable by its owner only", function()
    local p = io.popen("stat -c %a " .. seed.workload.token_file)
    assert.equal("600", (p:read("*a"):gsub("%s+", "")))
    p:close()
  end)

  it("seed: fixed ids, credentials and files", function()
    assert.equal("7d1b2c4e-5f60-4a8b-9c1d-2e3f4a5b6c7d", seed.tenant_id)
    assert.equal(E.ensure().AZURE_SUBSCRIPTION_ID, seed.subscription_id)
    assert.equal(E.ensure().AZURE_CLIENT_SECRET, seed.owner.client_secret)
    assert.truthy(io.open(seed.owner.certificate_file)):close()
    assert.truthy(io.open(seed.owner.pkcs12_file)):close()
    assert.truthy(#seed.owner.pkcs12_password >= 16)
    assert.truthy(seed.owner.x5t and seed.owner.x5t_s256)
    assert.truthy(seed.noaccess.client_secret and seed.vm.principal_id and seed.appservice.identity_header)
    -- the PKCS#12 opens with the seed's password
    local core = require("azcmk.core")
    local der = io.open(seed.owner.pkcs12_file, "rb"):read("*a")
    local b = assert(core.load_pkcs12(der, seed.owner.pkcs12_password))
    assert.equal(seed.owner.x5t, b.cert:x5t())
  end)

  it("clock: GET, advance, refuses negative or missing values", function()
    local c0 = E.control("GET", "clock").json
    local c1 = E.control("POST", "clock", { advance = 3600 }).json
    assert.truthy(c1.offset >= c0.offset + 3600)
    assert.truthy(c1.now >= c0.now + 3600)
    assert.truthy(c1.iso:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%d%dZ$"))
    for _, bad in ipairs({ { advance = -5 }, {}, { advance = "10" } }) do
      local r = E.control("POST", "clock", bad)
      assert.equal(400, r.status)
      assert.truthy(r.json.error.message)
    end
    local r = E.control("POST", "clock", "{not json")
    assert.equal(400, r.status)
  end)

  it("reset: seeded state back, clock back to real time", function()
    local rg = "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/reset-me"
    assert.equal(201, E.arm("PUT", rg, { location = "westus" }, { api_version = "2024-11-01" }).status)
    E.control("POST", "clock", { advance = 100 })
    assert.equal(200, E.control("POST", "reset").status)
    assert.equal(0, E.control("GET", "clock").json.offset)
    E.arm_token() -- a fresh token (cached ones are still valid: same keys)
    local r = E.arm("GET", rg, nil, { api_version = "2024-11-01" })
    E.assert_arm_error(r, 404, "ResourceGroupNotFound")
    -- the seeded role assignment is back
    r = E.arm("GET", "/subscriptions/" .. seed.subscription_id .. "/providers/Microsoft.Authorization/" ..
      "roleAssignments", nil, { api_version = "2022-04-01" })
    assert.equal(200, r.status)
    assert.truthy(#r.json.value >= 1)
  end)

  describe("faults", function()
    local url
    setup(function()
      url = "https://management.azure.com/subscriptions/" .. seed.subscription_id .. "?api-version=2022-12-01"
    end)
    local function get()
      return E.arm("GET", "/subscriptions/" .. seed.subscription_id, nil, { api_version = "2022-12-01" })
    end

    it("status + Retry-After in the service's envelope, count limits it", function()
      local r = E.control("POST", "faults", { rules = { { host = "management.azure.com", path = "/subscriptions/",
        method = "GET", status = 429, retry_after = 7, count = 2 } } })
      assert.equal(200, r.status)
      assert.equal(1, #r.json.rules)
      local a, b, c = get(), get(), get()
      assert.equal(429, a.status)
      assert.equal("7", a.headers["retry-after"])
      -- Azure's throttling body (emu.throttle), unless the rule gives its own code / message
      assert.equal("SubscriptionRequestsThrottled", a.json.error.code)
      assert.truthy(a.json.error.message:find("Please try again after '7' seconds", 1, true), a.body)
      assert.equal(429, b.status)
      assert.equal(200, c.status, url)
    end)

    it("matches host, path prefix (case-insensitive) and method only", function()
      E.control("POST", "faults", { rules = { { path = "/SUBSCRIPTIONS/" .. seed.subscription_id .. "/resourcegroups",
        method = "PUT", status = 503 } } })
      assert.equal(200, get().status)
      local r = E.arm("PUT", "/subscriptions/" .. seed.subscription_id .. "/resourcegroups/faulty",
        { location = "westus" }, { api_version = "2024-11-01" })
      assert.equal(503, r.status)
      assert.equal("ServiceUnavailable", r.json.error.code)
      E.control("DELETE", "faults")
      E.control("POST", "faults", { rules = { { host = "*.vault.azure.net", status = 500 } } })
      assert.equal(200, get().status)
      local kv = assert(E.request({ url = "https://kv1.vault.azure.net/keys?api-version=7.4" }))
      assert.equal(500, kv.status)
      assert.truthy(kv.json.error.code)
    end)

    it("Entra and IMDS errors use their own envelopes", function()
      E.control("POST", "faults", { rules = { { host = "login.microsoftonline.com", status = 503, count = 1 },
        { path = "/metadata/identity", status = 500, count = 1 } } })
      local r = assert(E.request({ method = "POST", url = "https://login.microsoftonline.com/" .. seed.tenant_id ..
        "/oauth2/v2.0/token", form = { grant_type = "client_credentials" } }))
      assert.equal(503, r.status)
      assert.equal("temporarily_unavailable", r.json.error)
      assert.truthy(r.json.error_codes)
      r = assert(E.request({ url = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01" ..
        "&resource=https://management.azure.com/", headers = { Metadata = "true" } }))
      assert.equal(500, r.status)
      assert.truthy(r.json.error)
    end)

    it("delay_ms delays, then answers normally", function()
      E.control("POST", "faults", { rules = { { path = "/subscriptions", delay_ms = 300, count = 1 } } })
      local t0 = os.time()
      local c = require("azcmk.core")
      assert(c)
      local r = get()
      assert.equal(200, r.status)
      assert.truthy(r.info.total_ms >= 280, "took " .. tostring(r.info.total_ms))
      assert.truthy(os.time() - t0 < 5)
    end)

    it("drop closes the connection without an answer", function()
      E.control("POST", "faults", { rules = { { path = "/subscriptions", drop = true, count = 1 } } })
      local cl = require("azcmk.http").new({ http_version = "1.1" }, E.ensure())
      local res, err = cl:request({ url = url, headers = { Authorization = "Bearer " .. E.arm_token() } })
      assert.is_nil(res)
      assert.truthy(err)
      res = assert(cl:request({ url = url, headers = { Authorization = "Bearer " .. E.arm_token() } }))
      assert.equal(200, res.status)
      cl:close()
    end)

    it("ratio fires at random", function()
      E.control("POST", "faults", { rules = { { path = "/subscriptions", status = 503, ratio = 0.5 } } })
      local n503 = 0
      for _ = 1, 40 do if get().status == 503 then n503 = n503 + 1 end end
      assert.truthy(n503 > 3 and n503 < 37, "503s: " .. n503)
    end)

    it("GET lists the rules, bad rules are refused with 400", function()
      E.control("POST", "faults", { rules = { { path = "/x", status = 500 } } })
      assert.equal(1, #E.control("GET", "faults").json.rules)
      for _, bad in ipairs({ { rules = {} }, { rules = { { path = "/x" } } }, { rules = { { status = "500" } } },
        { rules = { { status = 500, colour = "red" } } }, { rules = { { status = 500, ratio = 2 } } } }) do
        assert.equal(400, E.control("POST", "faults", bad).status)
      end
      assert.equal(200, E.control("DELETE", "faults").status)
      assert.equal(0, #E.control("GET", "faults").json.rules)
    end)

    it("never applies to the control API", function()
      E.control("POST", "faults", { rules = { { status = 500 } } })
      assert.equal(200, E.control("GET", "health").status)
    end)
  end)

  describe("log", function()
    it("one JSON line per request with the documented fields, principal set", function()
      local seq = E.log_seq()
      E.arm("GET", "/subscriptions/" .. seed.subscription_id, nil, { api_version = "2022-12-01" })
      local entries = E.log(seq)
      local hit
      for _, e in ipairs(entries) do
        if e.path == "/subscriptions/" .. seed.subscription_id then hit = e end
      end
      assert.truthy(hit, "request not in the log")
      assert.equal("GET", hit.method)
      assert.equal("management.azure.com", hit.host)
      assert.equal("api-version=2022-12-01", hit.query)
      assert.equal(200, hit.status)
      assert.equal(seed.owner.object_id, hit.principal)
      assert.truthy(type(hit.ms) == "number" and hit.ts and hit.seq > seq)
    end)

    it("never shows secrets: client secrets, assertions, tokens, identity headers", function()
      local seq = E.log_seq()
      local tok = E.token()
      -- secrets in the query string too (a client mistake) are redacted
      E.request({ method = "POST", url = "https://login.microsoftonline.com/" .. seed.tenant_id ..
        "/oauth2/v2.0/token?client_secret=" .. E.urlencode(seed.owner.client_secret) .. "&client_assertion=abc.def.ghi",
        form = { grant_type = "client_credentials", client_id = seed.owner.app_id,
          client_secret = seed.owner.client_secret, scope = "https://management.azure.com/.default" } })
      E.request({ url = seed.appservice.identity_endpoint .. "?api-version=2019-08-01&resource=https://vault.azure.net",
        headers = { ["X-IDENTITY-HEADER"] = seed.appservice.identity_header } })
      E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01", token = tok })
      local body = E.control("GET", "log?since=" .. seq).body
      for _, secret in ipairs({ seed.owner.client_secret, seed.appservice.identity_header, tok, "abc.def.ghi",
        E.urlencode(seed.owner.client_secret) }) do
        assert.falsy(body:find(secret, 1, true), "secret in the log")
      end
      assert.truthy(body:find("client_secret=REDACTED", 1, true))
    end)

    it("DELETE forgets earlier entries", function()
      E.control("GET", "health")
      E.control("DELETE", "log")
      local entries = E.log(0)
      assert.truthy(#entries <= 2, #entries .. " entries left")
    end)
  end)

  it("config: LRO pacing is settable and validated", function()
    local r = E.control("POST", "config", { lro = { polls = 3, retry_after = 0 } })
    assert.equal(200, r.status)
    assert.equal(3, r.json.lro.polls)
    assert.equal(400, E.control("POST", "config", { lro = { polls = -1 } }).status)
    assert.equal(400, E.control("POST", "config", { lro = { speed = 1 } }).status)
    assert.equal(400, E.control("POST", "config", { other = 1 }).status)
    E.reset()
    assert.equal(1, E.control("GET", "config").json.lro.polls)
  end)

  it("federated-token: a JWT of the emulator's issuer, also written to the token file", function()
    local r = E.control("POST", "federated-token", { lifetime = 600 })
    assert.equal(200, r.status)
    local core = require("azcmk.core")
    local _, payload = core.jwt_decode(r.json.token)
    local claims = require("cjson").decode(payload)
    assert.equal(seed.workload.issuer, claims.iss)
    assert.equal(seed.workload.subject, claims.sub)
    assert.equal(r.json.token, io.open(seed.workload.token_file):read("*a"))
    assert.equal(400, E.control("POST", "federated-token", { lifetime = -1 }).status)
  end)

  it("vm/identities: attach and detach a user-assigned identity; unknown ids are refused", function()
    local sub = seed.subscription_id
    E.arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/mi-rg", { location = "westus" },
      { api_version = "2024-11-01" })
    local id = E.arm("PUT", "/subscriptions/" .. sub .. "/resourceGroups/mi-rg/providers/" ..
      "Microsoft.ManagedIdentity/userAssignedIdentities/uai1", { location = "westus" },
      { api_version = "2024-11-30" }).json.id
    local r = E.control("POST", "vm/identities", { id = id })
    assert.equal(200, r.status)
    assert.same({ id }, r.json.user_assigned)
    assert.equal(404, E.control("POST", "vm/identities", { id = id .. "x" }).status)
    r = E.control("DELETE", "vm/identities", { id = id })
    assert.same({}, r.json.user_assigned)
  end)

  it("routes: lists every registered route", function()
    local r = E.control("GET", "routes")
    assert.equal(200, r.status)
    local seen = {}
    for _, x in ipairs(r.json.routes) do seen[x.kind .. " " .. x.path] = true end
    assert.truthy(seen["login /{tenant}/oauth2/v2.0/token"])
    assert.truthy(seen["msi /metadata/identity/oauth2/token"])
    assert.truthy(seen["arm /subscriptions/{sub}/resourcegroups/{rg}"])
  end)

  it("config latency_ms: every request to a service waits that long (the log's ms), reset clears it", function()
    local r = E.control("POST", "config", { latency_ms = 150 })
    assert.equal(200, r.status, r.body)
    assert.equal(150, r.json.latency_ms)
    local seq = E.log_seq()
    assert.equal(200, E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01" }).status)
    local served
    for _, e in ipairs(E.log(seq)) do if e.path == "/subscriptions" then served = e end end
    assert.truthy(served)
    assert.is_true(served.ms >= 150, "served in " .. tostring(served.ms) .. " ms")
    assert.equal(400, E.control("POST", "config", { latency_ms = -1 }).status)
    E.reset()
    assert.equal(0, E.control("GET", "config").json.latency_ms)
  end)

  it("subscriptions: more subscriptions the owner sees (the same ids for the same prefix); reset drops them", function()
    local r = E.control("POST", "subscriptions", { count = 3, prefix = "spec" })
    assert.equal(200, r.status, r.body)
    assert.equal(3, #r.json.subscriptions)
    assert.same(r.json.subscriptions, E.control("POST", "subscriptions", { count = 3, prefix = "spec" }).json
      .subscriptions)
    local function listed()
      local ids = {}
      local res = E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01" })
      for _, s in ipairs(assert(res.json and res.json.value, res.body)) do ids[s.subscriptionId] = true end
      return ids
    end
    local ids = listed()
    for _, id in ipairs(r.json.subscriptions) do assert.truthy(ids[id], id) end
    assert.equal(400, E.control("POST", "subscriptions", { count = 0 }).status)
    E.reset()
    ids = listed()
    for _, id in ipairs(r.json.subscriptions) do assert.is_nil(ids[id], id) end
  end)

  it("unknown control paths are 404, wrong methods 405", function()
    assert.equal(404, E.control("GET", "nothing-here").status)
    assert.equal(405, E.control("PUT", "reset").status)
  end)
end)
