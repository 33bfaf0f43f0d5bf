-- Unit specs of the emulator framework parts that need no nginx: the router and emu.json.
describe("emu.router", function()
  local router
  setup(function()
    package.loaded["emu.router"] = nil
    router = require("emu.router")
    local function h(name) return function() return name end end
    router.add({ kind = "arm", method = "GET", path = "/subscriptions/{sub}/resourcegroups/{rg}", handler = h("rg") })
    router.add({ kind = "arm", method = { "PUT", "DELETE" }, path = "/subscriptions/{sub}/resourcegroups/{rg}",
      handler = h("rg-write") })
    router.add({ kind = "arm", method = "GET", path = "/{*scope}/providers/Microsoft.Authorization/roleAssignments/{n}",
      handler = h("ra") })
    router.add({ kind = "vault", method = "GET", path = "/keys/{name}/{version}", handler = h("key") })
    router.add({ kind = "any", method = "GET", path = "/_emulator/health", handler = h("health") })
    router.add({ kind = "acr", method = "GET", path = "/v2/{*rest}", handler = h("v2") })
    router.add({ kind = "acr", method = "GET", path = "/v2/x/y/z", handler = h("exact") })
  end)
  teardown(function() package.loaded["emu.router"] = nil end)

  it("matches ARM paths case-insensitively and captures parameters as sent", function()
    local r, p = router.match("arm", "GET", "/SUBSCRIPTIONS/abc/ResourceGroups/My-RG")
    assert.equal("rg", r.handler())
    assert.same({ sub = "abc", rg = "My-RG" }, p)
  end)

  it("a trailing {*rest} captures a path as long as an exact route's (exact and greedy kept apart)", function()
    for path, rest in pairs({ ["/v2/_catalog"] = "_catalog", ["/v2/a/b"] = "a/b", ["/v2/a/b/c/d"] = "a/b/c/d" }) do
      local r, p = router.match("acr", "GET", path)
      assert.equal("v2", r.handler())
      assert.equal(rest, p.rest)
    end
    assert.equal("exact", (router.match("acr", "GET", "/v2/x/y/z")).handler())
  end)

  it("405 when the path exists for other methods, 404 otherwise", function()
    local r, why = router.match("arm", "PATCH", "/subscriptions/a/resourcegroups/b")
    assert.is_nil(r)
    assert.equal("method", why)
    r, why = router.match("arm", "GET", "/subscriptions/a/nothing")
    assert.is_nil(r)
    assert.equal("path", why)
  end)

  it("greedy {*scope} captures any number of segments, also none", function()
    local r, p = router.match("arm", "GET", "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v" ..
      "/providers/Microsoft.Authorization/roleAssignments/x")
    assert.equal("ra", r.handler())
    assert.equal("subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/v", p.scope)
    r, p = router.match("arm", "GET", "/providers/Microsoft.Authorization/roleAssignments/x")
    assert.equal("ra", r.handler())
    assert.equal("", p.scope)
  end)

  it("non-ARM kinds are case-sensitive; kind 'any' matches every host kind", function()
    assert.truthy(router.match("vault", "GET", "/keys/k/v1"))
    assert.is_nil(router.match("vault", "GET", "/KEYS/k/v1"))
    assert.is_nil(router.match("arm", "GET", "/keys/k/v1"))
    assert.truthy(router.match("login", "GET", "/_emulator/health"))
  end)
end)

describe("emu.json", function()
  local json = require("emu.json")

  it("keeps empty arrays and objects apart through decode and encode", function()
    local v = json.decode('{"a":[],"b":{},"c":[1,[]],"d":"[]"}')
    assert.equal('[]', json.encode(v.a))
    assert.equal('{}', json.encode(v.b))
    assert.equal('[1,[]]', json.encode(v.c))
    assert.equal('[]', v.d)
    assert.equal('[]', json.encode(json.array({})))
  end)

  it("storage form round-trips empty arrays without the slow path", function()
    local v = { x = json.array({}), y = { json.array({}) }, z = "s/t" }
    local s = json.encode_store(v)
    assert.falsy(s:find("[]", 1, true))
    local back = json.decode(s)
    assert.equal("[]", json.encode(back.x))
    assert.equal("[[]]", json.encode(back.y))
    assert.equal('"s/t"', json.encode(back.z)) -- "/" is not escaped
  end)

  it("decode never raises; encode refuses what JSON cannot hold", function()
    for _, bad in ipairs({ "", "{", "[1,", "nul", "\0", string.rep("[", 100) }) do
      local v, err = json.decode(bad)
      assert.is_nil(v)
      assert.truthy(err)
    end
    assert.has_error(function() json.encode({ f = function() end }) end)
    assert.has_error(function() json.encode(0 / 0) end)
    assert.equal("null", json.encode(json.null))
    assert.equal('"\\u0001\\n\\""', json.encode('\1\n"'))
  end)
end)
