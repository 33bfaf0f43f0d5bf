local core = require "azcmk.core"

describe("core clock", function()
  it("now() is the wall clock, with fractions", function()
    local t = core.now()
    assert.is_true(math.abs(t - os.time()) <= 1)
  end)

  it("now_ms() is monotonic and sleep() waits at least as long as asked", function()
    local a = core.now_ms()
    core.sleep(0.02)
    local b = core.now_ms()
    assert.is_true(b - a >= 20, "slept " .. (b - a) .. " ms")
  end)

  it("sleep(0) returns at once and bad arguments raise", function()
    core.sleep(0)
    assert.has_error(function() core.sleep(-1) end)
    assert.has_error(function() core.sleep("x") end)
    assert.has_error(function() core.sleep(1e9) end)
  end)
end)
