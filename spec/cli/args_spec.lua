-- Flag parsing on lua-argparse: did-you-mean for verbs and flags, az's flag names with the old
-- ones as aliases, --help per verb that says what the code does.
local args = require("azcmk.cli.args")
local H = require("support.cmk_helper")

describe("azcmk.cli.args", function()
  local FLAGS = { { "vault-name", nil, "NAME", "the vault", aliases = { "vault" } },
    { "probe", nil, false, "probe" } }

  it("parses long, short, --x=v, aliases and booleans; the last of a repeated flag wins", function()
    local o, pos = args.parse({ "-n", "r1", "--name=r2", "-g", "rg", "--vault", "kv", "--probe" }, FLAGS)
    assert.equal("r2", o.name)
    assert.equal("rg", o.resource_group)
    assert.equal("kv", o.vault_name)
    assert.is_true(o.probe)
    assert.same({}, pos)
    o = args.parse({ "--vault-name", "kv2" }, FLAGS)
    assert.equal("kv2", o.vault_name)
  end)

  it("refuses an unknown flag with a did-you-mean on one line", function()
    local o, msg = args.parse({ "--nmae", "x" }, FLAGS)
    assert.is_nil(o)
    assert.equal("unknown flag '--nmae'; did you mean '--name'?", msg)
    o, msg = args.parse({ "--prob" }, FLAGS)
    assert.is_nil(o)
    assert.matches("did you mean '%-%-probe'", msg)
    o, msg = args.parse({ "-n" }, FLAGS)
    assert.is_nil(o)
    assert.matches("'%-n' requires an argument", msg)
  end)

  it("takes positional words only when the verb declares them", function()
    local o, msg = args.parse({ "-n", "x", "extra" }, FLAGS)
    assert.is_nil(o)
    assert.matches("too many arguments", msg)
    local _, pos = args.parse({ "a=1", "-n", "x", "b=2" }, FLAGS, "K=V")
    assert.same({ "a=1", "b=2" }, pos)
  end)

  it("suggests a verb", function()
    assert.equal("unknown verb 'shwo'; did you mean 'show'?", args.unknown_verb("shwo", { "show", "setup" }))
    assert.is_nil(args.unknown_verb("show", { "show", "setup" }))
  end)

  it("a verb's own flag replaces the common one of the same name in parsing and help", function()
    local own = { { "name", "n", "DEPLOYMENT", "deployment name" } }
    local help = args.help("azcmk deploy", own)
    assert.matches("%-n, %-%-name DEPLOYMENT%s+deployment name", help)
    assert.is_nil(help:find("registry name", 1, true))
    assert.matches("AZCMK_LOG", help)
  end)
end)

describe("azcmk command line: parsing", function()
  setup(function() H.start() end)
  teardown(function() H.done() end)

  it("did you mean: a mistyped verb and flag exit 2 with one line naming the right one", function()
    local r = H.cli({ "shwo", "-n", "x" })
    assert.equal(2, r.code)
    assert.equal("azcmk: unknown verb 'shwo'; did you mean 'show'? -- next: run 'azcmk --help' for the "
      .. "list\n", r.stderr)
    r = H.cli({ "show", "--nmae", "x" })
    assert.equal(2, r.code)
    assert.equal("azcmk show: unknown flag '--nmae'; did you mean '--name'? -- next: run 'azcmk show "
      .. "--help'\n", r.stderr)
  end)

  it("recover takes az's --vault-name and the old --vault alike", function()
    for _, flag in ipairs({ "--vault-name", "--vault" }) do
      local r = H.cli({ "recover", flag, H.unique("kv-"), "--dry-run", "-o", "json" })
      assert.is_nil(r.stderr:find("unknown flag", 1, true), r.stderr)
      assert.is_nil(r.stderr:find("no vault given", 1, true), r.stderr)
    end
    local r = H.cli({ "recover", "--help" })
    assert.matches("%-%-vault%-name NAME", r.stdout)
    assert.matches("also %-%-vault", r.stdout)
  end)

  it("identity assign takes az's --identities and the old --identity", function()
    for _, flag in ipairs({ "--identities", "--identity" }) do
      local r = H.cli({ "identity", "assign", "-n", H.unique("none"), flag, "[system]" })
      assert.equal(1, r.code, r.stderr)
      assert.matches("RegistryNotFound", r.stderr)
    end
  end)

  it("deploy --help says -n is the deployment, and every verb's help names AZCMK_LOG", function()
    local r = H.cli({ "deploy", "--help" })
    assert.equal(0, r.code)
    assert.matches("%-n, %-%-name DEPLOYMENT", r.stdout)
    assert.is_nil(r.stdout:find("registry name", 1, true))
    for _, verb in ipairs({ "setup", "show", "rotate", "revoke", "restore", "identity", "recover", "doctor",
      "audit", "deploy" }) do
      r = H.cli({ verb, "--help" })
      assert.equal(0, r.code, verb)
      assert.truthy(r.stdout:find("AZCMK_LOG", 1, true), verb)
      assert.truthy(r.stdout:find("--verbose", 1, true), verb)
    end
    r = H.cli({ "--help" })
    assert.truthy(r.stdout:find("AZCMK_LOG", 1, true))
  end)
end)
