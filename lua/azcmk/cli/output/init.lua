--- azcmk.cli.output: the Azure CLI's output formats, `-o json|jsonc|table|tsv|yaml|none`,
-- for a command's result (after its --query), and writing them so that a failed write is
-- an error the command sees.
--
--   local output = require("azcmk.cli.output")
--   local ok, err = output.check(opts.output)                      -- while parsing flags
--   local ok, err = output.emit(io.stdout, result, opts.output, {
--     query = q ~= nil,          -- a --query shaped the result: table/tsv keep its key order
--     color = output.color_enabled(),                               -- for jsonc
--     table = function(result) ... end })  -- the verb's own table rows (no --query only)
--
-- Formats (what az writes, from knack's formatters):
--   json   indented by 2, keys sorted, non-ASCII kept, a final newline
--   jsonc  json in terminal colours; plain json when colours are off (not a terminal)
--   table  columns from the result's scalar fields (azcmk.cli.output.table)
--   tsv    tab-separated values (azcmk.cli.output.tsv)
--   yaml   block YAML, keys sorted (azcmk.cli.output.yaml)
--   none   nothing
-- Values follow the azcmk.json model (json.null, arrays marked or sequences).
local json = require("azcmk.json")
local errors = require("azcmk.errors")

local M = {}

M.FORMATS = { "json", "jsonc", "table", "tsv", "yaml", "none" }

local KNOWN = {}
for _, f in ipairs(M.FORMATS) do KNOWN[f] = true end

--- true, or nil, err (kind input, param output) for a format az would refuse. extra: the
-- formats a verb writes itself besides these (audit's ndjson and prometheus).
function M.check(format, extra)
  if KNOWN[format] then return true end
  local all = {}
  for i, f in ipairs(M.FORMATS) do all[i] = f end
  for _, f in ipairs(extra or {}) do
    if f == format then return true end
    all[#all + 1] = f
  end
  return nil, errors.input("unknown output format '" .. tostring(format) .. "'",
    { code = "InvalidOutputFormat", param = "output",
      hint = "use -o with one of: " .. table.concat(all, ", ") })
end

local RENDER = {}

RENDER.json = function(value) return json.pretty(value) .. "\n" end

RENDER.jsonc = function(value, opts)
  if not opts.color then return RENDER.json(value) end
  return require("azcmk.cli.output.jsonc").colour(json.pretty(value))
end

RENDER.table = function(value, opts)
  if opts.table and not opts.query then
    local rows, err = opts.table(value)
    if rows == nil then return nil, err end
    value = rows
  end
  return require("azcmk.cli.output.table").render(value, not opts.query and not opts.table)
end

RENDER.tsv = function(value, opts) return require("azcmk.cli.output.tsv").render(value, opts.query) end

RENDER.yaml = function(value)
  local text, err, code = require("azcmk.cli.output.yaml").render(value)
  if not text then
    return nil, errors.input(err, { code = code, param = "output", hint = code == "YamlUnavailable"
      and "install lua-yaml (Debian) or lyaml (LuaRocks), or use -o json" or "use -o json" })
  end
  return text
end

RENDER.none = function() return "" end

--- The text of value in format; opts: query (bool), color (bool, jsonc), table (a function
-- value -> rows | nil, err giving a verb's table shape; not used after a --query).
-- Returns the text or nil, err.
function M.render(value, format, opts)
  local ok, err = M.check(format)
  if not ok then return nil, err end
  if value == nil then value = json.null end
  return RENDER[format](value, opts or {})
end

local EPIPE = 32

--- Writes text to the file handle and flushes it; a write or flush that fails (a full disk,
-- an I/O error) returns nil, err (kind io, code OutputWriteFailed) instead of passing
-- silently. A reader that went away (EPIPE: `azcmk ... | head`) is not an error, as in az.
function M.write(fh, text)
  local ok, msg, code = fh:write(text)
  if ok then ok, msg, code = fh:flush() end
  if ok or code == EPIPE then return true end
  return nil, errors.new("io", { code = "OutputWriteFailed",
    message = "could not write the output: " .. tostring(msg),
    hint = "the output is incomplete; free space on the target or write it elsewhere, then run the "
      .. "command again" })
end

--- render + write: true or nil, err.
function M.emit(fh, value, format, opts)
  local text, err = M.render(value, format, opts)
  if not text then return nil, err end
  if text == "" then return true end
  return M.write(fh, text)
end

--- Does file descriptor fd (1 stdout, 2 stderr) refer to a terminal?
function M.isatty(fd)
  local ok, how, code = os.execute("test -t " .. fd)
  if type(ok) == "number" then return ok == 0 end -- LuaJIT
  return ok == true and how == "exit" and code == 0
end

--- Whether -o jsonc should colour, as az decides: stdout and stderr are terminals and colour
-- is not switched off (AZURE_CORE_NO_COLOR, az's [core] no_color, or NO_COLOR set).
-- getenv and tty are for tests (default os.getenv and a `test -t` on fds 1 and 2).
function M.color_enabled(getenv, tty)
  getenv, tty = getenv or os.getenv, tty or M.isatty
  local off = getenv("AZURE_CORE_NO_COLOR")
  if off and off ~= "" and off ~= "0" and off:lower() ~= "false" then return false end
  if (getenv("NO_COLOR") or "") ~= "" then return false end
  return tty(1) and tty(2)
end

return M
