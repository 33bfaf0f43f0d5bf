--- JMESPath errors: the compliance suite's five error types as structured azcmk errors
-- (kind "input", param "query"), raised inside the lexer, parser and interpreter and turned
-- into nil, err by azcmk.jmespath.
local errors = require("azcmk.errors")

local M = {}

-- suite error type -> code and what to do next
local TYPES = {
  syntax = { "JMESPathSyntaxError", "fix the expression at that column (JMESPath syntax: "
    .. "https://jmespath.org/specification.html)" },
  ["invalid-type"] = { "JMESPathInvalidType", "pass the function an argument of the type it takes "
    .. "(type(@) shows what a value is)" },
  ["invalid-value"] = { "JMESPathInvalidValue", "use a slice step other than 0" },
  ["invalid-arity"] = { "JMESPathInvalidArity", "call the function with the number of arguments it takes" },
  ["unknown-function"] = { "JMESPathUnknownFunction", "use one of JMESPath's built-in functions "
    .. "(https://jmespath.org/specification.html#built-in-functions)" },
}

local function is_ours(e) return errors.is_error(e) and e.error_type ~= nil end

--- Raises the structured error of suite type `t` ("syntax", "invalid-type", ...).
function M.raise(t, message, fields)
  local info = assert(TYPES[t], "azcmk.jmespath: unknown error type")
  local f = { code = info[1], hint = info[2], param = "query", error_type = t }
  for k, v in pairs(fields or {}) do f[k] = v end
  error(errors.input(message, f), 0)
end

--- A syntax error at byte offset pos (0-based, as the lexer counts) of expression.
function M.syntax(expression, pos, what)
  M.raise("syntax", string.format("invalid query at column %d of %q: %s", pos + 1, expression, what),
    { expression = expression, position = pos + 1 })
end

--- Calls fn(...); returns its result, or nil, err for the errors raised here (anything else
-- is a programming error and propagates).
function M.catch(fn, ...)
  local ok, r = pcall(fn, ...)
  if ok then return r end
  if is_ours(r) then return nil, r end
  error(r, 0)
end

return M
