-- --query (JMESPath) and -o json|jsonc|table|tsv|yaml|none on every verb that prints data, and
-- one naming convention for their JSON: camelCase (docs/cli-output.md).
local H = require("support.cmk_helper")
local json = require("azcmk.json")

-- every key of a JSON value that is snake_case, outside the user's own names (tags, outputs)
local function snake_keys(v, path, out)
  out = out or {}
  if type(v) ~= "table" then return out end
  for k, x in pairs(v) do
    local p = (path or "") .. "." .. tostring(k)
    if type(k) == "string" and k:match("^[a-z][a-z0-9]*_") then out[#out + 1] = p end
    if k ~= "tags" and k ~= "outputs" and k ~= "parameters" then snake_keys(x, p, out) end
  end
  return out
end

local function lines(s)
  local l = {}
  for x in s:gmatch("[^\n]+") do l[#l + 1] = x end
  return l
end

describe("azcmk --query / -o", function()
  local s, names

  setup(function()
    H.start()
    s, names = H.setup()
  end)

  teardown(function() H.done() end)

  it("--query picks from the JSON result; without -o it prints JSON", function()
    local r = H.cli({ "show", "-n", names.registry, "--query", "keyVaultProperties.keyIdentifier" })
    assert.equal(0, r.code, r.stderr)
    assert.equal('"' .. s.key_id .. '"\n', r.stdout)
    r = H.cli({ "show", "-n", names.registry, "--query", "azcmk.keyVersionInUse", "-o", "tsv" })
    assert.equal(0, r.code, r.stderr)
    assert.equal(s.versioned_key_id:match("[^/]+$") .. "\n", r.stdout)
    r = H.cli({ "audit", "--query", "registries[?cmk].name", "-o", "tsv" })
    assert.equal(0, r.code, r.stderr)
    assert.truthy(r.stdout:find("\n" .. names.registry .. "\n", 1, true)
      or r.stdout:find("^" .. names.registry .. "\n"), r.stdout)
  end)

  it("a bad query is refused before any request: exit 2, the column, a next step", function()
    local seq = H.seq()
    local r = H.cli({ "show", "-n", names.registry, "--query", "registries[?health = 'ok']" })
    assert.equal(2, r.code)
    assert.matches("^azcmk show: invalid query at column %d+.*JMESPathSyntaxError.*next:", r.stderr)
    local sent = H.sent(seq)
    assert.equal(0, #sent, H.describe(sent))
  end)

  it("-o table is az's shape: a header row, dashes, one row per element", function()
    local r = H.cli({ "show", "-n", names.registry, "-o", "table" })
    assert.equal(0, r.code, r.stderr)
    local l = lines(r.stdout)
    assert.equal(3, #l, r.stdout)
    assert.matches("^Registry%s+Status%s+KeyIdentifier%s+VersionedKeyIdentifier%s+KeyVersionInUse", l[1])
    assert.matches("^%-+  %-+  ", l[2])
    assert.matches("^" .. names.registry .. "%s+enabled%s+https://", l[3])
    r = H.cli({ "doctor", "-n", names.registry, "-o", "table" })
    assert.equal(0, r.code, r.stderr)
    l = lines(r.stdout)
    assert.matches("^Check%s+Status%s+Summary$", l[1])
    assert.matches("^registry%s+ok%s+Premium", r.stdout:match("\n(registry %s*ok[^\n]*)"))
    r = H.cli({ "audit", "-n", names.registry, "-o", "table" })
    l = lines(r.stdout)
    assert.matches("^Subscription%s+ResourceGroup%s+Registry%s+Sku", l[1])
    assert.equal(3, #l, r.stdout)
    r = H.cli({ "rotate", "-n", names.registry, "--dry-run", "-o", "table" })
    assert.equal(0, r.code, r.stderr)
    l = lines(r.stdout)
    assert.matches("^Step%s+Action%s+Name%s+Description$", l[1])
    assert.truthy(#l >= 4, r.stdout)
    -- a --query decides the columns, in its order
    r = H.cli({ "audit", "--query", "registries[].{Name: name, Health: health}", "-o", "table" })
    assert.matches("^Name%s+Health\n", r.stdout)
  end)

  it("-o yaml, jsonc (plain when not a terminal), none", function()
    local r = H.cli({ "show", "-n", names.registry, "-o", "yaml" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("\nstatus: enabled\n", r.stdout)
    assert.matches("  keyVersionInUse: %x+\n", r.stdout)
    local j = H.cli({ "show", "-n", names.registry, "-o", "json" })
    r = H.cli({ "show", "-n", names.registry, "-o", "jsonc" })
    assert.equal(j.stdout, r.stdout)
    r = H.cli({ "show", "-n", names.registry, "-o", "none" })
    assert.equal(0, r.code)
    assert.equal("", r.stdout)
  end)

  it("every verb's JSON is camelCase (show, audit, doctor, rotate, setup, plans, revoke's plan)", function()
    local runs = {
      { "show", "-n", names.registry }, { "audit", "-n", names.registry }, { "doctor", "-n", names.registry },
      { "rotate", "-n", names.registry, "--dry-run" }, { "rotate", "-n", names.registry },
      { "setup", "-g", names.resource_group, "-n", names.registry, "--vault", names.vault },
      { "revoke", "-n", names.registry }, { "restore", "-n", names.registry },
      { "identity", "assign", "-n", names.registry, "--identities", "[system]", "--dry-run" },
    }
    for _, argv in ipairs(runs) do
      argv[#argv + 1] = "-o"
      argv[#argv + 1] = "json"
      local r = H.cli(argv)
      local v = json.decode(r.stdout)
      assert.truthy(v, table.concat(argv, " ") .. ": " .. r.stdout .. r.stderr)
      assert.same({}, snake_keys(v), table.concat(argv, " "))
    end
    local r = H.cli({ "show", "-n", names.registry, "-o", "json" })
    local v = json.decode(r.stdout)
    assert.truthy(v.azcmk.identity.clientId)
    assert.truthy(v.azcmk.keyRotationPolicy.notifyBeforeExpiry)
    r = H.cli({ "audit", "-n", names.registry, "-o", "json" })
    assert.truthy(json.decode(r.stdout).registries[1].keyVersionInUse)
  end)
end)
