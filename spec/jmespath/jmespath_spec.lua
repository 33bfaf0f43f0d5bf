-- azcmk.jmespath on the kind of data azcmk prints (an audit result, a registry as ARM returns
-- it), its API and errors, and the same queries through the Python jmespath the Azure CLI
-- uses. The official compliance suite is spec/jmespath/compliance_suite.lua.
local jmespath = require("azcmk.jmespath")
local json = require("azcmk.json")
local oracle = require("support.python_oracle")

local null = json.null

-- An audit result as Lua tables (not decoded JSON): arrays are plain sequences, the empty
-- list is marked (json.array(): an unmarked {} is an object), absent fields are nil.
local function audit_result()
  return {
    summary = { registries = 4, cmk = 3, ok = 1, warn = 1, fail = 2 },
    subscriptions = { { id = "sub-a", registries = 3, listed = 3 },
      { id = "sub-b", registries = 1, listed = 1 } },
    registries = {
      { name = "prodreg1", subscription = "sub-a", resourceGroup = "prod", sku = "Premium", cmk = true,
        health = "fail", problems = { "the user-assigned identity was deleted" }, vault = "kvprod",
        keyName = "cmk", keyAgeDays = 400, keyVersionCreated = "2023-10-01T00:00:00Z", dataPlane = 403 },
      { name = "prodreg2", subscription = "sub-a", resourceGroup = "prod", sku = "Premium", cmk = true,
        health = "warn", problems = { "a newer key version exists" }, vault = "kvprod", keyName = "cmk",
        keyAgeDays = 30, keyVersionCreated = "2024-11-05T00:00:00Z", dataPlane = 401 },
      { name = "devreg", subscription = "sub-a", resourceGroup = "dev", sku = "Basic", cmk = false,
        health = "ok", problems = json.array(), dataPlane = 401 },
      { name = "Prodreg3", subscription = "sub-b", resourceGroup = "prod", sku = "Premium", cmk = true,
        health = "fail",
        problems = { "the key version in use is disabled", "the data plane refuses to serve (403)" },
        vault = "kvother", keyName = "cmk2", keyAgeDays = 2.5, keyVersionCreated = "2025-01-01T00:00:00Z",
        dataPlane = 403 },
    },
  }
end

local function search(expr, value)
  local r, err = jmespath.search(expr, value)
  assert(r ~= nil, tostring(err))
  return r
end

describe("azcmk.jmespath", function()
  describe("on an audit result", function()
    local data = audit_result()

    it("filters and projects registries", function()
      assert.same({ "prodreg1", "prodreg2", "Prodreg3" }, search("registries[?health != 'ok'].name", data))
      assert.same({ "prodreg1", "Prodreg3" }, search("registries[?health == 'fail'].name", data))
      assert.same({ "devreg" }, search("registries[?!cmk].name", data))
      assert.same({ "prodreg1", "Prodreg3" }, search("registries[?dataPlane == `403`].name", data))
      assert.equal(3, search("length(registries[?cmk])", data))
      assert.equal(4, search("summary.registries", data))
    end)

    it("builds rows with the keys in the order the query names them", function()
      local rows = search("registries[?cmk].{Registry: name, Vault: vault, Key: keyName, Age: keyAgeDays}",
        data)
      assert.equal(3, #rows)
      assert.same({ Registry = "prodreg1", Vault = "kvprod", Key = "cmk", Age = 400 }, rows[1])
      assert.same({ "Registry", "Vault", "Key", "Age" }, json.keys(rows[1]))
      assert.is_true(json.is_array(rows))
      -- a missing field stays in the row as null
      local r = search("registries[?name == 'devreg'].{name: name, vault: vault}", data)
      assert.equal(null, r[1].vault)
      assert.same({ "name", "vault" }, json.keys(r[1]))
    end)

    it("flattens, sorts, pipes and aggregates", function()
      assert.same({ "the user-assigned identity was deleted", "a newer key version exists",
        "the key version in use is disabled", "the data plane refuses to serve (403)" },
        search("registries[].problems[]", data))
      assert.equal(4, search("registries[].problems[] | length(@)", data))
      assert.same({ "Basic", "Premium", "Premium", "Premium" }, search("registries[*].sku | sort(@)", data))
      assert.equal("prodreg1", search("max_by(registries[?cmk], &keyAgeDays).name", data))
      assert.same({ "Prodreg3", "prodreg2", "prodreg1" },
        search("sort_by(registries[?cmk], &keyAgeDays)[*].name", data))
      assert.equal(432.5, search("sum(registries[?cmk].keyAgeDays)", data))
      assert.same({ "kvother", "kvprod" },
        search("[min(registries[?cmk].vault), max(registries[?cmk].vault)]", data))
    end)

    it("compares ISO dates as strings, as the Azure CLI's jmespath does", function()
      assert.same({ "prodreg2", "Prodreg3" },
        search("registries[?keyVersionCreated > '2024-01-01'].name", data))
      -- a string against a number orders nothing: null, so the filter keeps nothing
      assert.same({}, search("registries[?keyVersionCreated > `1`].name", data))
    end)

    it("matches names by prefix, case-sensitively unless asked", function()
      assert.same({ "prodreg1", "prodreg2" }, search("registries[?starts_with(name, 'prod')].name", data))
      assert.same({ "Prodreg3" }, search("registries[?ends_with(name, '3')].name", data))
      assert.same({ "prodreg1", "prodreg2" },
        search("registries[?contains(name, 'odreg')] | [?sku == 'Premium'] | [?subscription == 'sub-a'].name",
          data))
    end)

    it("reports a sort over a field some rows lack as invalid-type", function()
      -- devreg has no keyAgeDays: null is neither a number nor a string
      local r, err = jmespath.search("sort_by(registries, &keyAgeDays)", data)
      assert.is_nil(r)
      assert.equal("invalid-type", err.error_type)
      assert.equal("JMESPathInvalidType", err.code)
    end)

    it("leaves its input unchanged", function()
      local before = json.encode(data)
      search("sort_by(registries[?cmk], &keyAgeDays)", data)
      search("reverse(registries)", data)
      search("merge(summary, {extra: `1`})", data)
      assert.equal(before, json.encode(data))
    end)
  end)

  describe("on a registry as ARM returns it", function()
    local reg = assert(json.decode([[{
      "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r1",
      "name": "r1", "location": "westus", "tags": {}, "sku": {"name": "Premium", "tier": "Premium"},
      "identity": {"type": "UserAssigned", "userAssignedIdentities": {
        "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1":
          {"principalId": "p1", "clientId": "c1"}}},
      "properties": {"loginServer": "r1.azurecr.io", "networkRuleSet": {"ipRules": []},
        "encryption": {"status": "enabled", "keyVaultProperties": {
          "keyIdentifier": "https://kv.vault.azure.net/keys/cmk", "identity": "c1"}}}}]]))

    it("reads nested and quoted names", function()
      assert.equal("enabled", search("properties.encryption.status", reg))
      assert.equal("https://kv.vault.azure.net/keys/cmk",
        search("properties.encryption.keyVaultProperties.keyIdentifier", reg))
      assert.same({ "c1" }, search("identity.userAssignedIdentities.*.clientId", reg))
      local uai = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/"
        .. "userAssignedIdentities/u1"
      assert.equal("p1", search('identity.userAssignedIdentities."' .. uai .. '".principalId', reg))
    end)

    it("tells [] from {} in decoded JSON", function()
      assert.equal("array", search("type(properties.networkRuleSet.ipRules)", reg))
      assert.equal("object", search("type(tags)", reg))
      assert.equal(0, search("length(tags)", reg))
      assert.same({}, search("properties.networkRuleSet.ipRules[*]", reg))
      assert.equal(null, search("tags[*]", reg))
    end)
  end)

  describe("value model", function()
    it("treats Lua sequences as arrays, other tables as objects, an empty unmarked table as {}", function()
      assert.equal("array", search("type(@)", { 1, 2 }))
      assert.equal("object", search("type(@)", { a = 1 }))
      assert.equal("object", search("type(@)", {}))
      assert.equal("array", search("type(@)", json.array()))
      assert.equal("null", search("type(@)", nil))
      assert.equal("null", search("type(@)", null))
    end)

    it("keeps an unmarked empty table as an object (what lua-cjson makes of [] and {})", function()
      assert.same({ "a", {}, "b" }, search("[].problems[]", { { problems = { "a" } }, { problems = {} },
        { problems = { "b" } } }))
      assert.same({ "a", "b" }, search("[].problems[]", { { problems = { "a" } }, { problems = json.array() },
        { problems = { "b" } } }))
    end)

    it("returns json.null (never nil) for a null result", function()
      assert.equal(null, search("missing", { a = 1 }))
      assert.equal(null, search("a.b.c", { a = 1 }))
      assert.equal(null, search("[0]", { a = 1 }))
    end)

    it("ignores fields that hold functions", function()
      local v = { name = "r", render = function() end }
      assert.equal(null, search("render", v))
      assert.same({ "name" }, search("keys(@)", v))
      assert.same({ "r" }, search("*", v))
    end)

    it("keeps integers and floats apart as Lua does", function()
      assert.equal(2.5, search("avg(`[2, 3]`)", null))
      assert.equal(5, search("length('héllo')", null))
      assert.equal("ollèh", search("reverse('hèllo')", null))
      assert.equal(10, search("to_number('10')", null))
      assert.equal(1.5, search("to_number(' 1.5 ')", null))
      assert.equal(null, search("to_number('0x10')", null))
      assert.equal("[1,2.5,\"\\u00e9\"]", search("to_string(`[1, 2.5, \"é\"]`)", null))
      if math.type then  -- luacheck: ignore 143 (Lua 5.4)
        assert.equal("integer", math.type(search("to_number('10')", null))) -- luacheck: ignore 143
        assert.equal("integer", math.type(search("floor(`2.7`)", null))) -- luacheck: ignore 143
      end
    end)
  end)

  describe("API and errors", function()
    it("compiles once and searches many values", function()
      local q = assert(jmespath.compile("a || b"))
      assert.equal(1, q:search({ a = 1 }))
      assert.equal(2, q:search({ b = 2 }))
      assert.equal(null, q:search({}))
      assert.matches("jmespath%(a || b%)", tostring(q))
    end)

    it("refuses a bad expression at compile time with the column", function()
      local q, err = jmespath.compile("registries[?health = 'ok']")
      assert.is_nil(q)
      assert.equal("input", err.kind)
      assert.equal("syntax", err.error_type)
      assert.equal("JMESPathSyntaxError", err.code)
      assert.equal("query", err.param)
      assert.equal(20, err.position)
      assert.matches("column 20", err.message)
      assert.matches("'=' is no operator %(use '=='%)", err.message)
      assert.truthy(err.hint)
      local cases = {
        ["registries[0"] = "column 13 .*expected '%]', found the end of the expression",
        ["registries | "] = "column 14 .*the expression ends too early",
        ["registries[?health == 'ok'] name"] = "column 29 .*unexpected 'name'",
        ["{name name}"] = "column 7 .*expected ':', found 'name'",
        ["\"name"] = "column 1 .*unclosed \" delimiter",
      }
      for expr, pattern in pairs(cases) do
        q, err = jmespath.compile(expr)
        assert.is_nil(q, expr)
        assert.matches(pattern, err.message, nil, false, expr)
      end
    end)

    it("refuses unknown functions and wrong argument counts before any data is read", function()
      local q, err = jmespath.compile("lenght(registries)")
      assert.is_nil(q)
      assert.equal("unknown-function", err.error_type)
      assert.matches("lenght", err.message)
      q, err = jmespath.compile("length(a, b)")
      assert.is_nil(q)
      assert.equal("invalid-arity", err.error_type)
      assert.matches("takes 1 argument, got 2", err.message)
      q, err = jmespath.compile("merge()")
      assert.is_nil(q)
      assert.equal("invalid-arity", err.error_type)
      assert.matches("at least 1", err.message)
    end)

    it("reports type errors and a zero slice step when searching", function()
      local r, err = jmespath.search("abs(name)", { name = "x" })
      assert.is_nil(r)
      assert.equal("invalid-type", err.error_type)
      assert.matches("abs%(%) expected number, got string", err.message)
      r, err = jmespath.search("[::0]", { 1, 2 })
      assert.is_nil(r)
      assert.equal("invalid-value", err.error_type)
    end)

    it("raises on a programming error (an expression that is not a string)", function()
      assert.has_error(function() jmespath.compile(nil) end)
    end)
  end)

  describe("against the Python jmespath the Azure CLI uses", function()
    -- Every expression here runs through both; results (with key order) and error types must
    -- be the same.
    local EXPRESSIONS = {
      "registries[?health != 'ok'].name",
      "registries[?cmk].{Registry: name, Vault: vault, Key: keyName, Age: keyAgeDays}",
      "registries[].problems[]",
      "registries[].problems",
      "registries[*].[name, sku]",
      "registries[?keyAgeDays > `100`].name",
      "registries[?keyVersionCreated >= '2024-11-05T00:00:00Z'].name",
      "sort_by(registries[?cmk], &keyAgeDays)[-1].name",
      "sort_by(registries, &keyAgeDays)",
      "max_by(registries, &name).name",
      "min_by(registries[?cmk], &keyAgeDays)",
      "registries[0:4:2].name",
      "registries[::-1].name",
      "registries[-1:].name",
      "registries | [1]",
      "subscriptions[?registries > `1`].id",
      "summary.*",
      "keys(summary)",
      "values(summary)",
      "merge(summary, `{\"ok\": 0, \"new\": true}`)",
      "summary.{fail: fail, ok: ok, missing: nothing}",
      "length(registries[?contains(problems, 'a newer key version exists')])",
      "registries[?length(problems) > `1`].problems[0]",
      "registries[?sku == 'Premium' && !cmk].name",
      "registries[?sku == 'Premium' || dataPlane == `401`].name",
      "join(', ', registries[].name)",
      "map(&to_string(dataPlane), registries)",
      "not_null(registries[2].vault, registries[2].keyName, 'none')",
      "avg(registries[?cmk].keyAgeDays)",
      "to_array(summary.ok)",
      "type(registries[0].problems)",
      "registries[?name == 'devreg'] | [0].problems",
      "abs(summary.fail) + 1",
      "registries[?health = 'ok']",
      "sum(registries[].name)",
      "nope(registries)",
      "length()",
      "registries[::0]",
    }

    it("gives the same results and error types", function()
      local data = audit_result()
      local want = oracle.jmespath(EXPRESSIONS, data)
      assert.equal(#EXPRESSIONS, #want)
      for i, expr in ipairs(EXPRESSIONS) do
        local r, err = jmespath.search(expr, data)
        if want[i].error then
          assert.is_nil(r, expr)
          assert.equal(want[i].error, err.error_type, expr)
        else
          assert(r ~= nil, expr .. ": " .. tostring(err))
          -- encode both: equal values with the same key order give the same text
          assert.equal(json.encode(want[i].result), json.encode(r), expr)
        end
      end
    end)
  end)
end)
