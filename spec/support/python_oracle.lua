--- The Python implementations the Azure CLI itself runs, as oracles for azcmk's own: the
-- jmespath package behind `az --query` and knack's output formatters behind `az -o`
-- (Debian's python3-jmespath, python3-knack, python3-tabulate, python3-yaml and
-- python3-pygments; scripts/deps.sh installs them), run by Debian's /usr/bin/python3 (not
-- whatever python3 comes first on PATH). One python3 process per call.
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

local KNACK = [==[
import collections, json, sys
from knack.output import format_json, format_json_color, format_table, format_tsv, format_yaml
from knack.util import CommandResultItem
FORMATS = {"json": format_json, "jsonc": format_json_color, "table": format_table,
           "tsv": format_tsv, "yaml": format_yaml}
req = json.load(open(sys.argv[1]), object_pairs_hook=collections.OrderedDict)
out = []
for case in req:
    # knack's --query hands an OrderedDict-shaped result on (is_query_active); without a
    # query results are plain dicts, as decoded from the service.
    value = case["value"] if case["query"] else json.loads(json.dumps(case["value"]))
    item = CommandResultItem(value, table_transformer=None, is_query_active=case["query"])
    try:
        out.append(FORMATS[case["format"]](item))
    except Exception as e:
        out.append({"error": str(e)})
print(json.dumps(out))
]==]

--- knack's output for each case { value, format = "json"|"jsonc"|"table"|"tsv"|"yaml",
-- query = bool (is a --query active) }: a list of strings (or { error = message }).
function M.knack(cases)
  local req = json.array()
  for i, c in ipairs(cases) do req[i] = { value = c.value, format = c.format, query = c.query == true } end
  local out = python(KNACK, json.encode(req))
  return assert(json.decode(out))
end

return M
