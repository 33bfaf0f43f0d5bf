-- Every examples/*.lua runs against the emulator with `bin/azcmk run` (and again: re-runnable).
local H = require("support.cmk_helper")

describe("examples/", function()
  setup(function()
    H.env()
    H.reset()
  end)

  teardown(function() H.done() end)

  local files = {}
  local p = io.popen("ls examples/*.lua 2>/dev/null")
  for f in p:read("a"):gmatch("[^\n]+") do files[#files + 1] = f end
  p:close()

  it("has one script per section of the article", function()
    assert.truthy(#files >= 9)
  end)

  for _, f in ipairs(files) do
    it(f .. " runs (twice)", function()
      for round = 1, 2 do
        local r = H.cli({ "run", f })
        assert.equal(0, r.code, f .. " round " .. round .. ":\n" .. r.stdout .. "\n" .. r.stderr)
        assert.truthy(#r.stdout > 0)
      end
    end)
  end
end)
