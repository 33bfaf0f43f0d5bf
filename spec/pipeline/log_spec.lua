local log = require("azcmk.log")

describe("azcmk.log", function()
  it("redacts query values except api-version", function()
    local u = log.redact_url("https://h.example/p/a?api-version=2023-01-01&sig=SECRET&resource=x")
    assert.equal("https://h.example/p/a?api-version=2023-01-01&sig=REDACTED&resource=REDACTED", u)
  end)

  it("keeps only allow-listed header values", function()
    local h = log.redact_headers({ Authorization = "Bearer abc", ["x-ms-request-id"] = "r1",
                                   ["X-IDENTITY-HEADER"] = "s3cret", Cookie = "c", ["Content-Type"] = "a/b" })
    assert.equal("REDACTED", h.authorization)
    assert.equal("REDACTED", h["x-identity-header"])
    assert.equal("REDACTED", h.cookie)
    assert.equal("r1", h["x-ms-request-id"])
    assert.equal("a/b", h["content-type"])
  end)

  it("redacts secrets in JSON and form bodies", function()
    local b = log.redact_body('{"access_token":"TOKVAL","expires_in":3599,"key":{"n":"N","d":"D","p":"P"},'
      .. '"value":"wrapped","list":{"value":[1,2]}}', "application/json")
    assert.falsy(b:find("TOKVAL", 1, true)); assert.falsy(b:find('"D"', 1, true))
    assert.falsy(b:find("wrapped", 1, true))
    assert.truthy(b:find("3599", 1, true)); assert.truthy(b:find('"N"', 1, true))
    local f = log.redact_body("grant_type=client_credentials&client_id=abc&client_secret=s3cret&"
      .. "client_assertion=eyJx.eyJy.z&scope=https%3A%2F%2Fmanagement.azure.com%2F.default",
      "application/x-www-form-urlencoded")
    assert.falsy(f:find("s3cret", 1, true)); assert.falsy(f:find("eyJx", 1, true))
    assert.truthy(f:find("client_id=abc", 1, true))
    assert.equal("[5 bytes]", log.redact_body("hello", "text/plain"))
  end)

  it("logs one info line per attempt without secrets, bodies only at debug", function()
    local lines = {}
    local l = log.new({ level = "info", sink = function(s) lines[#lines + 1] = s end })
    local req = { method = "POST", url = "https://login.microsoftonline.com/t/oauth2/v2.0/token?x=secret",
                  headers = { Authorization = "Bearer eyJa.eyJb.c", ["x-ms-client-request-id"] = "c1" },
                  body = "client_secret=s3cret" }
    local res = { status = 200, headers = { ["x-ms-request-id"] = "r1",
      ["content-type"] = "application/json" },
                  body = '{"access_token":"eyJa.eyJb.c"}' }
    l:request({ req = req, res = res, ms = 12, attempt = 2 })
    assert.equal(1, #lines)
    assert.truthy(lines[1]:find("POST login.microsoftonline.com /t/oauth2/v2.0/token -> 200 12ms", 1, true))
    assert.truthy(lines[1]:find("x-ms-request-id=r1", 1, true))
    assert.truthy(lines[1]:find("try=2", 1, true))
    local d = {}
    local dl = log.new({ level = "debug", sink = function(s) d[#d + 1] = s end })
    dl:request({ req = req, res = res, ms = 12, attempt = 1 })
    local all = table.concat(d, "\n")
    assert.truthy(#d >= 3)
    for _, secret in ipairs({ "s3cret", "eyJa", "x=secret" }) do assert.falsy(all:find(secret, 1, true),
      secret) end
  end)

  it("reads AZCMK_LOG", function()
    assert.is_true(log.from_env({ getenv = function() return "debug" end }):enabled("debug"))
    assert.is_false(log.from_env({ getenv = function() return nil end }):enabled("info"))
  end)
end)
