-- Inside nginx, Azure calls must not block the worker's event loop: while 20 ARM calls are
-- held by the emulator's delay fault, another location on the same single worker answers,
-- and it answers while all 20 are still pending (ordering, never a timing threshold).
local E = require("support.emulator")
local N = require("support.ngx_harness")

local function sh_q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

describe("nginx embedding: event loop #lua54", function()
  local env, srv, sub
  setup(function()
    env = E.ensure()
    E.reset()
    sub = E.seed().subscription_id
    srv = N.start({ workers = 1, env = env })
  end)
  teardown(function()
    if srv then srv:stop() end
    E.control("DELETE", "faults")
  end)

  it("keeps answering an unrelated location while 20 Azure calls are held slow", function()
    -- warm the token, so the held calls are the ARM GETs themselves
    local warm = srv:get("/arm")
    assert.are.equal(200, warm.json.status, warm.body)
    local since = E.log_seq()
    E.control("POST", "faults", { rules = { { host = "management.azure.com",
      path = "/subscriptions/" .. sub .. "/resourcegroups", method = "GET", delay_ms = 8000, count = 20 } } })
    -- 20 concurrent client requests to /slow (curl processes in the background)
    local cmd = "for i in $(seq 1 20); do curl -s --max-time 60 " ..
      sh_q(srv.base .. "/slow") .. " & done; wait"
    local p = io.popen(cmd)
    -- /fast answers while every slow call is in flight and none has finished
    local seen
    for _ = 1, 700 do
      local f = srv:get("/fast")
      assert.are.equal(200, f.status)
      if f.json.in_flight == 20 then
        seen = f.json
        break
      end
      os.execute("sleep 0.01")
    end
    assert.is_table(seen, "the 20 slow calls never were all in flight")
    assert.are.equal(0, seen.done, "a slow call finished before the fast location answered")
    assert.are.equal(0, seen.worker)
    -- a second, third... answer while still pending
    local again = srv:get("/fast")
    assert.are.equal(0, again.json.done)
    -- then all 20 complete, each with the ARM answer
    local out = p:read("*a")
    p:close()
    local n = 0
    for line in out:gmatch("[^\n]+") do
      local j = require("cjson.safe").decode(line)
      assert.are.equal(200, j and j.status, line)
      n = n + 1
    end
    assert.are.equal(20, n)
    assert.are.equal(20, srv:get("/fast").json.done)
    -- the emulator saw 20 delayed GETs
    local delayed = 0
    for _, e in ipairs(E.log(since)) do
      if e.fault and e.method == "GET" and e.path:find("/resourcegroups", 1, true) then
        delayed = delayed + 1
      end
    end
    assert.are.equal(20, delayed)
  end)

  it("runs p:arm_batch over cosockets: 10 held calls are in flight together; /fast answers", function()
    -- warm the token of the batch's pipeline, then hold the next 10 ARM GETs
    local warm = io.popen("curl -s --max-time 60 " .. sh_q(srv.base .. "/batch?n=1"))
    warm:read("*a")
    warm:close()
    local base = srv:get("/fast").json
    E.control("POST", "faults", { rules = { { host = "management.azure.com",
      path = "/subscriptions/" .. sub .. "/resourcegroups", method = "GET", delay_ms = 8000, count = 10 } } })
    local p = io.popen("curl -s --max-time 60 " .. sh_q(srv.base .. "/batch?n=10"))
    local seen
    for _ = 1, 700 do
      local f = srv:get("/fast")
      assert.are.equal(200, f.status)
      if f.json.b_in - base.b_in == 10 then
        seen = f.json
        break
      end
      os.execute("sleep 0.01")
    end
    assert.is_table(seen, "the 10 batch calls were never in flight together")
    assert.are.equal(base.b_done, seen.b_done, "a batch call finished before all 10 were sent")
    local out = require("cjson.safe").decode(p:read("*a"))
    p:close()
    assert.is_table(out)
    assert.are.equal(10, #out.statuses)
    for k = 1, 10 do assert.are.equal(200, out.statuses[k]) end
  end)
end)
