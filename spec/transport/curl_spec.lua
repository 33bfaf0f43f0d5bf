-- The curl transport against the emulator: the interface shape, batch, error mapping.
local H = require("support.pipeline_helper")
local transport = require("azcmk.transport.curl")

describe("transport/curl against the emulator", function()
  local env
  setup(function() env = H.env() end)

  it("answers with status, lower-case headers and body", function()
    local t = transport.new({ env = env })
    local res, err = t:request({ method = "GET", url = "https://management.azure.com/_emulator/health",
                                 headers = { Accept = "application/json" } })
    assert.is_nil(err)
    assert.equal(200, res.status)
    assert.truthy(res.headers["content-type"]:find("json", 1, true))
    assert.truthy(res.body:find("ok", 1, true))
    t:close()
  end)

  it("runs a batch and reports each result by index", function()
    local t = transport.new({ env = env })
    local results, errs = t:batch({
      { method = "GET", url = "https://management.azure.com/_emulator/health" },
      { method = "GET", url = "https://login.microsoftonline.com/_emulator/health" },
      { method = "GET", url = "https://127.0.0.1:9/" },
    })
    assert.equal(200, results[1].status)
    assert.equal(200, results[2].status)
    assert.is_false(results[3])
    assert.equal("network", errs[3].kind)
  end)

  it("maps a refused connection to a retryable connect-phase network error", function()
    local t = transport.new({ env = {} })
    local res, err = t:request({ method = "GET", url = "https://127.0.0.1:9/x" })
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.equal("connect", err.phase)
    assert.is_true(err.retryable)
  end)

  it("refuses plain http to hosts other than IMDS and loopback", function()
    local t = transport.new({ env = env })
    local res, err = t:request({ method = "GET", url = "http://management.azure.com/x" })
    assert.is_nil(res)
    assert.equal("input", err.kind)
    assert.is_false(err.retryable)
  end)

  it("raises on programmer errors", function()
    local t = transport.new({ env = env })
    assert.has_error(function() t:request({ url = "https://x/" }) end)
    assert.has_error(function() t:request("https://x/") end)
  end)
end)
