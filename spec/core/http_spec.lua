-- The core's HTTP client against a real local nginx over TLS with a test CA.
local core = require "azcmk.core"
local tls_nginx = require "support.tls_nginx"

local IS_JIT = type(rawget(_G, "jit")) == "table"

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

describe("azcmk.core http client", function()
  local srv

  setup(function() srv = tls_nginx.start() end)
  teardown(function() if srv then srv:stop() end end)

  local function client(opts)
    opts = opts or {}
    if opts.ca_file == nil then opts.ca_file = srv.ca_file end
    return core.http_client(opts)
  end

  describe("connections", function()
    it("reuses one keep-alive connection for many requests", function()
      local c = client()
      local first = assert(c:request{ url = srv:url("/hello") })
      assert.equal(200, first.status)
      assert.equal("hello ", first.body)
      assert.equal(1, first.info.num_connects)
      assert.equal("127.0.0.1", first.info.primary_ip)
      assert.equal(srv.port, first.info.primary_port)
      assert.is_number(first.info.total_ms)
      for i = 2, 20 do
        local r = assert(c:request{ url = srv:url("/hello?i=" .. i) })
        assert.equal("hello " .. i, r.body)
        assert.equal(0, r.info.num_connects)
        assert.equal(first.headers["x-conn"], r.headers["x-conn"])
      end
      c:close()
    end)

    it("speaks HTTP/2 when the server offers it over TLS", function()
      local c = client()
      local r = assert(c:request{ url = srv:url("/echo") })
      assert.equal("2", r.http_version)
      assert.equal("HTTP/2.0", r.headers["x-protocol"])
      c:close()
    end)

    it("keeps HTTP/1.1 alive when 1.1 is forced", function()
      local c = client{ http_version = "1.1" }
      local a = assert(c:request{ url = srv:url("/hello") })
      local b = assert(c:request{ url = srv:url("/hello") })
      assert.equal("1.1", a.http_version)
      assert.equal("1", a.headers["x-conn-requests"])
      assert.equal("2", b.headers["x-conn-requests"])
      assert.equal(a.headers["x-conn"], b.headers["x-conn"])
      assert.equal(0, b.info.num_connects)
      c:close()
    end)

    it("uses HTTP/1.1 when the server offers only that", function()
      local c = client()
      local r = assert(c:request{ url = srv:url("/echo", srv.port_h1) })
      assert.equal("1.1", r.http_version)
      assert.equal("HTTP/1.1", r.headers["x-protocol"])
      c:close()
    end)

    it("reports a refused connection as nil, message, code", function()
      local c = client()
      local r, err, code = c:request{ url = "https://127.0.0.1:1/" }
      assert.is_nil(r)
      assert.equal("CURLE_COULDNT_CONNECT", code)
      assert.matches("127.0.0.1", err)
      c:close()
    end)
  end)

  describe("timeouts", function()
    it("ends a stalled connect (TLS handshake) at connect_timeout_ms", function()
      local c = client{ connect_timeout_ms = 300, timeout_ms = 10000 }
      -- the handshake stalls 3 s, then the server answers: with only the 10 s total
      -- timeout this would succeed, so a timeout here is the connect timeout's
      local r, err, code = c:request{ url = srv:url("/", srv.stall_port) }
      assert.is_nil(r)
      assert.equal("CURLE_OPERATION_TIMEDOUT", code)
      assert.is_string(err)
      -- and that server does answer when given the time
      local late = assert(c:request{ url = srv:url("/", srv.stall_port), connect_timeout_ms = 8000 })
      assert.equal("late", late.body)
      c:close()
    end)

    it("ends a slow response at timeout_ms (client default)", function()
      local c = client{ timeout_ms = 300 }
      local r, err, code = c:request{ url = srv:url("/sleep?s=3") }
      assert.is_nil(r)
      assert.equal("CURLE_OPERATION_TIMEDOUT", code)
      assert.matches("[Tt]imed? ?out", err)
      c:close()
    end)

    it("lets a request override the timeouts", function()
      local c = client{ timeout_ms = 20000 }
      local r, _, code = c:request{ url = srv:url("/sleep?s=3"), timeout_ms = 300 }
      assert.is_nil(r)
      assert.equal("CURLE_OPERATION_TIMEDOUT", code)
      r, _, code = c:request{ url = srv:url("/", srv.stall_port), connect_timeout_ms = 300 }
      assert.is_nil(r)
      assert.equal("CURLE_OPERATION_TIMEDOUT", code)
      -- and the client still works afterwards
      assert.equal(200, assert(c:request{ url = srv:url("/hello") }).status)
      c:close()
    end)
  end)

  describe("TLS", function()
    it("reaches a real host name through connect_to and verifies its certificate", function()
      local c = client{ connect_to = { "management.azure.com:443:127.0.0.1:" .. srv.port } }
      local r = assert(c:request{ url = "https://management.azure.com/echo?api-version=2023-07-01" })
      assert.equal(200, r.status)
      assert.equal("management.azure.com", r.headers["x-echo-host"])
      assert.equal("127.0.0.1", r.info.primary_ip)
      assert.equal(srv.port, r.info.primary_port)
      c:close()
    end)

    it("refuses a certificate that does not name the host", function()
      local c = client{ connect_to = { "login.microsoftonline.com:443:127.0.0.1:" .. srv.port } }
      local r, err, code = c:request{ url = "https://login.microsoftonline.com/x" }
      assert.is_nil(r)
      assert.equal("CURLE_PEER_FAILED_VERIFICATION", code)
      assert.matches("login.microsoftonline.com", err)
      c:close()
    end)

    it("refuses the test CA without ca_file, as a result, not an error", function()
      local c = core.http_client{}
      local ok, r, err, code = pcall(c.request, c, { url = srv:url("/hello") })
      assert.is_true(ok)
      assert.is_nil(r)
      assert.equal("CURLE_PEER_FAILED_VERIFICATION", code)
      assert.is_string(err)
      c:close()
    end)

    it("reports an unreadable ca_file", function()
      local c = core.http_client{ ca_file = "/nonexistent/ca.pem" }
      local r, err, code = c:request{ url = srv:url("/hello") }
      assert.is_nil(r)
      assert.equal("CURLE_SSL_CACERT_BADFILE", code)
      assert.equal("error setting certificate file: /nonexistent/ca.pem", err)
      c:close()
    end)

    it("reads ca_file once per client: later connections (other hosts, reconnects) reuse the CAs", function()
      local tmp = os.tmpname()
      local f = assert(io.open(srv.ca_file, "rb"))
      local pem = f:read("a")
      f:close()
      f = assert(io.open(tmp, "wb"))
      f:write(pem)
      f:close()
      local to = "management.azure.com:443:127.0.0.1:" .. srv.port
      local c = core.http_client{ ca_file = tmp, http_version = "1.1", connect_to = { to } }
      assert.equal(200, assert(c:request{ url = srv:url("/hello") }).status)
      os.remove(tmp)
      -- a second host is a second connection; the file is gone, the client's CAs are not
      local r = assert(c:request{ url = "https://management.azure.com/echo" })
      assert.equal(200, r.status)
      assert.equal(1, r.info.num_connects)
      c:close()
      -- a new client reads the file again, and it is gone
      local c2 = core.http_client{ ca_file = tmp }
      local r2, _, code = c2:request{ url = srv:url("/hello") }
      assert.is_nil(r2)
      assert.equal("CURLE_SSL_CACERT_BADFILE", code)
      c2:close()
    end)
  end)

  describe("policy", function()
    it("returns a 3xx as it is, never following it", function()
      local c = client()
      local r = assert(c:request{ url = srv:url("/redirect") })
      assert.equal(302, r.status)
      assert.equal("https://127.0.0.1:" .. srv.port .. "/hello", r.headers.location)
      assert.not_matches("hello", r.body)
      c:close()
    end)

    it("refuses plain http to hosts not in allow_http, before any I/O", function()
      -- connect_to would lead example.com to the local plain-http server: nothing may get there
      local c = client{ allow_http = { "127.0.0.1" },
                        connect_to = { "example.com:80:127.0.0.1:" .. srv.http_port } }
      local r, err, code = c:request{ url = "http://example.com/hello" }
      assert.is_nil(r)
      assert.equal("AZCMK_HTTP_REFUSED", code)
      assert.matches("example.com", err)
      c:close()
    end)

    it("allows plain http to allow_http hosts only", function()
      local c = client{ allow_http = { "127.0.0.1", "::1" } }
      local r = assert(c:request{ url = "http://127.0.0.1:" .. srv.http_port .. "/hello?i=1" })
      assert.equal(200, r.status)
      assert.equal("hello 1", r.body)
      assert.equal("1.1", r.http_version)
      -- ::1 is allowed (brackets are ignored); nothing listens there, so it fails to connect
      local _, _, code = c:request{ url = "http://[::1]:1/" }
      assert.not_equal("AZCMK_HTTP_REFUSED", code)
      c:close()
      local strict = client()
      local _, _, code2 = strict:request{ url = "http://127.0.0.1:" .. srv.http_port .. "/hello" }
      assert.equal("AZCMK_HTTP_REFUSED", code2)
      strict:close()
    end)

    it("refuses other schemes", function()
      local c = client{ allow_http = { "127.0.0.1" } }
      for _, url in ipairs{ "ftp://127.0.0.1/", "file:///etc/passwd", "gopher://127.0.0.1/" } do
        local r, _, code = c:request{ url = url }
        assert.is_nil(r)
        assert.equal("AZCMK_HTTP_REFUSED", code)
      end
      c:close()
    end)

    it("decides again for every URL string, also when one repeats", function()
      local c = client{ allow_http = { "127.0.0.1" } }
      local ok = "http://127.0.0.1:" .. srv.http_port .. "/hello?i=3"
      local refused = "http://localhost:" .. srv.http_port .. "/hello"
      for _ = 1, 2 do
        assert.equal("hello 3", assert(c:request{ url = ok }).body)
        assert.equal("AZCMK_HTTP_REFUSED", select(3, c:request{ url = refused }))
        assert.equal("AZCMK_HTTP_REFUSED", select(3, c:request{ url = refused }))
        assert.equal("CURLE_URL_MALFORMAT", select(3, c:request{ url = "not a url" }))
        assert.equal("hello 3", assert(c:request{ url = ok }).body)
        assert.equal("hello 3", assert(c:request{ url = ok }).body)
      end
      c:close()
    end)

    it("returns nil, message, code for a malformed URL", function()
      local c = client()
      for _, url in ipairs{ "not a url", "https://", "https://exa mple.com/", "", "//x/y" } do
        local r, err, code = c:request{ url = url }
        assert.is_nil(r)
        assert.equal("CURLE_URL_MALFORMAT", code)
        assert.is_string(err)
      end
      c:close()
    end)
  end)

  describe("responses", function()
    it("lower-cases header names and joins repeated headers", function()
      local c = client()
      local r = assert(c:request{ url = srv:url("/headers") })
      assert.equal("one, two", r.headers["x-multi"])
      assert.equal("a=1, b=2", r.headers["set-cookie"])
      assert.equal("Yes", r.headers["x-mixed-case"])
      assert.is_nil(r.headers["X-MiXeD-Case"])
      for name in pairs(r.headers) do assert.equal(name:lower(), name) end
      c:close()
    end)

    it("keeps only the final response's headers after a 1xx; unfolds and skips bad lines", function()
      local c = client()
      local r = assert(c:request{ url = srv:url("/interim", srv.port_h1) })
      assert.equal(200, r.status)
      assert.equal("ok", r.body)
      assert.equal("yes", r.headers["x-final"])
      assert.is_nil(r.headers["x-interim"])
      assert.is_nil(r.headers.link)
      assert.equal("a b", r.headers["x-folded"])
      assert.equal("1, 2", r.headers["x-dup"])
      assert.is_nil(r.headers["bad header"])
      assert.is_nil(r.headers.bad)
      c:close()
    end)

    it("joins many repeated headers in linear time; too many headers are an error", function()
      local c = client()
      local r = assert(c:request{ url = srv:url("/many?n=15000", srv.port_h1) })
      local values = {}
      for v in r.headers["x-many"]:gmatch("[^, ]+") do values[#values + 1] = v end
      assert.equal(15000, #values)
      assert.equal("v1", values[1])
      assert.equal("v15000", values[15000])
      -- libcurl 7.88 ends a response at 300 KB of headers (before our own 1 MiB cap)
      local none, _, code = c:request{ url = srv:url("/many?n=40000", srv.port_h1) }
      assert.is_nil(none)
      assert.is_string(code)
      assert.equal(200, assert(c:request{ url = srv:url("/hello") }).status)
      c:close()
    end)

    it("returns a non-2xx status as a response", function()
      local c = client()
      local r = assert(c:request{ url = srv:url("/status?code=503") })
      assert.equal(503, r.status)
      assert.equal("status 503\n", r.body)
      c:close()
    end)

    it("answers HEAD without a body", function()
      local c = client()
      local r = assert(c:request{ method = "HEAD", url = srv:url("/big?n=5000") })
      assert.equal(200, r.status)
      assert.equal("", r.body)
      -- and the next GET on the same handle has its body again
      r = assert(c:request{ url = srv:url("/big?n=5000") })
      assert.equal(5000, #r.body)
      c:close()
    end)

    it("returns large bodies whole and enforces max_body_bytes", function()
      local c = client{ max_body_bytes = 100000 }
      local r = assert(c:request{ url = srv:url("/big?n=100000") })
      assert.equal(string.rep("x", 100000), r.body)
      local none, err, code = c:request{ url = srv:url("/big?n=100001") }
      assert.is_nil(none)
      assert.equal("CURLE_FILESIZE_EXCEEDED", code)
      assert.matches("max_body_bytes", err)
      assert.equal(200, assert(c:request{ url = srv:url("/hello") }).status)
      c:close()
    end)
  end)

  describe("requests", function()
    for _, method in ipairs{ "POST", "PUT", "PATCH", "DELETE" } do
      it("sends " .. method .. " with a body", function()
        local c = client()
        local body = '{"properties":{"method":"' .. method .. '"}}'
        local r = assert(c:request{ method = method, url = srv:url("/echo"), body = body,
                                    headers = { ["Content-Type"] = "application/json" } })
        assert.equal(200, r.status)
        assert.equal(method, r.headers["x-method"])
        assert.equal(body, r.body)
        assert.equal(tostring(#body), r.headers["x-body-length"])
        assert.equal("application/json", r.headers["x-echo-content-type"])
        c:close()
      end)
    end

    it("sends a method in any case as upper case", function()
      local c = client()
      local r = assert(c:request{ method = "put", url = srv:url("/echo"), body = "" })
      assert.equal("PUT", r.headers["x-method"])
      assert.equal("0", r.headers["x-echo-content-length"])
      c:close()
    end)

    it("sends Content-Length: 0 for a POST without a body, and no invented Content-Type", function()
      local c = client{ http_version = "1.1" }
      local r = assert(c:request{ method = "POST", url = srv:url("/echo") })
      assert.equal("POST", r.headers["x-method"])
      assert.equal("0", r.headers["x-echo-content-length"])
      assert.is_nil(r.headers["x-echo-content-type"])
      r = assert(c:request{ method = "POST", url = srv:url("/echo"), body = "a=b" })
      assert.is_nil(r.headers["x-echo-content-type"])
      -- a GET after POSTs is a GET again
      r = assert(c:request{ url = srv:url("/echo") })
      assert.equal("GET", r.headers["x-method"])
      assert.is_nil(r.headers["x-echo-content-length"])
      c:close()
    end)

    it("sends request headers: strings, numbers, empty values; false removes a default", function()
      local c = client{ user_agent = "azcmk-spec/1" }
      local r = assert(c:request{ url = srv:url("/echo"), headers = {
        ["X-Test"] = "v 1", ["X-Number"] = 42, ["X-Empty"] = "", Accept = false,
        ["x-ms-client-request-id"] = "8e0a6a3e-0000-4000-8000-000000000000",
      } })
      assert.equal("v 1", r.headers["x-echo-x-test"])
      assert.equal("42", r.headers["x-echo-x-number"])
      assert.equal("(empty)", r.headers["x-echo-x-empty"])
      assert.is_nil(r.headers["x-echo-accept"])
      assert.equal("azcmk-spec/1", r.headers["x-echo-user-agent"])
      assert.equal("8e0a6a3e-0000-4000-8000-000000000000", r.headers["x-echo-x-ms-client-request-id"])
      c:close()
    end)

    it("keeps only the final response's headers after 100-continue", function()
      local c = client{ http_version = "1.1" }
      local body = string.rep("b", 1536 * 1024) -- big enough for libcurl to send Expect
      local r = assert(c:request{ method = "POST", url = srv:url("/echo"), body = body,
                                  headers = { Expect = "100-continue" } })
      assert.equal(200, r.status)
      assert.equal("100-continue", r.headers["x-echo-expect"])
      assert.equal(tostring(#body), r.headers["x-body-length"])
      assert.equal(#body, #r.body)
      c:close()
    end)
  end)

  describe("the client object", function()
    it("closes idempotently and refuses use after close", function()
      local c = client()
      assert.matches("^azcmk.http client %(open%)", tostring(c))
      c:close()
      c:close()
      assert.matches("^azcmk.http client %(closed%)", tostring(c))
      assert.has_error(function() c:request{ url = srv:url("/hello") } end, "azcmk.http: client is closed")
      assert.has_error(function() c:batch{} end, "azcmk.http: client is closed")
    end)

    it("is collected with its handles (__gc)", function()
      for _ = 1, 5 do
        local c = client()
        assert(c:request{ url = srv:url("/hello") })
      end
      collectgarbage()
      collectgarbage()
    end)

    if not IS_JIT then
      it("closes as a to-be-closed variable (__close)", function()
        local chunk = assert(load([[
          local core, url, ca = ...
          local seen
          do
            local c <close> = core.http_client{ ca_file = ca }
            assert(c:request{ url = url })
            seen = c
          end
          return tostring(seen)
        ]]))
        assert.matches("%(closed%)", chunk(core, srv:url("/hello"), srv.ca_file))
      end)
    end
  end)

  describe("bad arguments raise", function()
    local c
    before_each(function() c = client() end)
    after_each(function() c:close() end)

    local U = "https://x/"
    local cases = {
      { "client opts", function() core.http_client(5) end, "table expected" },
      { "timeout type", function() core.http_client{ timeout_ms = "x" } end,
        "'timeout_ms' must be a number" },
      { "timeout range", function() core.http_client{ timeout_ms = 0 } end,
        "'timeout_ms' must be an integer" },
      { "fractional timeout", function() core.http_client{ connect_timeout_ms = 1.5 } end,
        "must be an integer" },
      { "ca_file type", function() core.http_client{ ca_file = true } end, "'ca_file' must be a string" },
      { "connect_to type", function() core.http_client{ connect_to = "a:1:b:2" } end,
        "'connect_to' must be a list" },
      { "connect_to item", function() core.http_client{ connect_to = { 1 } } end,
        "'connect_to'%[1%] must be a string" },
      { "allow_http item", function() core.http_client{ allow_http = { {} } } end, "'allow_http'%[1%]" },
      { "http_version", function() core.http_client{ http_version = "3" } end, "'http_version'" },
      { "user_agent", function() core.http_client{ user_agent = "a\r\nb" } end, "'user_agent'" },
      { "no_proxy", function() core.http_client{ no_proxy = { "a,b" } } end, "'no_proxy'%[1%]" },
      { "request type", function() c:request(U) end, "table expected" },
      { "missing url", function() c:request{} end, "'url' is required" },
      { "url type", function() c:request{ url = 1 } end, "'url' must be a string" },
      { "method", function() c:request{ url = U, method = "G ET" } end, "bad method" },
      { "body type", function() c:request{ url = U, body = {} } end, "'body' must be a string" },
      { "headers type", function() c:request{ url = U, headers = "x" } end, "'headers' must be a table" },
      { "header name type", function() c:request{ url = U, headers = { "x" } } end,
        "header names must be strings" },
      { "header name", function() c:request{ url = U, headers = { ["A B"] = "x" } } end, "bad header name" },
      { "header value", function() c:request{ url = U, headers = { A = "x\r\nB: y" } } end, "CR, LF" },
      { "header value type", function() c:request{ url = U, headers = { A = true } } end,
        "must be a string, a number or false" },
      { "request timeout", function() c:request{ url = U, timeout_ms = -1 } end, "'timeout_ms'" },
      { "self", function() c.request({}, { url = U }) end, "azcmk.http expected" },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        local ok, err = pcall(case[2])
        assert.is_false(ok)
        assert.matches(case[3], tostring(err))
      end)
    end
  end)

  it("keeps the strings it reads alive when the request table changes under it", function()
    local c = client()
    local function tricky()
      local req = { url = srv:url("/echo?x=" .. ("u"):rep(64)), method = "PUT",
                    body = ("z"):rep(50000) .. "end" }
      return setmetatable(req, { __index = function(t)
        rawset(t, "url", nil)
        collectgarbage()
        collectgarbage()
      end })
    end
    local r = assert(c:request(tricky()))
    assert.equal(200, r.status)
    assert.equal("PUT", r.headers["x-method"])
    -- a batch reads each request twice (check, then set up): the second read fails cleanly
    assert.has_error(function() c:batch({ tricky(), tricky() }) end, "batch: 'url' is required")
    assert.equal(200, assert(c:request{ url = srv:url("/hello") }).status)
    local results = c:batch({ { url = srv:url("/hello") }, { url = srv:url("/hello") } })
    for _, res in ipairs(results) do assert.equal(200, res.status) end
    c:close()
  end)

  it("leaves nothing behind after many requests (sanity for valgrind/ASan)", function()
    local c = client()
    local n = 0
    for i = 1, 30 do
      local r = assert(c:request{ method = (i % 2 == 0) and "POST" or "GET", url = srv:url("/echo"),
                                  body = (i % 2 == 0) and ("x"):rep(i * 100) or nil,
                                  headers = { ["X-I"] = i } })
      n = n + count(r.headers)
    end
    assert.is_true(n > 0)
    c:close()
  end)
end)
