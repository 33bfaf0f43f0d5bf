-- azcmk.cli.output: the Azure CLI's -o formats, compared byte for byte with what knack (the
-- Azure CLI's own formatters, Debian's python3-knack) writes for the same values, with and
-- without a --query; writing to a full disk is an error.
local output = require("azcmk.cli.output")
local json = require("azcmk.json")
local jmespath = require("azcmk.jmespath")
local oracle = require("support.python_oracle")

local null = json.null

-- A registry as ARM returns it, decoded (arrays marked, key order kept).
local REGISTRY = assert(json.decode([[{
  "id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/r1",
  "name": "r1", "type": "Microsoft.ContainerRegistry/registries", "location": "westus", "tags": {},
  "sku": {"name": "Premium", "tier": "Premium"},
  "systemData": {"createdAt": "2024-11-05T10:20:30.1234567Z", "createdByType": "User"},
  "properties": {"loginServer": "r1.azurecr.io", "adminUserEnabled": false, "provisioningState": "Succeeded",
    "networkRuleSet": {"defaultAction": "Allow", "ipRules": []}, "zoneRedundancy": "Disabled",
    "encryption": {"status": "enabled", "keyVaultProperties": {
      "keyIdentifier": "https://kv1.vault.azure.net/keys/cmk/0123456789abcdef0123456789abcdef",
      "identity": "00000000-0000-4000-8000-0000000000c1", "keyRotationEnabled": false,
      "lastKeyRotationTimestamp": null}}},
  "policies": {"retentionPolicy": {"days": 7, "status": "disabled"}}
}]]))

-- An audit result as azcmk builds it (Lua tables).
local AUDIT = {
  summary = { registries = 3, cmk = 2, ok = 1, warn = 1, fail = 1, ratio = 0.5 },
  registries = {
    { name = "prodreg1", resourceGroup = "prod", sku = "Premium", cmk = true, health = "fail",
      keyAgeDays = 400,
      problems = { "the user-assigned identity was deleted" }, vault = "kvprod", dataPlane = 403,
      id = "/subscriptions/s/resourceGroups/prod/providers/Microsoft.ContainerRegistry/registries/prodreg1" },
    { name = "prodreg2", resourceGroup = "prod", sku = "Premium", cmk = true, health = "warn",
      keyAgeDays = 2.5,
      problems = { "a newer key version exists" }, vault = "kvprod", dataPlane = 401 },
    { name = "devreg", resourceGroup = "dev", sku = "Basic", cmk = false, health = "ok",
      problems = json.array(),
      dataPlane = 401, note = "déjà vu" },
  },
}

local function query(expr, value) return assert(jmespath.search(expr, value)) end

-- Strings that YAML quotes, escapes or folds, and plain ones.
local TRICKY = { "true", "1", "1.5", "null", "", " sp", "sp ", "2001-12-14", "2024-11-05T10:20:30.1234567Z",
  "2001-12-14 21:59:43.10 -5", "a: b", "- x", "#c", "a #c", "@at", "`bt", "%p", "!t", "&a", "*a", "|", ">",
  "-",
  "?", "? a", ",", "[", "]", "{", "}", "key:", "http://x", "1_000", "0o17", "0b101", "+1", ".5", "1e3",
  "1.0e+3", ".inf", ".NaN", "Yes", "NO", "y", "n", "~", "Null", "=", "<<", "1:30", "190:20:30.15", "12:30:45",
  "0x_1", "0x1F", "a\nb", "a\n", "\t tab", "x\ty", "\7bell", "déjà", "'q'", '"dq"', "a'b", "\194\160x",
  "\239\187\191bom", "x\226\128\168y", "e\204\129", "日本語",
  ("word "):rep(30), ("x"):rep(100) .. " y", "ends with colon:", "-1", "--", "~x", "0", "00", "09", "0.0.1" }

local CASES = {
  -- json / jsonc: indented, sorted keys, UTF-8 kept, numbers as Python writes them
  { value = REGISTRY, format = "json" },
  { value = AUDIT, format = "json" },
  { value = { 1, 2.5, 1e-05, 1e16, 0.1, -0.0001, true, false, null, "é\n\"/\\", json.array(), {} },
    format = "json" },
  { value = "just a string", format = "json" },
  { value = null, format = "json" },
  { value = REGISTRY, format = "jsonc" },
  { value = AUDIT, format = "jsonc" },
  { value = json.array(), format = "jsonc" },
  -- table: scalar fields as sorted columns without a query, in the query's order with one
  { value = REGISTRY, format = "table" },
  { value = AUDIT.registries, format = "table" },
  { value = AUDIT, format = "table" },
  { value = query("registries[].{Name: name, Health: health, Age: keyAgeDays, Vault: vault}", AUDIT),
    format = "table", query = true },
  { value = query("registries[].[name, cmk, problems, vault]", AUDIT), format = "table", query = true },
  { value = query("registries[].name", AUDIT), format = "table", query = true },
  { value = query("length(registries)", AUDIT), format = "table", query = true },
  { value = query("summary", AUDIT), format = "table", query = true },
  { value = { { a = "multi\nline", b = " padded " }, { a = "x", c = "only here" } }, format = "table" },
  { value = { { A = 1 }, { a = 2 } }, format = "table" },
  { value = json.array(), format = "table" },
  { value = { { nested = { x = 1 } } }, format = "table" },
  { value = null, format = "table" },
  { value = { { "x", { k = "it's" }, { 'a"b', null, true } } }, format = "table" },
  -- tsv: values only; lists as their length, objects as an empty field
  { value = REGISTRY, format = "tsv" },
  { value = AUDIT.registries, format = "tsv" },
  { value = query("registries[].{n: name, h: health, p: problems, c: cmk, v: vault}", AUDIT), format = "tsv",
    query = true },
  { value = query("registries[].[name, keyAgeDays]", AUDIT), format = "tsv", query = true },
  { value = { true, false, null, 1, 2.5, "x", { 1, { 2 } }, { a = 1 } }, format = "tsv" },
  { value = true, format = "tsv" },
  { value = null, format = "tsv" },
  { value = json.array(), format = "tsv" },
  -- yaml: block style, sorted keys, PyYAML's quoting and folding
  { value = REGISTRY, format = "yaml" },
  { value = AUDIT, format = "yaml" },
  { value = TRICKY, format = "yaml" },
  { value = { [("k"):rep(130)] = 1, ["key: x"] = "v", ["true"] = false, ["1"] = null }, format = "yaml" },
  { value = { 1e16, 2.5, 1e-05, 0.1, 3, -7 }, format = "yaml" },
  { value = { { json.array(), {} }, { { a = { b = { 1 } } } } }, format = "yaml" },
  { value = "plain", format = "yaml" },
  { value = "true", format = "yaml" },
  { value = ("long words "):rep(12), format = "yaml" },
  { value = 2.5, format = "yaml" },
  { value = null, format = "yaml" },
  { value = json.array(), format = "yaml" },
}

describe("azcmk.cli.output", function()
  describe("writes what the Azure CLI writes", function()
    local want
    setup(function() want = oracle.knack(CASES) end)

    for i, c in ipairs(CASES) do
      it(string.format("#%d -o %s%s", i, c.format, c.query and " after a --query" or ""), function()
        assert.is_string(want[i], "knack failed: " .. json.encode(want[i]))
        local text, err = output.render(c.value, c.format, { query = c.query, color = true })
        assert(text, tostring(err))
        assert.equal(want[i], text)
      end)
    end
  end)

  describe("formats", function()
    it("lists az's formats and refuses others naming the list", function()
      assert.same({ "json", "jsonc", "table", "tsv", "yaml", "none" }, output.FORMATS)
      for _, f in ipairs(output.FORMATS) do assert.is_true(output.check(f)) end
      local ok, err = output.check("xml")
      assert.is_nil(ok)
      assert.equal("input", err.kind)
      assert.equal("output", err.param)
      assert.matches("json, jsonc, table, tsv, yaml, none", err.hint)
      assert.is_nil((output.render({}, "xml")))
    end)

    it("writes an empty key as '': (LibYAML's choice; PyYAML writes the complex key ? '')", function()
      assert.equal("'': null\na: 1\n", output.render({ [""] = null, a = 1 }, "yaml"))
    end)

    it("writes nothing for -o none", function()
      assert.equal("", output.render(AUDIT, "none"))
      local fh = assert(io.open("/dev/full", "w"))
      assert.is_true(output.emit(fh, AUDIT, "none"))
      fh:close()
    end)

    it("writes jsonc as plain json when colours are off", function()
      assert.equal(output.render(AUDIT, "json"), output.render(AUDIT, "jsonc", { color = false }))
      assert.matches("\27%[94m", output.render(AUDIT, "jsonc", { color = true }))
    end)

    it("colours only on a terminal, unless switched off", function()
      local env = {}
      local function getenv(k) return env[k] end
      local tty = { [1] = true, [2] = true }
      local function isatty(fd) return tty[fd] end
      assert.is_true(output.color_enabled(getenv, isatty))
      tty[2] = false
      assert.is_false(output.color_enabled(getenv, isatty))
      tty[2] = true
      env.AZURE_CORE_NO_COLOR = "true"
      assert.is_false(output.color_enabled(getenv, isatty))
      env.AZURE_CORE_NO_COLOR = "false"
      assert.is_true(output.color_enabled(getenv, isatty))
      env.NO_COLOR = "1"
      assert.is_false(output.color_enabled(getenv, isatty))
    end)

    it("uses a verb's table shape without a --query, not with one", function()
      local function shape(result)
        local rows = json.array()
        for i, r in ipairs(result.registries) do
          rows[i] = json.object({ Registry = r.name, Health = r.health }, { "Registry", "Health" })
        end
        return rows
      end
      local text = output.render(AUDIT, "table", { table = shape })
      assert.equal("Registry    Health\n----------  --------\nprodreg1    fail\nprodreg2    warn\n"
        .. "devreg      ok\n", text)
      text = output.render(query("summary", AUDIT), "table", { table = shape, query = true })
      assert.matches("^Cmk", text)
      local _, err = output.render(AUDIT, "table", { table = function() return nil, "no rows" end })
      assert.equal("no rows", err)
    end)
  end)

  describe("write", function()
    it("returns an io error when the disk is full (> /dev/full)", function()
      local fh = assert(io.open("/dev/full", "w"))
      local ok, err = output.emit(fh, AUDIT, "json")
      fh:close()
      assert.is_nil(ok)
      assert.equal("io", err.kind)
      assert.equal("OutputWriteFailed", err.code)
      assert.matches("No space left on device", err.message)
      assert.truthy(err.hint)
    end)

    it("reports a failed write or flush, and ignores a reader that went away (EPIPE)", function()
      local function handle(write_err, flush_err)
        return {
          write = function(self) if write_err then return nil, write_err[1], write_err[2] end return self end,
          flush = function(self) if flush_err then return nil, flush_err[1], flush_err[2] end return self end,
        }
      end
      assert.is_true(output.write(handle(), "x"))
      local ok, err = output.write(handle({ "Input/output error", 5 }), "x")
      assert.is_nil(ok)
      assert.matches("Input/output error", err.message)
      assert.is_nil((output.write(handle(nil, { "No space left on device", 28 }), "x")))
      assert.is_true(output.write(handle({ "Broken pipe", 32 }), "x"))
      assert.is_true(output.write(handle(nil, { "Broken pipe", 32 }), "x"))
    end)

    it("writes the whole text to a file", function()
      local path = os.tmpname()
      local fh = assert(io.open(path, "w"))
      assert.is_true(output.emit(fh, AUDIT.registries, "tsv"))
      fh:close()
      local f = assert(io.open(path, "rb"))
      local got = f:read("a")
      f:close()
      os.remove(path)
      assert.equal(output.render(AUDIT.registries, "tsv"), got)
    end)
  end)
end)
