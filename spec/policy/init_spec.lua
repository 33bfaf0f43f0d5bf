-- azcmk.policy: chaining policies in front of a transport, and adding your own to a pipeline.
local policy = require("azcmk.policy")
local pipeline = require("azcmk.pipeline")
local static = require("azcmk.credential.static")
local stub = require("support.stub_transport")

-- a policy that notes its name on the way in and out
local function noting(name, into)
  return { send = function(_, req, next)
    into[#into + 1] = "> " .. name
    local res, err = next:send(req)
    into[#into + 1] = "< " .. name
    return res, err
  end }
end

describe("azcmk.policy", function()
  it("runs policies outermost first, then the transport, and answers back through them", function()
    local seen = {}
    local t = stub.sequence({ { status = 204 } })
    local c = policy.chain({ noting("a", seen), noting("b", seen) }, t)
    local res = c:send({ method = "GET", url = "https://h/x", headers = {} })
    assert.equal(204, res.status)
    assert.same({ "> a", "> b", "< b", "< a" }, seen)
    assert.equal(1, #t.calls)
  end)

  it("lets a policy answer without the transport", function()
    local t = stub.sequence({ { status = 200 } })
    local c = policy.chain({ { send = function() return nil, "refused" end } }, t)
    local res, err = c:send({ method = "GET", url = "https://h/x", headers = {} })
    assert.is_nil(res)
    assert.equal("refused", err)
    assert.equal(0, #t.calls)
  end)

  it("refuses what is not a policy or a transport", function()
    assert.has_error(function() policy.chain({ {} }, stub.sequence({ { status = 200 } })) end)
    assert.has_error(function() policy.chain({}, {}) end)
  end)

  describe("a user's policies in a pipeline", function()
    local function mk(t, extra)
      local c = stub.clock()
      local o = { transport = t, credential = static.new({ token = "T", expires_on = os.time() + 3600 }),
        cloud = "AzureCloud", log = "off", now = c.now, sleep = c.sleep,
        retry = { random = function() return 0 end } }
      for k, v in pairs(extra or {}) do o[k] = v end
      return assert(pipeline.new(o))
    end

    it("per_call policies see each call once with its result; per_retry ones every try", function()
      local per_call, per_retry = {}, {}
      local t = stub.sequence({ { status = 503 }, { status = 200, body = '{"ok":true}',
        headers = { ["content-type"] = "application/json" } } })
      local p = mk(t, {
        per_call = { { send = function(_, req, next)
          local res, err = next:send(req)
          per_call[#per_call + 1] = { url = req.url, json = res and res.json, err = err }
          return res, err
        end } },
        per_retry = { { send = function(_, req, next)
          req.headers["X-Try"] = tostring(req.attempt)
          local res, err = next:send(req)
          per_retry[#per_retry + 1] = res.status
          return res, err
        end } },
      })
      assert(p:arm("GET", "/x", { api_version = "1" }))
      assert.equal(1, #per_call)
      assert.same({ ok = true }, per_call[1].json)
      assert.same({ 503, 200 }, per_retry)
      assert.equal("1", t.calls[1].headers["X-Try"])
      assert.equal("2", t.calls[2].headers["X-Try"])
      -- the token is added after the per-retry policies, so they never see it
      assert.truthy(t.calls[2].headers.Authorization)
    end)

    it("p:with adds policies to a pipeline that shares the original's token cache", function()
      local t = stub.sequence({ { status = 200 } })
      local p = mk(t)
      local names = {}
      local q = p:with({ per_call = { { send = function(_, req, next)
        names[#names + 1] = req.method
        return next:send(req)
      end } } })
      assert(q:arm("DELETE", "/x", { api_version = "1" }))
      assert(p:arm("GET", "/x", { api_version = "1" }))
      assert.same({ "DELETE" }, names)
      assert.equal(p.tokens, q.tokens)
      assert.equal(p.challenges, q.challenges)
      assert.equal(1, p.tokens.fetches)
    end)

    it("raises on per_call that is not a list", function()
      assert.has_error(function() mk(stub.sequence({ { status = 200 } }), { per_call = "x" }) end)
    end)
  end)
end)
