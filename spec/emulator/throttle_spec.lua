-- Throttling (emu.throttle) over real HTTPS: Resource Manager's token buckets per principal,
-- subscription and operation type, the subscription-wide and tenant buckets, the remaining-
-- requests headers, 429 + Retry-After + Azure's body; Key Vault's weighted per-vault and
-- per-subscription limits and its 429; refill on the emulator's clock; config and reset.
local E = require("support.emulator")
local KV = require("support.keyvault")

local RG_API = "2024-11-01"

describe("emulator throttling", function()
  local seed, sub, sub2
  local function rgs(s, opts)
    return E.arm("GET", "/subscriptions/" .. (s or sub) .. "/resourcegroups", nil,
      { api_version = RG_API, token = opts and opts.token })
  end
  local function configure(t)
    local r = E.control("POST", "config", { throttle = t })
    assert(r.status == 200, r.body)
    return r.json.throttle
  end

  setup(function()
    seed = E.fresh()
    sub, sub2 = seed.subscription_id, seed.subscription2_id
  end)
  before_each(function()
    E.reset()
    configure({ enabled = true, scale = 1, arm = { enabled = true }, keyvault = { enabled = true } })
  end)
  teardown(function()
    E.reset()
    E.assert_no_internal_errors()
  end)

  it("counts down per principal, subscription and operation type; 429 with Retry-After and Azure's body", function()
    -- a refill of 0.25/s: a token comes back every 4 s, so nothing refills during the loop
    configure({ arm = { reads = { bucket = 5, refill = 0.25 } } })
    -- the subscription-wide bucket (75, refilled at 3.75/s) takes one token from each as well
    local global
    for left = 4, 0, -1 do
      local r = rgs()
      assert.equal(200, r.status, r.body)
      assert.equal(tostring(left), r.headers["x-ms-ratelimit-remaining-subscription-reads"])
      global = tonumber(r.headers["x-ms-ratelimit-remaining-subscription-global-reads"])
      assert.truthy(global >= 70 + left and global <= 74, global)
    end
    local r = rgs()
    local err = E.assert_arm_error(r, 429, "SubscriptionRequestsThrottled")
    -- Retry-After: until one token is back (4 s at 0.25/s, less the moment the loop took)
    local ra = tonumber(r.headers["retry-after"])
    assert.truthy(ra == 4 or ra == 3, "Retry-After " .. tostring(ra))
    assert.equal("Number of 'read' requests for subscription '" .. sub .. "' actor '" .. seed.owner.object_id ..
      "' exceeded. Please try again after '" .. ra .. "' seconds after additional tokens are available. Refer " ..
      "to https://aka.ms/arm-throttling for additional information.", err.message)
    assert.equal("0", r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    -- a throttled request takes nothing from the subscription-wide bucket
    assert.truthy(tonumber(r.headers["x-ms-ratelimit-remaining-subscription-global-reads"]) >= global)
    -- writes and deletes have buckets of their own (200 each)
    local w = E.arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/thr-w", { location = "westus" },
      { api_version = RG_API })
    assert.equal(201, w.status, w.body)
    assert.equal("199", w.headers["x-ms-ratelimit-remaining-subscription-writes"])
    assert.equal("2999", w.headers["x-ms-ratelimit-remaining-subscription-global-writes"])
    assert.is_nil(w.headers["x-ms-ratelimit-remaining-subscription-reads"])
    local d = E.arm("DELETE", "/subscriptions/" .. sub .. "/resourcegroups/thr-w", nil, { api_version = RG_API })
    assert.equal(202, d.status, d.body)
    assert.equal("199", d.headers["x-ms-ratelimit-remaining-subscription-deletes"])
    assert.equal("2999", d.headers["x-ms-ratelimit-remaining-subscription-global-deletes"])
    -- the 429s are counted in /_emulator/health
    assert.truthy(E.control("GET", "health").json.throttled >= 1)
  end)

  it("refills on the emulator's clock: simulated time and real time", function()
    configure({ arm = { reads = { bucket = 3, refill = 0.25 } } })
    for _ = 1, 3 do assert.equal(200, rgs().status) end
    assert.equal(429, rgs().status)
    -- four simulated seconds give one token back
    E.control("POST", "clock", { advance = 4 })
    local tok = E.arm_token()
    local r = rgs(nil, { token = tok })
    assert.equal(200, r.status, r.body)
    assert.equal("0", r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    -- an idle minute fills the bucket, never beyond its size
    E.control("POST", "clock", { advance = 60 })
    r = rgs(nil, { token = E.arm_token() })
    assert.equal("2", r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    -- real time refills as well: 2 tokens a second
    configure({ arm = { reads = { bucket = 2, refill = 2 } } })
    tok = E.arm_token()
    assert.equal(200, rgs(nil, { token = tok }).status)
    assert.equal(200, rgs(nil, { token = tok }).status)
    assert.equal(429, rgs(nil, { token = tok }).status)
    os.execute("sleep 0.6")
    r = rgs(nil, { token = tok })
    assert.equal(200, r.status, r.body)
  end)

  it("keeps principals and subscriptions apart; the subscription-wide bucket is shared", function()
    -- global 1.4: the subscription-wide bucket holds 7 reads, a principal's 5 (a token per 20 s)
    configure({ arm = { reads = { bucket = 5, refill = 0.05 }, global = 1.4 } })
    for _ = 1, 5 do assert.equal(200, rgs().status) end
    E.assert_arm_error(rgs(), 429, "SubscriptionRequestsThrottled")
    -- the same principal in the second subscription: a bucket of its own
    local r = rgs(sub2)
    assert.equal(200, r.status, r.body)
    assert.equal("4", r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    -- another principal in the first subscription: its own bucket (403: counted before RBAC) ...
    local other = E.arm_token("noaccess")
    r = rgs(nil, { token = other })
    E.assert_arm_error(r, 403, "AuthorizationFailed")
    assert.equal("4", r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    assert.equal("1", r.headers["x-ms-ratelimit-remaining-subscription-global-reads"])
    assert.equal(403, rgs(nil, { token = other }).status)
    -- ... until the subscription-wide bucket is empty for everyone
    r = rgs(nil, { token = other })
    local err = E.assert_arm_error(r, 429, "SubscriptionRequestsThrottled")
    local prefix = "Number of 'read' requests for subscription '" .. sub .. "' exceeded."
    assert.equal(prefix, err.message:sub(1, #prefix))
    assert.equal("0", r.headers["x-ms-ratelimit-remaining-subscription-global-reads"])
  end)

  it("throttles tenant-level requests per principal and tenant", function()
    configure({ arm = { tenant = { reads = { bucket = 2, refill = 0.25 } } } })
    local function subs() return E.arm("GET", "/subscriptions", nil, { api_version = "2022-12-01" }) end
    local r = subs()
    assert.equal(200, r.status, r.body)
    assert.equal("1", r.headers["x-ms-ratelimit-remaining-tenant-reads"])
    assert.is_nil(r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    assert.equal(200, subs().status)
    r = subs()
    local err = E.assert_arm_error(r, 429, "TenantRequestsThrottled")
    assert.truthy(err.message:find("tenant '" .. seed.tenant_id .. "' actor '" .. seed.owner.object_id .. "'", 1,
      true), err.message)
    assert.truthy(tonumber(r.headers["retry-after"]) >= 1)
    -- subscription requests do not use the tenant's bucket
    assert.equal(200, rgs().status)
  end)

  it("does not count unauthenticated requests; with throttling off shows the hourly numbers", function()
    configure({ arm = { reads = { bucket = 2, refill = 0.25 } } })
    local r = rgs(nil, { token = false })
    E.assert_arm_error(r, 401, "AuthenticationFailed")
    assert.is_nil(r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    assert.equal("1", rgs().headers["x-ms-ratelimit-remaining-subscription-reads"])
    configure({ enabled = false })
    for _ = 1, 3 do
      r = rgs()
      assert.equal(200, r.status)
      assert.equal("11999", r.headers["x-ms-ratelimit-remaining-subscription-reads"])
    end
    local w = E.arm("PUT", "/subscriptions/" .. sub .. "/resourcegroups/thr-off", { location = "westus" },
      { api_version = RG_API })
    assert.equal("1199", w.headers["x-ms-ratelimit-remaining-subscription-writes"])
  end)

  describe("Key Vault", function()
    local rg = "thr-kv"
    local v1, v2
    before_each(function() -- (after the outer before_each's reset)
      KV.rg(rg)
      v1, v2 = KV.uniq("thr"), KV.uniq("thr")
      KV.vault(rg, v1)
      KV.vault(rg, v2)
      for _, v in ipairs({ v1, v2 }) do
        assert.equal(200, KV.req("POST", v, "/keys/k2048/create", { kty = "RSA", key_size = 2048 }).status)
      end
    end)

    -- with every limit as published, 4 units per 10 s per vault: `scale` 0.001 of 4,000
    local function small(extra)
      local t = { scale = 0.001 }
      for k, v in pairs(extra or {}) do t[k] = v end
      configure(t)
    end

    it("counts weighted transactions per vault; 429 Throttled in Key Vault's shape, no Retry-After", function()
      small()
      for _ = 1, 4 do assert.equal(200, KV.req("GET", v1, "/keys/k2048").status) end
      local r = KV.req("GET", v1, "/keys/k2048")
      assert.equal(429, r.status, r.body)
      assert.same({ error = { code = "Throttled", message = "Request was not processed because too many requests " ..
        "were received. Reason: VaultRequestTypeLimitReached" } }, r.json)
      assert.is_nil(r.headers["retry-after"])
      assert.equal("westus", r.headers["x-ms-keyvault-region"])
      -- per vault: the second vault has its own budget
      assert.equal(200, KV.req("GET", v2, "/keys/k2048").status)
      -- the bucket refills in 10 simulated seconds (the published window)
      E.control("POST", "clock", { advance = 10 })
      assert.equal(200, KV.req("GET", v1, "/keys/k2048").status)
    end)

    it("weighs RSA-3072 four times RSA-2048, and key creation as Key Vault's CREATE column", function()
      assert.equal(200, KV.req("POST", v1, "/keys/k3072/create", { kty = "RSA", key_size = 3072 }).status)
      small()
      -- one RSA-3072 operation (limit 1,000 of 4,000) takes the four units
      assert.equal(200, KV.req("POST", v1, "/keys/k3072/wrapkey", { alg = "RSA-OAEP",
        value = "AAECAwQFBgcICQoLDA0ODw" }).status)
      assert.equal(429, KV.req("GET", v1, "/keys/k2048").status)
      -- creating a key costs 4000/20 = 200 units: more than this small bucket ever holds
      small({ scale = 0.05 }) -- 200 units
      local c = KV.req("POST", v1, "/keys/knew/create", { kty = "RSA", key_size = 2048 })
      assert.equal(200, c.status, c.body)
      assert.equal(429, KV.req("POST", v1, "/keys/knew2/create", { kty = "RSA", key_size = 2048 }).status)
    end)

    it("limits the subscription (per region) to 5 vaults' worth; the settings say how much", function()
      small({ keyvault = { subscription = 1.5 } }) -- the subscription holds 6 units, a vault 4
      for _ = 1, 4 do assert.equal(200, KV.req("GET", v1, "/keys/k2048").status) end
      assert.equal(200, KV.req("GET", v2, "/keys/k2048").status)
      assert.equal(200, KV.req("GET", v2, "/keys/k2048").status)
      local r = KV.req("GET", v2, "/keys/k2048")
      assert.equal(429, r.status)
      assert.equal("Throttled", r.json.error.code)
      assert.truthy(r.json.error.message:find("SubscriptionRequestTypeLimitReached", 1, true))
    end)
  end)

  describe("configuration", function()
    it("merges POST /_emulator/config into the current settings and refuses unknown or bad ones", function()
      local c = configure({ arm = { writes = { bucket = 7 } } })
      assert.equal(7, c.arm.writes.bucket)
      assert.equal(10, c.arm.writes.refill)
      assert.equal(250, c.arm.reads.bucket)
      assert.equal(4000, c.keyvault.software.rsa2048)
      for _, bad in ipairs({ { arm = { reads = { bucket = 0 } } }, { arm = { nope = 1 } }, { enabled = "yes" },
        { keyvault = { hsm = 5 } }, { arm = { global = -1 } } }) do
        local r = E.control("POST", "config", { throttle = bad })
        assert.equal(400, r.status, r.body)
      end
      assert.equal(7, E.control("GET", "config").json.throttle.arm.writes.bucket)
    end)

    it("reset goes back to the start configuration with every bucket full", function()
      local start = E.control("POST", "reset") and E.control("GET", "config").json.throttle
      configure({ enabled = true, scale = 1, arm = { reads = { bucket = 1, refill = 0.25 } } })
      assert.equal(200, rgs().status)
      assert.equal(429, rgs().status)
      E.reset()
      assert.same(start, E.control("GET", "config").json.throttle)
      assert.equal(200, rgs().status)
    end)

    it("starts with AZCMK_EMULATOR_THROTTLE: a JSON object merged into Azure's numbers, a bad value refused", function()
      -- a directory of its own, kept between runs: a reused directory starts in a fraction of a second
      local port, dir = E.free_port(), "build/spec-throttle-env"
      local function start(value)
        local p = io.popen("AZCMK_EMULATOR_THROTTLE='" .. value .. "' ./bin/azcmk emulator start --port " .. port ..
          " --dir " .. dir .. " 2>&1")
        local out = p:read("*a")
        p:close()
        return out
      end
      local out = start("sometimes")
      assert.falsy(out:find("AZCMK_CONNECT_TO", 1, true), out)
      assert.truthy(out:find("AZCMK_EMULATOR_THROTTLE: not a JSON object (give on, off, or a JSON object", 1, true),
        out)
      out = start('{"arm":{"reads":{"bucket":3}}}')
      local ok, err = pcall(function()
        assert.truthy(out:find("AZCMK_CONNECT_TO", 1, true), out)
        local p = io.popen("curl -s --connect-to ::127.0.0.1:" .. port .. " --cacert " .. dir ..
          "/ca.pem https://management.azure.com/_emulator/config")
        local cfg = require("cjson").decode(p:read("*a")).throttle
        p:close()
        assert.is_true(cfg.enabled)
        assert.equal(3, cfg.arm.reads.bucket)
        assert.equal(25, cfg.arm.reads.refill)
        assert.equal(200, cfg.arm.writes.bucket)
      end)
      E.stop(dir)
      assert(ok, err)
    end)

    it("the suite's emulator started with the suite's setting (spec/support/emulator_throttle.json)", function()
      E.reset()
      local cfg = E.control("GET", "config").json.throttle
      for k, v in pairs(require("cjson").decode(E.THROTTLE)) do
        if type(v) ~= "table" then assert.same(v, cfg[k], k) end
      end
      assert.equal(250, cfg.arm.reads.bucket) -- Azure's numbers underneath
    end)
  end)
end)
