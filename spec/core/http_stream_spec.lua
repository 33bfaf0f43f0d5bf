-- c:submit / c:collect / c:abandon: requests as a stream on a multi handle of their own - each
-- answer is handed back as soon as it arrives, not when the slowest of a batch does.
local core = require "azcmk.core"
local tls_nginx = require "support.tls_nginx"

-- collect until every slot in want has answered (or `rounds` collects passed)
local function gather(c, want, rounds)
  local got, order = {}, {}
  for _ = 1, rounds or 200 do
    for slot, r in pairs(c:collect(100)) do
      assert.is_nil(got[slot], "slot " .. slot .. " answered twice")
      got[slot] = r
      order[#order + 1] = slot
    end
    local all = true
    for slot in pairs(want) do if not got[slot] then all = false end end
    if all then break end
  end
  return got, order
end

describe("azcmk.core http stream", function()
  local srv

  setup(function() srv = tls_nginx.start() end)
  teardown(function() if srv then srv:stop() end end)

  it("hands back a fast answer while a slow one is still running", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    local slow = c:submit({ url = srv:url("/sleep?s=1.5"), timeout_ms = 10000 })
    local fast = c:submit({ url = srv:url("/hello?i=1") })
    assert.not_equal(slow, fast)
    local got = gather(c, { [fast] = true })
    assert.equal("hello 1", got[fast].body)
    assert.equal(200, got[fast].status)
    assert.is_nil(got[slow], "the slow request answered with the fast one")
    got = gather(c, { [slow] = true })
    assert.equal(200, got[slow].status)
    c:close()
  end)

  it("reuses free slots, multiplexes on one HTTP/2 connection and copies request bodies", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    local want, bodies = {}, {}
    for i = 1, 20 do
      local body = string.rep(string.char(64 + i), 100 + i)
      local slot = c:submit({ method = "PUT", url = srv:url("/echo?i=" .. i), body = body })
      want[slot], bodies[slot] = true, body
    end
    collectgarbage() collectgarbage()   -- the bodies' Lua strings may go: libcurl has copies
    local got = gather(c, want)
    local connects = 0
    for slot in pairs(want) do
      assert.equal(200, got[slot].status)
      assert.equal("PUT", got[slot].headers["x-method"])
      assert.equal(bodies[slot], got[slot].body)
      assert.equal("2", got[slot].http_version)
      connects = connects + got[slot].info.num_connects
    end
    assert.equal(1, connects)
    -- every slot is free again: the next requests take slots 1..n, not 21..
    local again = c:submit({ url = srv:url("/hello?i=9") })
    assert.is_true(again <= 20)
    assert.equal("hello 9", gather(c, { [again] = true })[again].body)
    c:close()
  end)

  it("reports failures in the slot as { error, code }, the refused ones at the next collect", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    local refused = c:submit({ url = "http://example.com/" })
    local timeout = c:submit({ url = srv:url("/sleep?s=3"), timeout_ms = 200 })
    local got = gather(c, { [refused] = true, [timeout] = true })
    assert.equal("AZCMK_HTTP_REFUSED", got[refused].code)
    assert.is_string(got[refused].error)
    assert.equal("CURLE_OPERATION_TIMEDOUT", got[timeout].code)
    c:close()
  end)

  it("collect returns an empty table when nothing is in flight or nothing finished in time", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    local done, running = c:collect(10)
    assert.same({}, done)
    assert.equal(0, running)
    local slot = c:submit({ url = srv:url("/sleep?s=1"), timeout_ms = 10000 })
    done, running = c:collect(50)
    assert.same({}, done)
    assert.equal(1, running)
    assert.equal(200, gather(c, { [slot] = true })[slot].status)
    c:close()
  end)

  it("abandon stops what is running; the slots serve new requests; close after it is clean", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    for i = 1, 3 do c:submit({ url = srv:url("/sleep?s=2&i=" .. i), timeout_ms = 10000 }) end
    c:collect(50)
    c:abandon()
    assert.same({}, c:collect(300))
    local slot = c:submit({ url = srv:url("/hello?i=4") })
    assert.equal(1, slot)
    assert.equal("hello 4", gather(c, { [slot] = true })[slot].body)
    c:submit({ url = srv:url("/sleep?s=2"), timeout_ms = 10000 })
    c:close()   -- with a request still running
    assert.has_error(function() c:collect(10) end)
  end)

  it("rejects bad requests before anything starts", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    assert.has_error(function() c:submit("x") end)
    assert.has_error(function() c:submit({}) end)
    assert.has_error(function() c:submit({ url = srv:url("/hello"), headers = { ["bad name"] = "x" } }) end)
    assert.same({}, c:collect(10))
    c:close()
  end)
end)
