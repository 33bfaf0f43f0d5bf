-- parse_header_line: the header parser the HTTP client uses (src/headers.c).
local core = require "azcmk.core"
local parse = core.parse_header_line

describe("azcmk.core parse_header_line", function()
  it("returns the lower-case name and the trimmed value", function()
    assert.same({ "content-type", "application/json" }, { parse("Content-Type: application/json\r\n") })
    assert.same({ "x-ms-request-id", "abc" }, { parse("X-MS-Request-Id:abc") })
    assert.same({ "www-authenticate", 'Bearer authorization="https://x", resource="y"' },
      { parse('WWW-Authenticate:   Bearer authorization="https://x", resource="y"  \t\r\n') })
    assert.same({ "retry-after", "" }, { parse("Retry-After:\r\n") })
    assert.same({ "x", "a:b: c" }, { parse("x: a:b: c\n") })
    assert.same({ "!#$%&'*+-.^_`|~09az", "v" }, { parse("!#$%&'*+-.^_`|~09AZ: v") })
  end)

  it("keeps inner whitespace and obs-text in values", function()
    assert.same({ "x", "a  \t b \xff" }, { parse("x:  a  \t b \xff \r\n") })
  end)

  it("returns nil for what is not a header line", function()
    assert.is_nil(parse("HTTP/1.1 200 OK\r\n"))
    assert.is_nil(parse("HTTP/2 404\r\n"))
    assert.is_nil(parse("\r\n"))
    assert.is_nil(parse(""))
    assert.is_nil(parse("no colon here\r\n"))
    assert.is_nil(parse(": no name\r\n"))
    assert.is_nil(parse("Bad Name: x\r\n"))
    assert.is_nil(parse("Name : space before colon\r\n"))
    assert.is_nil(parse("  folded continuation\r\n"))
    assert.is_nil(parse("x: a\rb\r\n"))
    assert.is_nil(parse("x: a\0b\r\n"))
    assert.is_nil(parse("x\0y: v\r\n"))
    assert.is_nil(parse("(x): v\r\n"))
  end)

  it("raises on a non-string argument", function()
    assert.has_error(function() parse({}) end)
    assert.has_error(function() parse() end)
  end)
end)
