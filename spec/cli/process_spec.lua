-- The command line as a user runs it: a real process from the checkout.
local function run(cmd)
  local p = io.popen("./bin/azcmk " .. cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return out:gsub("rc=%d+%s*$", ""), rc
end

describe("azcmk command", function()
  it("prints its version", function()
    local out, rc = run("--version")
    assert.equal(0, rc)
    assert.matches("^azcmk %d+%.%d+%.%d+", out)
  end)

  it("lists the verbs in --help", function()
    local out, rc = run("--help")
    assert.equal(0, rc)
    for _, v in ipairs({ "setup", "show", "rotate", "revoke", "doctor", "emulator" }) do
      assert.truthy(out:find("\n  " .. v, 1, true), v)
    end
  end)

  it("refuses an unknown verb with a next step and a non-zero status", function()
    local out, rc = run("frobnicate")
    assert.equal(2, rc)
    assert.matches("unknown verb 'frobnicate'.*azcmk %-%-help", out)
  end)
end)
