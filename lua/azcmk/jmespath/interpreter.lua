--- The JMESPath interpreter: evaluates a tree from azcmk.jmespath.parser against a value of
-- the azcmk.json model. Missing fields and type mismatches give null; only functions and a
-- zero slice step raise (azcmk.jmespath.errors).
local json = require("azcmk.json")
local jerr = require("azcmk.jmespath.errors")

local M = {}

local null = json.null
local type = type
local is_array, array, equal = json.is_array, json.array, json.equal

--- JMESPath truthiness: false, null, "", [] and {} are false; everything else is true.
local function truthy(v)
  if v == nil or v == null or v == false or v == "" then return false end
  if type(v) == "table" then return next(v) ~= nil end
  return true
end
M.truthy = truthy

-- Ordering comparisons: numbers with numbers, strings with strings (by code point, as the
-- Python implementation the Azure CLI uses does); anything else is null.
local ORDER = {
  lt = function(a, b) return a < b end, lte = function(a, b) return a <= b end,
  gt = function(a, b) return a > b end, gte = function(a, b) return a >= b end,
}

local visit = {}

local function eval(node, value)
  return visit[node.type](node, value)
end
M.eval = eval

visit.identity = function(_, value) return value end
visit.current = visit.identity
visit.literal = function(node) return node.value end

-- (an array has no string keys, so value[name] is nil there without asking is_array)
visit.field = function(node, value)
  if type(value) ~= "table" then return null end
  local v = value[node.name]
  if v == nil or type(v) == "function" then return null end
  return v
end

visit.subexpression = function(node, value)
  for _, child in ipairs(node.children) do
    value = eval(child, value)
    if value == null then return null end
  end
  return value
end
visit.index_expression = visit.subexpression

visit.index = function(node, value)
  if not is_array(value) then return null end
  local i = node.index
  if i < 0 then i = #value + i end
  local v = value[i + 1]
  if v == nil then return null end
  return v
end

-- Python's slice rules (start/stop clamped to the array, negative counts from the end).
local function bound(i, n, step)
  if i < 0 then
    i = i + n
    if i < 0 then return step < 0 and -1 or 0 end
    return i
  end
  if i >= n then return step < 0 and n - 1 or n end
  return i
end

visit.slice = function(node, value)
  if not is_array(value) then return null end
  local step = node.step or 1
  if step == 0 then jerr.raise("invalid-value", "a slice step cannot be 0") end
  local n = #value
  local start = node.start and bound(node.start, n, step) or (step < 0 and n - 1 or 0)
  local stop = node.stop and bound(node.stop, n, step) or (step < 0 and -1 or n)
  local out, k = array(), 0
  local i = start
  while (step > 0 and i < stop) or (step < 0 and i > stop) do
    k = k + 1
    out[k] = value[i + 1]
    i = i + step
  end
  return out
end

-- Collects right(x) for every x of list (that passes condition, if any) whose result is
-- not null. (The visitors are looked up once here, not per element: this is the hot loop.)
local function project(list, right, condition)
  local out, k = array(), 0
  local f, c = visit[right.type], condition and visit[condition.type]
  for i = 1, #list do
    local x = list[i]
    if not c or truthy(c(condition, x)) then
      local r = f(right, x)
      if r ~= null then k = k + 1 out[k] = r end
    end
  end
  return out
end

visit.projection = function(node, value)
  local base = eval(node.left, value)
  if not is_array(base) then return null end
  return project(base, node.right)
end

visit.value_projection = function(node, value)
  local base = eval(node.left, value)
  if type(base) ~= "table" or is_array(base) then return null end
  local vals = {}
  for i, k in ipairs(json.keys(base)) do vals[i] = base[k] end
  return project(vals, node.right)
end

visit.filter_projection = function(node, value)
  local base = eval(node.left, value)
  if not is_array(base) then return null end
  return project(base, node.right, node.condition)
end

visit.flatten = function(node, value)
  local base = eval(node.child, value)
  if not is_array(base) then return null end
  local out, k = array(), 0
  for i = 1, #base do
    local x = base[i]
    if is_array(x) then
      for j = 1, #x do k = k + 1 out[k] = x[j] end
    else
      k = k + 1
      out[k] = x
    end
  end
  return out
end

visit.pipe = function(node, value) return eval(node.right, eval(node.left, value)) end

visit["or"] = function(node, value)
  local l = eval(node.left, value)
  if truthy(l) then return l end
  return eval(node.right, value)
end

visit["and"] = function(node, value)
  local l = eval(node.left, value)
  if not truthy(l) then return l end
  return eval(node.right, value)
end

visit["not"] = function(node, value) return not truthy(eval(node.child, value)) end

visit.comparator = function(node, value)
  local a, b = eval(node.left, value), eval(node.right, value)
  local op = node.op
  if op == "eq" then return equal(a, b) end
  if op == "ne" then return not equal(a, b) end
  local ta = type(a)
  if ta ~= type(b) or (ta ~= "number" and ta ~= "string") then return null end
  return ORDER[op](a, b)
end

visit.multi_select_list = function(node, value)
  if value == null then return null end
  local out = array()
  for i, child in ipairs(node.children) do out[i] = eval(child, value) end
  return out
end

visit.multi_select_hash = function(node, value)
  if value == null then return null end
  local out = {}
  for i, child in ipairs(node.children) do out[node.keys[i]] = eval(child, value) end
  return json.object(out, node.keys)
end

-- &expr: a reference the functions evaluate later (sort_by, map, ...).
visit.expref = function(node) return { expref = node.child } end

visit["function"] = function(node, value)
  local args = {}
  for i, a in ipairs(node.args) do args[i] = eval(a, value) end
  return node.fn(args, eval)
end

--- Evaluates tree against value; null comes back as json.null, never nil.
function M.search(tree, value)
  if value == nil then value = null end
  local r = eval(tree, value)
  if r == nil then return null end
  return r
end

return M
