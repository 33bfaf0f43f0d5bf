local args = require "azcmk.cli.args"

describe("cli.args", function()
  local flags = {
    { "vault", nil, "NAME", "key vault" },
    { "versionless", nil, false, "follow new key versions" },
    { "yes", "y", false, "do not ask" },
  }

  it("parses long, short and --x=v flags into snake_case keys", function()
    local argv = { "-g", "rg1", "--name=reg1", "--vault", "kv1", "--versionless", "extra" }
    local o, pos = args.parse(argv, flags)
    assert.same({ resource_group = "rg1", name = "reg1", vault = "kv1", versionless = true }, o)
    assert.same({ "extra" }, pos)
  end)

  it("refuses unknown flags and names them", function()
    local o, err = args.parse({ "--nope" }, flags)
    assert.is_nil(o)
    assert.matches("unknown flag %-%-nope", err)
  end)

  it("refuses a value flag without a value and a boolean with one", function()
    assert.matches("needs a value", select(2, args.parse({ "--vault" }, flags)))
    assert.matches("takes no value", select(2, args.parse({ "--yes=1" }, flags)))
  end)

  it("checks --output", function()
    assert.equal("json", args.parse({ "-o", "json" }, flags).output)
    assert.matches("json or table", select(2, args.parse({ "-o", "yaml" }, flags)))
  end)

  it("treats everything after -- as positional", function()
    local _, pos = args.parse({ "--", "-g", "x" }, flags)
    assert.same({ "-g", "x" }, pos)
  end)

  it("lists every flag in the help text", function()
    local h = args.help("azcmk show -n NAME", flags)
    for _, s in ipairs({ "--vault NAME", "-y, --yes", "-g, --resource-group NAME", "--versionless" }) do
      assert.truthy(h:find(s, 1, true), s)
    end
  end)
end)
