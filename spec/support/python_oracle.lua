--- The Python implementations the Azure CLI itself runs, as oracles for azcmk's own: the
-- jmespath package behind `az --query` (Debian's python3-jmespath; scripts/deps.sh installs
-- it), run by Debian's /usr/bin/python3 (not whatever python3 comes first on PATH). One
-- python3 process per call.
local sys = require("support.sys")
local json = require("azcmk.json")

local M = {}

-- Runs a Python program with one argument, a file holding `input`; returns its stdout.
local function python(program, input)
  local dir = os.tmpname()
  os.remove(dir)
  assert(sys.sh("mkdir -p " .. sys.q(dir)))
  sys.write(dir .. "/program.py", program)
  sys.write(dir .. "/input.json", input)
  local p = assert(io.popen("/usr/bin/python3 " .. sys.q(dir .. "/program.py") .. " "
    .. sys.q(dir .. "/input.json") .. " 2>" .. sys.q(dir .. "/stderr")))
  local out = p:read("a")
  local ok = p:close()
  local err = sys.read(dir .. "/stderr")
  sys.sh("rm -rf " .. sys.q(dir))
  assert(ok, "python3 failed: " .. tostring(err))
  return out
end

local JMESPATH = [[
import collections, json, sys
import jmespath
from jmespath import exceptions as E
req = json.load(open(sys.argv[1]), object_pairs_hook=collections.OrderedDict)
opts = jmespath.Options(dict_cls=collections.OrderedDict)
out = []
for expr in req["expressions"]:
    try:
        out.append({"result": jmespath.search(expr, req["data"], options=opts)})
    except E.ArityError:
        out.append({"error": "invalid-arity"})
    except E.UnknownFunctionError:
        out.append({"error": "unknown-function"})
    except (E.ParseError, E.EmptyExpressionError):
        out.append({"error": "syntax"})
    except E.JMESPathTypeError:
        out.append({"error": "invalid-type"})
    except ValueError:
        out.append({"error": "invalid-value"})
print(json.dumps(out))
]]

--- Python jmespath's answers for each expression against data: a list of { result = v } or
-- { error = suite error type }, objects with the key order Python gives them.
function M.jmespath(expressions, data)
  local out = python(JMESPATH, json.encode({ expressions = json.array(expressions), data = data }))
  return assert(json.decode(out))
end

return M
