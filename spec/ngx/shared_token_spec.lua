-- Four workers, many requests at once, all needing an ARM token: the shared-dict token store
-- and its add() lock make ONE token request for all workers (the emulator's log shows it).
local E = require("support.emulator")
local N = require("support.ngx_harness")

local function token_requests(entries)
  local n = 0
  for _, e in ipairs(entries) do
    if e.host == "login.microsoftonline.com" and e.path:find("/oauth2/v2.0/token", 1, true) then n = n + 1 end
  end
  return n
end

describe("nginx embedding: tokens shared by workers #lua54", function()
  local env, srv
  setup(function()
    env = E.ensure()
    E.reset()
    E.seed()
    srv = N.start({ workers = 4, env = env })
  end)
  teardown(function() if srv then srv:stop() end end)

  it("makes one token request for 4 workers and 200 concurrent requests", function()
    local since = E.log_seq()
    local paths = {}
    for i = 1, 200 do paths[i] = "/arm" end
    local out = srv:batch(paths, 32)
    local workers, fetches = {}, 0
    for i, r in ipairs(out) do
      assert.are.equal(200, r.status, "request " .. i .. ": " .. tostring(r.body or r.error))
      assert.are.equal(200, r.json.status, r.body)
      workers[r.json.worker] = true
    end
    local nworkers = 0
    for _ in pairs(workers) do nworkers = nworkers + 1 end
    assert.is_true(nworkers >= 2, "the requests reached only one worker")
    assert.are.equal(1, token_requests(E.log(since)))
    -- a second round: every worker serves the shared token, nobody fetches
    out = srv:batch(paths, 32)
    for _, r in ipairs(out) do fetches = fetches + (r.json and r.json.fetched or 0) end
    assert.are.equal(1, token_requests(E.log(since)))
    assert.are.equal(0, fetches)
  end)

end)

describe("nginx embedding: token refresh from an init_worker timer #lua54", function()
  local env, srv
  setup(function()
    env = E.ensure()
    E.reset()
    E.seed()
  end)
  teardown(function() if srv then srv:stop() end end)

  it("fetches the token in a timer (once for 4 workers); requests then make none", function()
    local since = E.log_seq()
    srv = N.start({ workers = 4, env = env, init_worker = [[
      require("azcmk.ngx.token_store").refresher(function()
        return { { pipeline = require("support.ngx_app").pipeline() } }
      end, { every = 1, all_workers = true })
    ]] })
    local n = 0
    for _ = 1, 300 do
      n = token_requests(E.log(since))
      if n > 0 then break end
      os.execute("sleep 0.02")
    end
    assert.are.equal(1, n, "no token request from the timers")
    local paths = {}
    for i = 1, 100 do paths[i] = "/arm" end
    local fetches = 0
    for _, r in ipairs(srv:batch(paths, 16)) do
      assert.are.equal(200, r.json and r.json.status, r.body)
      fetches = fetches + r.json.fetched
    end
    assert.are.equal(1, token_requests(E.log(since)))
    assert.are.equal(0, fetches, "a request fetched a token")
  end)
end)

describe("nginx embedding: the cross-worker token lock #lua54", function()
  local env, srv
  setup(function()
    env = E.ensure()
    E.seed()
    srv = N.start({ workers = 1, env = env })
  end)
  teardown(function() if srv then srv:stop() end end)

  it("serves the still-valid token while another worker holds the lock, refreshes after", function()
    local r = srv:get("/tokens?case=stale")
    assert.are.equal(200, r.status, r.body)
    assert.is_true(r.json.same_token)
    assert.are.equal(0, r.json.fetched_while_locked)
    assert.are.equal(1, r.json.served_stale)
    assert.are.equal(1, r.json.fetched_after_unlock)
    assert.is_true(r.json.fresh_entry)
    assert.is_true(r.json.token_ok)
  end)

  it("without a token, waits for the lock holder's and fetches none itself", function()
    local r = srv:get("/tokens?case=wait")
    assert.are.equal(200, r.status, r.body)
    assert.is_true(r.json.same_token)
    assert.are.equal(0, r.json.fetched)
    assert.are.equal(1, r.json.waited)
  end)
end)
