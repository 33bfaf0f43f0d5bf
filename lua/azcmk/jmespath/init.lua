--- azcmk.jmespath: JMESPath (https://jmespath.org/specification.html), the query language of
-- the Azure CLI's --query, over values of the azcmk.json model.
--
--   local jmespath = require("azcmk.jmespath")
--   local q, err = jmespath.compile("registries[?health != 'ok'].{name: name, health: health}")
--   local result, err = q:search(value)          -- or jmespath.search(expression, value)
--
-- compile checks the syntax, the function names and their argument counts, so a command can
-- refuse a bad --query before it does anything. search never returns nil on success: JSON
-- null is json.null. Errors are azcmk structured errors (kind "input", param "query") whose
-- error_type is the compliance suite's name for them: "syntax", "invalid-type",
-- "invalid-value", "invalid-arity" or "unknown-function" (codes JMESPathSyntaxError, ...).
-- Results that JMESPath builds are marked: arrays with json.array_mt, multi-select hashes
-- with their key order (what `-o table` uses for its columns). Input values are never changed.
--
-- Pure Lua, for Lua 5.4 and LuaJIT. Debian and LuaRocks offered no Lua implementation we
-- could use, so this one follows the specification and the reference implementations'
-- Pratt parser; it passes the official compliance suite (make test).
local parser = require("azcmk.jmespath.parser")
local interpreter = require("azcmk.jmespath.interpreter")
local jerr = require("azcmk.jmespath.errors")

local M = {}

local Query = {}
Query.__index = Query

--- Evaluates the query against value; returns the result or nil, err.
function Query:search(value)
  return jerr.catch(interpreter.search, self.tree, value)
end

function Query:__tostring() return "jmespath(" .. self.expression .. ")" end

--- Parses expression once; returns a query object (q:search(value)) or nil, err.
function M.compile(expression)
  if type(expression) ~= "string" then
    error("azcmk.jmespath.compile: expression must be a string, got " .. type(expression), 2)
  end
  local tree, err = jerr.catch(parser.parse, expression)
  if not tree then return nil, err end
  return setmetatable({ expression = expression, tree = tree }, Query)
end

--- compile + search in one call: the result or nil, err.
function M.search(expression, value)
  local q, err = M.compile(expression)
  if not q then return nil, err end
  return q:search(value)
end

M.names = require("azcmk.jmespath.functions").names

return M
