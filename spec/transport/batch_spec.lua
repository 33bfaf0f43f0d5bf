-- azcmk.transport.batch: p:parallel / p:send_batch / p:arm_batch. First the scheduler over a
-- scripted transport (exchanges of running tasks go out together, or - with a stream - each
-- task resumes on its own answer; waits are parked, the
-- concurrency bound), then against the emulator: every request takes the ordinary path
-- (token, retries honouring Retry-After, structured errors), in parallel.
local H = require("support.cmk_helper")
local pipeline = require("azcmk.pipeline")
local static = require("azcmk.credential.static")
local stub = require("support.stub_transport")

describe("azcmk.transport.batch (scripted transport)", function()
  -- a transport whose batch() records how many exchanges each round carried
  local function batching(answer)
    local t = stub.new(answer or function() return { status = 200 } end)
    t.rounds = {}
    function t.batch(self, reqs, opts)
      self.rounds[#self.rounds + 1] = { n = #reqs, max_parallel = opts.max_parallel }
      return require("azcmk.transport.batch").transport.batch(self, reqs)   -- one by one
    end
    return t
  end

  local function mk(t, sleeps)
    return assert(pipeline.new({ transport = t, cloud = "AzureCloud", log = "off",
      credential = static.new({ token = "T", expires_on = os.time() + 3600 }),
      sleep = function(s) sleeps[#sleeps + 1] = s end, retry = { random = function() return 0 end } }))
  end

  it("sends the exchanges of the running tasks together, at most `concurrency` of them", function()
    local t = batching()
    local p = mk(t, {})
    local reqs = {}
    for i = 1, 5 do reqs[i] = { "GET", "/r" .. i, api_version = "1" } end
    local results, errs = p:arm_batch(reqs, { concurrency = 2 })
    for i = 1, 5 do
      assert.equal(200, results[i].status)
      assert.is_nil(errs[i])
    end
    -- two rounds of two through batch(); the fifth alone goes through request()
    assert.equal(2, #t.rounds)
    assert.same({ 2, 2 }, { t.rounds[1].n, t.rounds[2].n })
    assert.equal(2, t.rounds[1].max_parallel)
    assert.equal(5, #t.calls)
    -- every exchange carried the token and its own client request id
    local ids = {}
    for _, c in ipairs(t.calls) do
      assert.equal("Bearer T", c.headers.Authorization)
      ids[c.headers["x-ms-client-request-id"]] = true
    end
    local n = 0
    for _ in pairs(ids) do n = n + 1 end
    assert.equal(5, n)
  end)

  it("parks a task that waits for its retry while the others go on", function()
    local seen = {}
    local t = batching(function(req)
      local name = req.url:match("/(r%d)")
      seen[#seen + 1] = name
      if name == "r1" and #seen == 1 then return { status = 503, headers = { ["retry-after"] = "0.3" } } end
      return { status = 200 }
    end)
    local waited = {}
    local p = mk(t, {})
    p.sleep = function(s) waited[#waited + 1] = s; require("azcmk.clock").sleep(s) end
    local results = p:arm_batch({ { "GET", "/r1", api_version = "1" }, { "GET", "/r2", api_version = "1" },
      { "GET", "/r3", api_version = "1" } }, { concurrency = 2 })
    for i = 1, 3 do assert.equal(200, results[i].status) end
    assert.equal(2, results[1].attempts)
    -- r3 took r2's place and went out while r1 waited; then the scheduler slept until r1 was due
    assert.same({ "r1", "r2", "r3", "r1" }, seen)
    assert.equal(1, #waited)
    assert.is_true(waited[1] > 0 and waited[1] <= 0.3)
  end)

  it("returns what each task returned, and a task's error as a value", function()
    local p = mk(batching(function() return { status = 404, body = '{"error":{"code":"Nope"}}' } end), {})
    local out = p:parallel({
      function() return 1, 2, 3 end,
      function(v) local r, e = v:arm("GET", "/x", { api_version = "1" }); return r, e and e.code end,
    })
    assert.same({ n = 3, 1, 2, 3 }, out[1])
    assert.equal("Nope", out[2][2])
  end)

  it("raises when a task raises or is not a function", function()
    local p = mk(batching(), {})
    assert.has_error(function() p:parallel({ function() error("boom") end }) end)
    assert.has_error(function() p:parallel({ 5 }) end)
  end)

  -- a transport with a stream: a request whose path starts with /slow answers only after
  -- `hold` answers of other requests have been collected
  local function streaming(hold)
    local t = stub.new(function() return { status = 200 } end)
    local pending, next_slot, others = {}, 0, 0
    t.answered, t.abandoned = {}, 0
    function t.submit(self, req)
      next_slot = next_slot + 1
      pending[next_slot] = req
      self.calls[#self.calls + 1] = req
      return next_slot
    end
    function t.collect()
      local out = {}
      for slot, req in pairs(pending) do
        if not req.url:find("/slow", 1, true) or others >= hold then
          out[slot] = { { status = 200, headers = {}, body = "" } }
          pending[slot] = nil
          t.answered[#t.answered + 1] = req.url:match("/(%w+)%?")
          if not req.url:find("/slow", 1, true) then others = others + 1 end
        end
      end
      return out
    end
    function t.abandon() t.abandoned = t.abandoned + 1; pending = {} end
    return t
  end

  it("with a stream, resumes each task on its own answer: a slow request holds no one else", function()
    local t = streaming(3)
    local p = mk(t, {})
    local out = p:parallel({
      function(v) return v:arm("GET", "/slow", { api_version = "1" }).status end,
      function(v)
        for i = 1, 3 do assert(v:arm("GET", "/fast" .. i, { api_version = "1" })) end
        return "done"
      end,
    }, { concurrency = 2 })
    assert.equal(200, out[1][1])
    assert.equal("done", out[2][1])
    -- the second task's three requests, one after the other, all answered before the slow one
    assert.same({ "fast1", "fast2", "fast3", "slow" }, t.answered)
  end)

  it("with a stream, a run started inside a task on the real pipeline batches instead", function()
    local t = streaming(0)
    local p = mk(t, {})
    local out = p:parallel({
      function(v)
        local inner = p:parallel({
          function(iv) return iv:arm("GET", "/inner", { api_version = "1" }).status end })
        return inner[1][1], v:arm("GET", "/outer", { api_version = "1" }).status
      end,
    })
    assert.same({ n = 2, 200, 200 }, out[1])
    -- the inner request went through request() (the stub's), not the stream
    assert.same({ "outer" }, t.answered)
  end)

  it("with a stream, abandons what is in flight when a task raises", function()
    local t = streaming(100)
    local p = mk(t, {})
    assert.has_error(function()
      p:parallel({
        function(v) return v:arm("GET", "/slow", { api_version = "1" }) end,
        function(v) v:arm("GET", "/fast", { api_version = "1" }); error("boom") end,
      }, { concurrency = 2 })
    end, "boom")
    assert.equal(1, t.abandoned)
  end)
end)

describe("azcmk.transport.batch against the emulator", function()
  local p, sub

  setup(function()
    H.env()
    H.reset()
    p = H.pipeline({ sleep = function() end })
    sub = H.seed().subscription_id
  end)

  teardown(function()
    H.E.control("DELETE", "faults")
    H.E.assert_no_internal_errors()
    H.reset() -- leave the seeded state (and clock) to the next spec file
  end)

  local function rg_req(name)
    return { "GET", "/subscriptions/" .. sub .. "/resourcegroups" .. (name and ("/" .. name) or ""),
      api_version = "2021-04-01" }
  end

  it("sends many ARM requests and keeps their order", function()
    local reqs = {}
    for i = 1, 30 do reqs[i] = rg_req() end
    reqs[7] = rg_req("no-such-group")
    local results, errs = p:arm_batch(reqs, { concurrency = 8 })
    assert.equal(30, #results)
    for i = 1, 30 do
      if i == 7 then
        assert.is_false(results[i])
        assert.equal(404, errs[i].status)
        assert.equal("ResourceGroupNotFound", errs[i].code)
      else
        assert.equal(200, results[i].status)
        assert.truthy(results[i].request_id)
      end
    end
  end)

  it("retries throttled requests after their Retry-After, each on its own", function()
    H.E.control("POST", "faults", { rules = { { host = "management.azure.com",
      path = "/subscriptions/" .. sub .. "/resourcegroups", status = 429, retry_after = 1, count = 3 } } })
    local waits = {}
    local q = H.pipeline({ sleep = function(s) waits[#waits + 1] = s end })
    local results = q:arm_batch({ rg_req(), rg_req(), rg_req(), rg_req() }, { concurrency = 4 })
    local tries = 0
    for i = 1, 4 do
      assert.equal(200, results[i].status)
      tries = tries + results[i].attempts
    end
    assert.equal(7, tries)
    H.E.control("DELETE", "faults")
  end)

  it("runs multi-step tasks (ARM and Key Vault) with bounded concurrency", function()
    local tasks = {}
    for i = 1, 5 do
      tasks[i] = function(v)
        local a = assert(v:arm("GET", "/subscriptions/" .. sub, { api_version = "2022-12-01" }))
        local _, err = v:vault("GET", "https://nosuchvault" .. i .. ".vault.azure.net", "/keys")
        return a.json.subscriptionId, err and err.code
      end
    end
    local out = p:parallel(tasks, { concurrency = 2 })
    for i = 1, 5 do
      assert.equal(sub, out[i][1])
      assert.equal("VaultNotFound", out[i][2])
    end
  end)

  it("works on a transport without batch", function()
    local t = require("azcmk.transport.curl").new({ env = H.env() })
    local plain = { request = function(_, r) return t:request(r) end }
    local q = H.pipeline({ transport = plain })
    local results = q:arm_batch({ rg_req(), rg_req() })
    assert.equal(200, results[1].status)
    assert.equal(200, results[2].status)
  end)
end)
