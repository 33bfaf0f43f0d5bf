-- c:batch: many requests in parallel on one multi handle, sharing the client's connections.
local core = require "azcmk.core"
local tls_nginx = require "support.tls_nginx"

local function distinct(results, header)
  local seen, n = {}, 0
  for _, r in ipairs(results) do
    local v = r.headers and r.headers[header]
    if v and not seen[v] then seen[v], n = true, n + 1 end
  end
  return n
end

local function connects(results)
  local n = 0
  for _, r in ipairs(results) do n = n + (r.info and r.info.num_connects or 0) end
  return n
end

local function hello_reqs(srv, n, port)
  local reqs = {}
  for i = 1, n do reqs[i] = { url = srv:url("/hello?i=" .. i, port) } end
  return reqs
end

describe("azcmk.core http batch", function()
  local srv

  setup(function() srv = tls_nginx.start() end)
  teardown(function() if srv then srv:stop() end end)

  it("runs 50 requests over HTTP/2 on one multiplexed connection, results in order", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    local results = c:batch(hello_reqs(srv, 50), { max_parallel = 16 })
    assert.equal(50, #results)
    for i, r in ipairs(results) do
      assert.equal(200, r.status)
      assert.equal("hello " .. i, r.body)
      assert.equal("2", r.http_version)
    end
    assert.equal(1, distinct(results, "x-conn"))
    assert.equal(1, connects(results))
    c:close()
  end)

  it("runs 50 requests over HTTP/1.1 on at most max_parallel connections and reuses them", function()
    local c = core.http_client{ ca_file = srv.ca_file, http_version = "1.1" }
    local results = c:batch(hello_reqs(srv, 50), { max_parallel = 8 })
    assert.equal(50, #results)
    for i, r in ipairs(results) do
      assert.equal("hello " .. i, r.body)
      assert.equal("1.1", r.http_version)
    end
    assert.is_true(distinct(results, "x-conn") <= 8)
    assert.is_true(connects(results) <= 8)
    -- a second batch opens no new connection
    local again = c:batch(hello_reqs(srv, 50), { max_parallel = 8 })
    for i, r in ipairs(again) do assert.equal("hello " .. i, r.body) end
    assert.equal(0, connects(again))
    c:close()
  end)

  it("really runs requests at the same time (one HTTP/1.1 connection each)", function()
    local c = core.http_client{ ca_file = srv.ca_file, http_version = "1.1" }
    local reqs = {}
    for i = 1, 6 do reqs[i] = { url = srv:url("/sleep?s=0.3&i=" .. i), timeout_ms = 10000 } end
    -- /sleep does not say its connection; /echo after it on the same connections would.
    local results = c:batch(reqs, { max_parallel = 6 })
    for _, r in ipairs(results) do assert.equal(200, r.status) end
    -- six requests in flight together cannot share an HTTP/1.1 connection
    assert.equal(6, connects(results))
    c:close()
  end)

  it("resumes the client's TLS session on the new connections it opens", function()
    local c = core.http_client{ ca_file = srv.ca_file, http_version = "1.1" }
    local first = assert(c:request{ url = srv:url("/sleep?s=0") })
    assert.equal(".", first.headers["x-session-reused"])
    local reqs = {}
    for i = 1, 4 do reqs[i] = { url = srv:url("/sleep?s=0.3&i=" .. i) } end
    local resumed = 0
    for _, r in ipairs(c:batch(reqs, { max_parallel = 4 })) do
      if r.info.num_connects == 1 and r.headers["x-session-reused"] == "r" then resumed = resumed + 1 end
    end
    assert.is_true(resumed >= 1)
    c:close()
  end)

  it("runs one at a time with max_parallel = 1, on one connection", function()
    local c = core.http_client{ ca_file = srv.ca_file, http_version = "1.1" }
    local results = c:batch(hello_reqs(srv, 10), { max_parallel = 1 })
    assert.equal(1, distinct(results, "x-conn"))
    assert.equal(1, connects(results))
    c:close()
  end)

  it("shares the client's connections (request, then batch, then request)", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    local first = assert(c:request{ url = srv:url("/hello") })
    assert.equal(1, first.info.num_connects)
    local results = c:batch(hello_reqs(srv, 5))
    assert.equal(0, connects(results))
    assert.equal(first.headers["x-conn"], results[5].headers["x-conn"])
    local last = assert(c:request{ url = srv:url("/hello") })
    assert.equal(0, last.info.num_connects)
    c:close()
  end)

  it("returns failures in place as { error, code }", function()
    local c = core.http_client{ ca_file = srv.ca_file, allow_http = { "127.0.0.1" } }
    local results = c:batch({
      { url = srv:url("/hello?i=1") },
      { url = "http://example.com/" },
      { url = "not a url" },
      { url = srv:url("/sleep?s=3"), timeout_ms = 200 },
      { url = srv:url("/status?code=404") },
      { url = "https://127.0.0.1:1/" },
      { url = "http://127.0.0.1:" .. srv.http_port .. "/hello?i=7" },
      { method = "PATCH", url = srv:url("/echo"), body = "patch-body" },
    }, { max_parallel = 4 })
    assert.equal(8, #results)
    assert.equal("hello 1", results[1].body)
    assert.same("AZCMK_HTTP_REFUSED", results[2].code)
    assert.is_string(results[2].error)
    assert.same("CURLE_URL_MALFORMAT", results[3].code)
    assert.same("CURLE_OPERATION_TIMEDOUT", results[4].code)
    assert.equal(404, results[5].status)
    assert.same("CURLE_COULDNT_CONNECT", results[6].code)
    assert.equal("hello 7", results[7].body)
    assert.equal("PATCH", results[8].headers["x-method"])
    assert.equal("patch-body", results[8].body)
    c:close()
  end)

  it("handles an empty batch and batches of changing size", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    assert.same({}, c:batch({}))
    for _, n in ipairs{ 3, 20, 2, 7 } do
      local results = c:batch(hello_reqs(srv, n), { max_parallel = 5 })
      assert.equal(n, #results)
      for i, r in ipairs(results) do assert.equal("hello " .. i, r.body) end
    end
    c:close()
  end)

  it("sends bodies and methods in parallel", function()
    local c = core.http_client{ ca_file = srv.ca_file }
    local methods = { "POST", "PUT", "PATCH", "DELETE", "GET" }
    local reqs = {}
    for i = 1, 20 do
      local m = methods[(i - 1) % #methods + 1]
      reqs[i] = { method = m, url = srv:url("/echo"), body = m ~= "GET" and ("body " .. i) or nil,
                  headers = { ["X-I"] = i } }
    end
    local results = c:batch(reqs)
    for i, r in ipairs(results) do
      assert.equal(reqs[i].method, r.headers["x-method"])
      assert.equal(reqs[i].body or "", r.body)
      assert.equal(tostring(i), r.headers["x-echo-x-i"])
    end
    c:close()
  end)

  describe("bad arguments raise before any request is made", function()
    local c
    before_each(function() c = core.http_client{ ca_file = srv.ca_file } end)
    after_each(function() c:close() end)

    it("rejects a non-table list, options and requests", function()
      assert.has_error(function() c:batch("x") end)
      assert.has_error(function() c:batch({}, 5) end)
      assert.matches("max_parallel", select(2, pcall(c.batch, c, {}, { max_parallel = 0 })))
      assert.matches("max_parallel", select(2, pcall(c.batch, c, {}, { max_parallel = "8" })))
      assert.matches("request #2: request must be a table",
        select(2, pcall(c.batch, c, { { url = srv:url("/hello") }, 5 })))
      assert.matches("request #1: 'url' is required", select(2, pcall(c.batch, c, { {} })))
    end)

    it("makes no request when a later entry is bad", function()
      local ok = pcall(c.batch, c, { { url = srv:url("/hello") }, { url = srv:url("/hello"), body = 1 } })
      assert.is_false(ok)
      -- nothing was sent: the first real request still has to connect
      local r = assert(c:request{ url = srv:url("/hello") })
      assert.equal(1, r.info.num_connects)
    end)
  end)
end)
