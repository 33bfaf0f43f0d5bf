-- Ctrl-C and a stdout that cannot be written: one line on stderr and an exit status that says
-- so (130, 1), never a Lua traceback or a silent success.
local H = require("support.cmk_helper")
local E = require("support.emulator")

-- Starts argv, sends SIGINT after `after` seconds; returns { code, stderr }.
local function interrupt(argv, after)
  local err, status = os.tmpname(), os.tmpname()
  os.execute("(" .. H.cli_command(argv) .. " >/dev/null 2>" .. err .. " & p=$!; sleep " .. after
    .. "; kill -INT $p; wait $p; echo $? >" .. status .. ")")
  local function slurp(f)
    local h = assert(io.open(f, "rb"))
    local s = h:read("a")
    h:close()
    os.remove(f)
    return s
  end
  return { code = tonumber(slurp(status):match("%d+")), stderr = slurp(err) }
end

describe("azcmk and signals / write errors", function()
  local s
  setup(function() s = H.start_with_registry() end)
  teardown(function() H.done() end)

  it("Ctrl-C during a request: exit 130, one line, no traceback; the next run works", function()
    E.control("POST", "faults", { rules = { { host = "management.azure.com", path = "/subscriptions",
      method = "GET", delay_ms = 1500, count = 1 } } })
    local r = interrupt({ "show", "-n", s.registry.name }, 0.7)
    E.control("DELETE", "faults")
    assert.equal(130, r.code, r.stderr)
    assert.equal("azcmk: interrupted (Ctrl-C) -- next: run the same command again; it reads what is there "
      .. "and resumes\n", r.stderr)
    r = H.cli({ "show", "-n", s.registry.name, "--query", "status" })
    assert.equal(0, r.code, r.stderr)
  end)

  it("Ctrl-C in a script run by `azcmk run`: exit 130, no traceback", function()
    local script = os.tmpname() .. ".lua"
    local f = assert(io.open(script, "w"))
    f:write('local clock = require("azcmk.clock")\nwhile true do clock.sleep(0.05) end\n')
    f:close()
    local r = interrupt({ "run", script }, 0.5)
    os.remove(script)
    assert.equal(130, r.code, r.stderr)
    assert.is_nil(r.stderr:find("traceback", 1, true), r.stderr)
  end)

  it("a full stdout (/dev/full): exit 1 with a message, for text and for -o json", function()
    for _, extra in ipairs({ {}, { "-o", "json" }, { "-o", "table" } }) do
      local argv = { "show", "-n", s.registry.name }
      for _, x in ipairs(extra) do argv[#argv + 1] = x end
      local r = H.cli(argv, nil, "/dev/full")
      assert.equal(1, r.code, table.concat(argv, " ") .. ": " .. r.stderr)
      assert.matches("^azcmk show: could not write the output: [^\n]*%[OutputWriteFailed%] %-%- next: ",
        r.stderr)
    end
    local r = H.cli({ "audit", "-n", s.registry.name }, nil, "/dev/full")
    assert.equal(1, r.code)
    assert.matches("OutputWriteFailed", r.stderr)
    r = H.cli({ "doctor", "-n", s.registry.name, "-o", "json" }, nil, "/dev/full")
    assert.equal(1, r.code)
    assert.matches("OutputWriteFailed", r.stderr)
  end)
end)
