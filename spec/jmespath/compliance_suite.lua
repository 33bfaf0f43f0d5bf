-- The official JMESPath compliance suite (the jmespath.test project's JSON files), one test
-- per case. Not a *_spec file: `make test` runs it as its own stage
-- (scripts/jmespath-suite.sh installs the files; JMESPATH_SUITE names their directory).
--   JMESPATH_SUITE=DIR lua5.4 /usr/bin/busted --run=default spec/jmespath/compliance_suite.lua
-- A case has a result (the search must return a value equal to it), an error (compile or
-- search must fail with that error type) or bench (compile and search must succeed).
local json = require("azcmk.json")
local jmespath = require("azcmk.jmespath")
local sys = require("support.sys")

local dir = os.getenv("JMESPATH_SUITE")
assert(dir and dir ~= "", "set JMESPATH_SUITE to the directory of the compliance suite's *.json "
  .. "(scripts/jmespath-suite.sh prints it)")

local files = {}
local ls = assert(io.popen("ls '" .. dir .. "'"))
for name in ls:lines() do
  if name:match("%.json$") then files[#files + 1] = name end
end
ls:close()
assert(#files > 0, "no *.json in " .. dir)

local function run(expression, given)
  local q, err = jmespath.compile(expression)
  if not q then return nil, err end
  return q:search(given)
end

for _, name in ipairs(files) do
  local groups = assert(json.decode(assert(sys.read(dir .. "/" .. name))))
  describe(name, function()
    local n = 0
    for _, group in ipairs(groups) do
      for _, case in ipairs(group.cases) do
        n = n + 1
        local label = string.format("#%d %s", n, case.expression)
        it(label, function()
          local r, err = run(case.expression, group.given)
          if case.error ~= nil then
            assert.is_nil(r, "expected a " .. case.error .. " error, got " .. json.encode(r))
            assert.equal(case.error, err.error_type, tostring(err))
          elseif case.result ~= nil then
            assert(r ~= nil, tostring(err))
            assert(json.equal(r, case.result),
              "got " .. json.encode(r) .. ", expected " .. json.encode(case.result))
          else
            assert.is_truthy(case.bench, "a case has result, error or bench")
            assert(r ~= nil, tostring(err))
          end
        end)
      end
    end
  end)
end
