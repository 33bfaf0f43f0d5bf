local core = require "azcmk.core"

describe("core clock", function()
  it("now() is the wall clock, with fractions", function()
    -- bracket it with os.time(): a slow host (valgrind) may tick between the calls
    local before = os.time()
    local t = core.now()
    local after = os.time()
    -- os.time() may read the kernel's coarse clock, a few ms behind: allow 50 ms either way
    assert.is_true(t >= before - 0.05 and t < after + 1.05,
      ("%.3f not in [%d, %d]"):format(t, before, after + 1))
    assert.is_true(t ~= math.floor(t) or core.now() ~= t, "expected sub-second resolution")
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
