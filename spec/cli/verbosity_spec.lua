-- --verbose and --debug: the request log of AZCMK_LOG=info / debug for one run, on stderr.
local H = require("support.cmk_helper")

describe("azcmk --verbose / --debug", function()
  setup(function() H.start() end)
  teardown(function() H.done() end)

  it("quiet by default; --verbose logs one line per request; --debug adds redacted headers", function()
    local name = H.unique("none")
    local r = H.cli({ "show", "-n", name })
    assert.is_nil(r.stderr:find("azcmk http", 1, true), r.stderr)
    r = H.cli({ "show", "-n", name, "--verbose" })
    assert.equal(1, r.code)
    assert.matches("azcmk http GET management%.azure%.com /subscriptions/[^\n]+%-> 200", r.stderr)
    assert.is_nil(r.stderr:find("azcmk debug:", 1, true))
    r = H.cli({ "show", "-n", name, "--debug" })
    assert.matches("azcmk debug: > https://management%.azure%.com/", r.stderr)
    assert.matches("authorization: REDACTED", r.stderr)
    assert.is_nil(r.stderr:find(H.seed().owner.client_secret, 1, true))
    -- the last line is still the error
    assert.matches("RegistryNotFound[^\n]*\n$", r.stderr)
  end)

  it("AZCMK_LOG still works without the flags", function()
    local r = H.cli({ "show", "-n", H.unique("none") }, { AZCMK_LOG = "info" })
    assert.matches("azcmk http GET management%.azure%.com", r.stderr)
  end)
end)
