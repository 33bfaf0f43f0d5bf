local token_cache = require("azcmk.token_cache")
local base = require("azcmk.credential.base")
local errors = require("azcmk.errors")

local function fake_cred(c, lifetime)
  local cred = { name = "Fake", n = 0, fail = false }
  function cred.cache_key() return "fake" end
  function cred.get_token(self, scope)
    self.n = self.n + 1
    if self.fail then return nil, errors.new("auth", { message = "down" }) end
    return base.token({ token = "t" .. self.n .. scope, expires_on = c.t + (lifetime or 3600) })
  end
  return cred
end

describe("azcmk.token_cache", function()
  local c
  before_each(function() c = { t = 1000 } end)
  local function now() return c.t end

  it("reuses a token until 300 s before expiry", function()
    local cache = token_cache.new({ now = now })
    local cred = fake_cred(c)
    local a = cache:get(cred, "s")
    c.t = c.t + 3000
    assert.equal(a, cache:get(cred, "s"))
    assert.equal(1, cred.n)
    c.t = c.t + 301    -- 299 s left
    local b = cache:get(cred, "s")
    assert.are_not.equal(a.token, b.token)
    assert.equal(2, cred.n)
  end)

  it("keys by scope", function()
    local cache = token_cache.new({ now = now })
    local cred = fake_cred(c)
    cache:get(cred, "a"); cache:get(cred, "b"); cache:get(cred, "a")
    assert.equal(2, cred.n)
  end)

  it("refreshes long-lived tokens at half-life", function()
    local cache = token_cache.new({ now = now })
    local cred = fake_cred(c, 86400)
    cache:get(cred, "s")
    c.t = c.t + 43199
    cache:get(cred, "s")
    assert.equal(1, cred.n)
    c.t = c.t + 2
    cache:get(cred, "s")
    assert.equal(2, cred.n)
  end)

  it("serves the valid token when a refresh fails, and damps retries to 30 s", function()
    local cache = token_cache.new({ now = now })
    local cred = fake_cred(c)
    local a = cache:get(cred, "s")
    c.t = c.t + 3400
    cred.fail = true
    assert.equal(a, cache:get(cred, "s"))
    assert.equal(2, cred.n)
    c.t = c.t + 10
    assert.equal(a, cache:get(cred, "s"))
    assert.equal(2, cred.n)          -- damped
    c.t = c.t + 25
    assert.equal(a, cache:get(cred, "s"))
    assert.equal(3, cred.n)
    c.t = c.t + 200                  -- expired now
    local t, err = cache:get(cred, "s")
    assert.is_nil(t); assert.truthy(err)
  end)

  it("drops a token once after a 401", function()
    local cache = token_cache.new({ now = now })
    local cred = fake_cred(c)
    local a = cache:get(cred, "s")
    assert.is_false(cache:invalidate(cred, "s", nil, "other"))
    assert.is_true(cache:invalidate(cred, "s", nil, a.token))
    assert.is_false(cache:invalidate(cred, "s", nil, a.token))
    local b = cache:get(cred, "s")
    assert.are_not.equal(a.token, b.token)
  end)

  it("runs fetches under the lock hook", function()
    local locked = {}
    local cache = token_cache.new({ now = now, lock = function(key,
      fn) locked[#locked + 1] = key; return fn() end })
    cache:get(fake_cred(c), "s")
    assert.equal(1, #locked)
  end)

  it("a chain fetches its first token once (its key names the provider it selected)", function()
    local cache = token_cache.new({ now = now })
    local inner = fake_cred(c)
    function inner.available() return true end
    local chain = require("azcmk.credential.chain").new({ inner })
    local a = cache:get(chain, "s")
    assert.equal(a, cache:get(chain, "s"))
    assert.equal(1, inner.n)
    assert.is_true(cache:invalidate(chain, "s", nil, a.token))
  end)

  it("token objects never print the token", function()
    local t = base.token({ token = "SECRET", expires_on = 5 })
    assert.falsy(tostring(t):find("SECRET", 1, true))
  end)
end)

describe("azcmk.token_cache with credentials that carry no identity", function()
  local credential = require("azcmk.credential")

  it("never hands one static credential's token to another through a shared cache", function()
    local cache = token_cache.new({})
    local exp = os.time() + 3600
    local a = credential.static({ token = "TOKEN-A", expires_on = exp })
    local b = credential.static({ token = "TOKEN-B", expires_on = exp })
    assert.equal("TOKEN-A", cache:get(a, "https://management.azure.com/.default").token)
    assert.equal("TOKEN-B", cache:get(b, "https://management.azure.com/.default").token)
    assert.are_not.equal(a:cache_key(), b:cache_key())
    assert.equal(a:cache_key(), a:cache_key())
  end)

  it("shares entries only when told to with the same cache_key", function()
    local a = credential.static({ token = "A", expires_on = 5000, cache_key = "gateway" })
    local b = credential.static({ token = "B", expires_on = 5000, cache_key = "gateway" })
    assert.equal(a:cache_key(), b:cache_key())
    assert.has_error(function() credential.static({ token = "x", cache_key = 1 }) end)
  end)
end)
