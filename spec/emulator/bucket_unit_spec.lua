-- emu.bucket: the token-bucket arithmetic of the emulator's throttling (pure Lua, no nginx).
local bucket = require("emu.bucket")

describe("emu.bucket", function()
  it("a missing bucket is full; taking moves full_at forward by cost / rate", function()
    assert.equal(250, bucket.tokens(nil, 100, 250, 25))
    local f = bucket.take(nil, 100, 250, 25, 1)
    assert.equal(100.04, f)
    assert.equal(249, bucket.remaining(f, 100, 250, 25))
  end)

  it("empties after `cap` takes at one instant and says how long until the next token", function()
    local f
    for _ = 1, 200 do f = assert(bucket.take(f, 50, 200, 10, 1)) end
    assert.equal(0, bucket.remaining(f, 50, 200, 10))
    local n, wait = bucket.take(f, 50, 200, 10, 1)
    assert.is_nil(n)
    assert.is_true(math.abs(wait - 0.1) < 1e-9)
    assert.equal(1, bucket.retry_after(wait))
    -- refilled by time: one token after 0.1 s, full (never more) after 20 s
    assert.truthy(bucket.take(f, 50.1, 200, 10, 1))
    assert.equal(200, bucket.remaining(f, 1000, 200, 10))
  end)

  it("weighted costs: a cost above what is left waits for the difference", function()
    local f = assert(bucket.take(nil, 0, 8, 0.8, 6)) -- 2 left
    local n, wait = bucket.take(f, 0, 8, 0.8, 4)
    assert.is_nil(n)
    assert.is_true(math.abs(wait - 2.5) < 1e-9) -- 2 more tokens at 0.8/s
    assert.equal(3, bucket.retry_after(wait))
    assert.truthy(bucket.take(f, 2.5, 8, 0.8, 4))
  end)

  it("Retry-After is at least one second", function()
    assert.equal(1, bucket.retry_after(0.001))
    assert.equal(4, bucket.retry_after(4))
    assert.equal(5, bucket.retry_after(4.2))
  end)
end)
