-- Every shell command block of README.md runs as written against the emulator, or is marked
-- on the line before it as skipped, with the reason: <!-- readme-spec: skip: REASON -->.
-- One substitution: `eval "$(bin/azcmk emulator start)"` becomes `emulator env`, so the
-- block runs against this run's emulator instead of starting another one.
local H = require("support.cmk_helper")

--- The ```sh blocks of a Markdown text: { line, code, skip = reason|nil }.
local function blocks(text)
  local out, lines = {}, {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local i = 1
  while i <= #lines do
    if lines[i]:match("^```sh%s*$") then
      local b = { line = i, skip = (lines[i - 1] or ""):match("^<!%-%- readme%-spec: skip: (.-) %-%->$") }
      local code = {}
      i = i + 1
      while lines[i] and not lines[i]:match("^```") do code[#code + 1] = lines[i]; i = i + 1 end
      b.code = table.concat(code, "\n") .. "\n"
      out[#out + 1] = b
    end
    i = i + 1
  end
  return out
end

local function readme()
  local f = assert(io.open("README.md", "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("README.md", function()
  setup(function() H.start() end)
  teardown(function() H.done() end)

  it("finds its blocks and their skip marks", function()
    local b = blocks("x\n<!-- readme-spec: skip: why -->\n```sh\na\nb\n```\n```sh\nc\n```\n```lua\nd\n```\n")
    assert.equal(2, #b)
    assert.same({ line = 3, skip = "why", code = "a\nb\n" }, b[1])
    assert.same({ line = 7, code = "c\n" }, b[2])
  end)

  local all = blocks(readme())

  it("has shell blocks, and every skipped one says why", function()
    assert.truthy(#all >= 3)
    local run = 0
    for _, b in ipairs(all) do
      if b.skip then assert.truthy(#b.skip > 10, "line " .. b.line) else run = run + 1 end
    end
    assert.truthy(run >= 1)
  end)

  for _, b in ipairs(all) do
    if b.skip then
      pending("README.md:" .. b.line .. " skipped: " .. b.skip)
    else
      it("README.md:" .. b.line .. " runs as written", function()
        local code = b.code:gsub('eval "%$%(bin/azcmk emulator start%)"', 'eval "$(bin/azcmk emulator env)"')
        local script = os.tmpname()
        local f = assert(io.open(script, "w"))
        f:write("set -eu\n", code)
        f:close()
        local out = os.tmpname()
        local ok = os.execute(H.cli_env() .. " bash " .. script .. " >" .. out .. " 2>&1")
        local h = assert(io.open(out, "rb"))
        local log = h:read("a")
        h:close()
        os.remove(script)
        os.remove(out)
        assert.is_true(ok == true or ok == 0, "README.md:" .. b.line .. " failed:\n" .. log)
      end)
    end
  end
end)
