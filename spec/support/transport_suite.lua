--- The transport contract (lua/azcmk/transport/contract.lua) as one suite of cases that runs
-- against every transport: spec/transport/curl_spec.lua runs it in plain Lua with
-- azcmk.transport.curl, spec/transport/ngx_spec.lua inside a real nginx with
-- azcmk.transport.ngx (the cases are sent to a location there by name, the results come back
-- as JSON). A case builds its transport options and requests from the fixtures and checks
-- plain results, so both sides judge the same data (check(results, assert): busted's assert
-- lives in the spec file's environment, not in this module's):
--   fx = { h1 = TLS port (HTTP/1.1), http = plain-http port, ca_file = the test CA,
--          emulator_connect_to = the emulator's AZCMK_CONNECT_TO (a CA neither side trusts) }
--   a result: { status, headers, body, total_ms (number?), err = { kind, code, phase,
--   retryable, tls, message }, raised = message (request() raised) }
local M = {}

local VAULT = "https://myvault.vault.azure.net"

-- the test server's TLS port under the vault's real name
local function to_h1(fx) return { ":443:127.0.0.1:" .. fx.h1 } end

local function get(path, extra)
  local r = { method = "GET", url = VAULT .. path }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

M.cases = {
  { name = "answers with status, lower-case headers, body and timing",
    opts = function(fx) return { connect_to = to_h1(fx) } end,
    reqs = function() return { get("/headers") } end,
    check = function(r, assert)
      assert.equal(200, r[1].status)
      assert.equal("ok", r[1].body)
      assert.equal("one, two", r[1].headers["x-multi"])
      assert.equal("Yes", r[1].headers["x-mixed-case"])
      for k in pairs(r[1].headers) do assert.equal(k:lower(), k) end
      assert.is_number(r[1].total_ms)
    end },
  { name = "keeps Host on the URL's host through connect_to and sends the body with its length",
    opts = function(fx) return { connect_to = to_h1(fx) } end,
    reqs = function() return { get("/echo", { method = "POST", body = "hello body",
      headers = { ["Content-Type"] = "text/plain" } }) } end,
    check = function(r, assert)
      assert.equal(200, r[1].status)
      assert.equal("hello body", r[1].body)
      assert.equal("POST", r[1].headers["x-method"])
      assert.equal("myvault.vault.azure.net", r[1].headers["x-echo-host"])
      assert.equal("10", r[1].headers["x-echo-content-length"])
    end },
  { name = "keeps the connection alive between requests",
    opts = function(fx) return { connect_to = to_h1(fx) } end,
    reqs = function() return { get("/hello?i=1"), get("/hello?i=2"), get("/hello?i=3") } end,
    check = function(r, assert)
      assert.equal("hello 3", r[3].body)
      assert.equal(r[1].headers["x-conn"], r[2].headers["x-conn"])
      assert.equal(r[1].headers["x-conn"], r[3].headers["x-conn"])
    end },
  { name = "reads a chunked body",
    opts = function(fx) return { connect_to = to_h1(fx) } end,
    reqs = function() return { get("/big?n=100000") } end,
    check = function(r, assert)
      assert.equal(200, r[1].status)
      assert.equal(100000, #r[1].body)
    end },
  { name = "skips 1xx answers, unfolds folded headers and joins repeated ones",
    opts = function(fx) return { connect_to = to_h1(fx) } end,
    reqs = function() return { get("/interim") } end,
    check = function(r, assert)
      assert.equal(200, r[1].status)
      assert.equal("ok", r[1].body)
      assert.equal("yes", r[1].headers["x-final"])
      assert.is_nil(r[1].headers["x-interim"])
      assert.equal("a b", r[1].headers["x-folded"])
      assert.equal("1, 2", r[1].headers["x-dup"])
    end },
  { name = "returns a redirect as it is",
    opts = function(fx) return { connect_to = to_h1(fx) } end,
    reqs = function() return { get("/redirect") } end,
    check = function(r, assert)
      assert.equal(302, r[1].status)
      assert.truthy(r[1].headers.location:find("/hello", 1, true))
    end },
  { name = "talks plain http to loopback",
    opts = function() return {} end,
    reqs = function(fx)
      return { { method = "GET", url = "http://127.0.0.1:" .. fx.http .. "/hello?i=7" } }
    end,
    check = function(r, assert)
      assert.equal(200, r[1].status)
      assert.equal("hello 7", r[1].body)
    end },
  { name = "refuses plain http to any other host before any I/O: HttpRefused, kind input",
    opts = function() return {} end,
    reqs = function() return { { method = "GET", url = "http://example.org/x" } } end,
    check = function(r, assert)
      assert.equal("input", r[1].err.kind)
      assert.equal("HttpRefused", r[1].err.code)
      assert.is_false(r[1].err.retryable)
    end },
  { name = "refuses a URL with a space: InvalidUrl, kind input",
    opts = function() return {} end,
    reqs = function() return { get("/a b") } end,
    check = function(r, assert)
      assert.equal("input", r[1].err.kind)
      assert.equal("InvalidUrl", r[1].err.code)
    end },
  { name = "fails verification against an untrusted CA: TLSVerificationFailed, never retryable",
    opts = function(fx) return { connect_to = fx.emulator_connect_to } end,
    reqs = function()
      return { { method = "GET", url = "https://management.azure.com/_emulator/health" } }
    end,
    check = function(r, assert)
      assert.equal("network", r[1].err.kind)
      assert.equal("TLSVerificationFailed", r[1].err.code)
      assert.is_true(r[1].err.tls)
      assert.is_false(r[1].err.retryable)
    end },
  { name = "verifies the URL's host, not the mapped address",
    opts = function(fx) return { connect_to = to_h1(fx) } end,
    reqs = function() return { { method = "GET", url = "https://example.org/hello" } } end,
    check = function(r, assert)
      assert.equal("TLSVerificationFailed", r[1].err.code)
    end },
  { name = "reports a refused connection: ConnectFailed, phase connect, retryable",
    opts = function() return { connect_to = { ":443:127.0.0.1:1" } } end,
    reqs = function() return { get("/x") } end,
    check = function(r, assert)
      assert.equal("network", r[1].err.kind)
      assert.equal("ConnectFailed", r[1].err.code)
      assert.equal("connect", r[1].err.phase)
      assert.is_true(r[1].err.retryable)
    end },
  { name = "times out: kind timeout, code Timeout, phase io, retryable",
    opts = function(fx) return { connect_to = to_h1(fx) } end,
    reqs = function() return { get("/sleep?s=2", { timeout_ms = 200 }) } end,
    check = function(r, assert)
      assert.equal("timeout", r[1].err.kind)
      assert.equal("Timeout", r[1].err.code)
      assert.equal("io", r[1].err.phase)
      assert.is_true(r[1].err.retryable)
    end },
  { name = "runs a batch and reports each result by index",
    opts = function(fx) return { connect_to = { "myvault.vault.azure.net:443:127.0.0.1:" .. fx.h1,
      "other.vault.azure.net:443:127.0.0.1:1" } } end,
    batch = true,
    reqs = function() return { get("/hello?i=1"), { method = "GET", url = "https://other.vault.azure.net/x" },
      get("/hello?i=3") } end,
    check = function(r, assert)
      assert.equal("hello 1", r[1].body)
      assert.equal("ConnectFailed", r[2].err.code)
      assert.is_nil(r[2].status)
      assert.equal("hello 3", r[3].body)
    end },
  { name = "raises on what is not a request",
    opts = function() return {} end,
    reqs = function()
      return { "https://x/", { url = "https://x/" }, { method = "GE T", url = VAULT .. "/" } }
    end,
    check = function(r, assert)
      for i = 1, 3 do assert.is_string(r[i].raised, "request " .. i) end
    end },
  { name = "sleeps",
    opts = function() return {} end,
    sleep = 0.01,
    reqs = function() return {} end,
    check = function(r, assert) assert.is_true(r.slept) end },
}

local function plain_err(e)
  if not e then return nil end
  return { kind = e.kind, code = e.code, phase = e.phase, retryable = e.retryable, tls = e.tls,
    message = e.message }
end

local function plain(res, err)
  if not res then return { err = plain_err(err) } end
  return { status = res.status, headers = res.headers, body = res.body,
    total_ms = res.info and res.info.total_ms }
end

--- Runs case `name` against the transport module T (its .new(opts)); returns the results.
-- Every case ignores the process environment (env = {}) and trusts fx.ca_file where the
-- transport takes a CA file.
function M.run(T, name, fx)
  local case
  for _, c in ipairs(M.cases) do if c.name == name then case = c end end
  assert(case, "no transport case " .. tostring(name))
  local opts = case.opts(fx)
  opts.env = {}
  opts.ca_file = fx.ca_file
  opts.timeout_ms = opts.timeout_ms or 10000
  local t = T.new(opts)
  local reqs = case.reqs(fx)
  local out = {}
  if case.sleep then
    t:sleep(case.sleep)
    out.slept = true
  elseif case.batch then
    local results, errs = t:batch(reqs)
    for i = 1, #reqs do out[i] = plain(results[i] or nil, errs[i]) end
  else
    for i, r in ipairs(reqs) do
      local ok, res, err = pcall(t.request, t, r)
      out[i] = ok and plain(res, err) or { raised = tostring(res) }
    end
  end
  t:close()
  return out
end

return M
