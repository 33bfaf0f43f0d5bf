-- azcmk.json: the value model shared by --query and -o (null, arrays vs objects, key order),
-- its decoder (keeps [] apart from {}) and its encoders (Python's json module's output).
local json = require("azcmk.json")
local cjson = require("cjson.safe")

describe("azcmk.json", function()
  describe("value model", function()
    it("tells arrays from objects", function()
      assert.is_true(json.is_array({ 1, 2 }))
      assert.is_true(json.is_array(json.array()))
      assert.is_false(json.is_array({}))
      assert.is_false(json.is_array({ 1, 2, x = 3 }))
      assert.is_false(json.is_array({ [2] = "b" }))
      assert.is_true(json.is_object({}))
      assert.is_false(json.is_object("x"))
      assert.equal("array", json.type(json.array()))
      assert.equal("object", json.type(json.object({}, {})))
      assert.equal("null", json.type(nil))
      assert.equal("null", json.type(cjson.null))
      assert.equal("number", json.type(1.5))
    end)

    it("lists keys in their recorded order, else sorted, without functions", function()
      assert.same({ "b", "a" }, json.keys(json.object({ a = 1, b = 2 }, { "b", "a" })))
      assert.same({ "a", "b" }, json.keys({ b = 1, a = 2, f = print, [1] = "x" }))
      assert.same({ "a" }, json.keys(json.object({ a = 1 }, { "gone", "a" })))
    end)

    it("compares values deeply", function()
      assert.is_true(json.equal({ a = { 1, 2.0 } }, { a = { 1.0, 2 } }))
      assert.is_true(json.equal(nil, cjson.null))
      assert.is_false(json.equal(true, 1))
      assert.is_false(json.equal(json.array(), {}))
      assert.is_false(json.equal({ a = 1 }, { a = 1, b = 2 }))
      assert.is_false(json.equal({ 1, 2 }, { 1, 2, 3 }))
    end)
  end)

  describe("decode", function()
    it("keeps [] apart from {} and records key order", function()
      local v = assert(json.decode('{"z": [], "a": {}, "m": [1, {"y": null, "x": true}]}'))
      assert.same({ "z", "a", "m" }, json.keys(v))
      assert.equal("array", json.type(v.z))
      assert.equal("object", json.type(v.a))
      assert.equal(cjson.null, v.m[2].y)
      assert.same({ "y", "x" }, json.keys(v.m[2]))
    end)

    it("reads strings with every escape, surrogate pairs included", function()
      assert.equal('a"\\/\b\f\n\r\té😀', json.decode('"a\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00"'))
    end)

    it("reads numbers as Lua does", function()
      assert.equal(-12.5e3, json.decode("-12.5e3"))
      assert.equal(0, json.decode("0"))
      if math.type then -- luacheck: ignore 143 (Lua 5.4)
        assert.equal("integer", math.type(json.decode("42"))) -- luacheck: ignore 143
        assert.equal("float", math.type(json.decode("42.0"))) -- luacheck: ignore 143
      end
    end)

    it("refuses what is not JSON, saying where", function()
      local bads = { "", "01", "[1,]", "{'a': 1}", '"\\x"', '"a\nb"', "[1] x", "tru", "-", "{\"a\" 1}" }
      for _, bad in ipairs(bads) do
        local v, err = json.decode(bad)
        assert.is_nil(v, bad)
        assert.truthy(tostring(err):find("at byte %d+"), bad)
      end
      assert.is_nil((json.decode(("["):rep(600) .. ("]"):rep(600))))
      assert.is_nil((json.decode(nil)))
    end)
  end)

  describe("encode", function()
    it("writes compact JSON like Python's json.dumps(separators=(',', ':'))", function()
      assert.equal('{"a":[1,2.5,null,true],"b":{},"c":[],"d":"\\u00e9\\n"}',
        json.encode({ a = { 1, 2.5, cjson.null, true }, b = {}, c = json.array(), d = "é\n" }))
      assert.equal('{"b":1,"a":2}', json.encode(json.object({ a = 2, b = 1 }, { "b", "a" })))
      assert.equal('"\\ud83d\\ude00"', json.encode("😀"))
    end)

    it("writes numbers as Python prints them", function()
      local cases = { { 1, "1" }, { 2.5, "2.5" }, { 0.1, "0.1" }, { 1 / 3, "0.3333333333333333" },
        { 1e16, "1e+16" }, { 1e22, "1e+22" }, { 1.5e-7, "1.5e-07" }, { 0.0001, "0.0001" },
        { 0.00001, "1e-05" },
        { -0.5, "-0.5" }, { 123.456, "123.456" }, { 3.0, "3" }, { 2 ^ 53, "9007199254740992" },
        { 12345678901234567, "1.2345678901234568e+16" }, { math.huge, "Infinity" } }
      for _, c in ipairs(cases) do
        -- 12345678901234567 is an integer on Lua 5.4, a float on LuaJIT
        if not (c[1] == 12345678901234567 and math.type) then -- luacheck: ignore 143
          assert.equal(c[2], json.number(c[1]), tostring(c[1]))
        end
      end
    end)

    it("pretty-prints as the Azure CLI does: 2 spaces, sorted keys, UTF-8 kept", function()
      assert.equal('{\n  "a": [\n    1,\n    {}\n  ],\n  "b": "é",\n  "c": []\n}',
        json.pretty(json.object({ c = json.array(), b = "é", a = { 1, {} } }, { "c", "b", "a" })))
      assert.equal("[]", json.pretty(json.array()))
      assert.equal("null", json.pretty(nil))
    end)

    it("refuses a cycle instead of looping", function()
      local t = {}
      t.self = t
      assert.has_error(function() json.encode(t) end)
    end)
  end)
end)
