--- JMESPath's built-in functions, with their signatures. Each signature lists, per argument,
-- the types it accepts ("any", a JSON type, "expref", or "array-number"/"array-string" for
-- arrays of one element type); `variadic` repeats the last one. lookup() checks the name and
-- the number of arguments (at parse time), call() the types, as the reference
-- implementation does (invalid-arity, invalid-type).
local json = require("azcmk.json")
local jerr = require("azcmk.jmespath.errors")

local M = {}

local null, array = json.null, json.array
local jtype = json.type
local type, floor, concat, sort = type, math.floor, table.concat, table.sort
local byte, sub = string.byte, string.sub

local function is_expref(v) return type(v) == "table" and v.expref ~= nil end

local function type_of(v)
  if is_expref(v) then return "expref" end
  return jtype(v)
end

-- Code points of a UTF-8 string: bytes that do not continue a sequence.
local function utf8_length(s)
  local n = 0
  for i = 1, #s do
    local b = byte(s, i)
    if b < 0x80 or b >= 0xC0 then n = n + 1 end
  end
  return n
end

local function utf8_reverse(s)
  local chars = {}
  for ch in s:gmatch("[%z\1-\127\194-\244][\128-\191]*") do chars[#chars + 1] = ch end
  local out = {}
  for i = #chars, 1, -1 do out[#out + 1] = chars[i] end
  return concat(out)
end

local function type_error(name, got, want)
  jerr.raise("invalid-type", string.format("%s() expected %s, got %s", name, want, got))
end

-- Does value v fit the accepted type t?
local function fits(v, t)
  if t == "any" then return true end
  local vt = type_of(v)
  local base, sub_t = t:match("^(%a+)%-(%a+)$")
  if not base then return vt == t end
  if vt ~= "array" then return false end
  for i = 1, #v do
    if jtype(v[i]) ~= sub_t then return false end
  end
  return true
end

local function check_types(name, sig, args)
  for i, v in ipairs(args) do
    local accepted = sig[i] or sig[#sig]
    local ok = false
    for _, t in ipairs(accepted) do
      if fits(v, t) then ok = true break end
    end
    if not ok then
      type_error(name, type_of(v) == "array" and "an array with other element types" or type_of(v),
        table.concat(accepted, " or "))
    end
  end
end

-- Evaluates expref e on x and checks that the result is one of the allowed types.
local function key_of(name, eval, e, x, allowed)
  local k = eval(e.expref, x)
  local t = jtype(k)
  if not allowed[t] then type_error(name .. "'s expression", t, "number or string") end
  return k, t
end

local NUM_OR_STR = { number = true, string = true }

-- The element of list with the greatest (better = gt) or least key.
local function extreme_by(name, list, eval, e, better)
  if list[1] == nil then return null end
  local best = list[1]
  local best_key, key_type = key_of(name, eval, e, best, NUM_OR_STR)
  for i = 2, #list do
    local k, t = key_of(name, eval, e, list[i], NUM_OR_STR)
    if t ~= key_type then type_error(name .. "'s expression", t, key_type) end
    if better(k, best_key) then best, best_key = list[i], k end
  end
  return best
end

-- Stable sort of list by keys (Lua's table.sort is not stable; JMESPath's sort_by is).
local function stable_sort(list, keys)
  local idx = {}
  for i = 1, #list do idx[i] = i end
  sort(idx, function(a, b)
    local ka, kb = keys[a], keys[b]
    if ka ~= kb then return ka < kb end
    return a < b
  end)
  local out = array()
  for i, j in ipairs(idx) do out[i] = list[j] end
  return out
end

-- A decimal number in s (surrounding blanks and a sign allowed, as Python's int() and
-- float() read it), else null. No hexadecimal, inf or nan: JSON has none of them.
local function to_number(s)
  local sign, body = s:match("^%s*([-+]?)(.-)%s*$")
  local mant = body:match("^(.-)[eE][-+]?%d+$") or body
  if not (mant:find("^%d+%.?%d*$") or mant:find("^%.%d+$")) then return null end
  local n = tonumber(body)
  if not n then return null end
  return sign == "-" and -n or n
end

local F = {}

F.abs = { { { "number" } }, function(a) return math.abs(a[1]) end }
F.avg = { { { "array-number" } }, function(a)
  local list = a[1]
  if list[1] == nil then return null end
  local s = 0
  for i = 1, #list do s = s + list[i] end
  return s / #list
end }
F.ceil = { { { "number" } }, function(a) return math.ceil(a[1]) end }
F.floor = { { { "number" } }, function(a) return floor(a[1]) end }
F.contains = { { { "array", "string" }, { "any" } }, function(a)
  local subject, search = a[1], a[2]
  if type(subject) == "string" then
    return type(search) == "string" and subject:find(search, 1, true) ~= nil
  end
  local equal = json.equal
  for i = 1, #subject do
    if equal(subject[i], search) then return true end
  end
  return false
end }
F.ends_with = { { { "string" }, { "string" } }, function(a)
  local s, suffix = a[1], a[2]
  return suffix == "" or sub(s, -#suffix) == suffix
end }
F.starts_with = { { { "string" }, { "string" } }, function(a)
  return sub(a[1], 1, #a[2]) == a[2]
end }
F.join = { { { "string" }, { "array-string" } }, function(a) return concat(a[2], a[1]) end }
F.keys = { { { "object" } }, function(a) return array(json.keys(a[1])) end }
F.values = { { { "object" } }, function(a)
  local out = array()
  for i, k in ipairs(json.keys(a[1])) do out[i] = a[1][k] end
  return out
end }
F.length = { { { "string", "array", "object" } }, function(a)
  local v = a[1]
  if type(v) == "string" then return utf8_length(v) end
  if jtype(v) == "array" then return #v end
  return #json.keys(v)
end }
F.map = { { { "expref" }, { "array" } }, function(a, eval)
  local out = array()
  for i, x in ipairs(a[2]) do out[i] = eval(a[1].expref, x) end
  return out
end }
F.max = { { { "array-number", "array-string" } }, function(a)
  local list, best = a[1], a[1][1]
  if best == nil then return null end
  for i = 2, #list do if list[i] > best then best = list[i] end end
  return best
end }
F.min = { { { "array-number", "array-string" } }, function(a)
  local list, best = a[1], a[1][1]
  if best == nil then return null end
  for i = 2, #list do if list[i] < best then best = list[i] end end
  return best
end }
F.max_by = { { { "array" }, { "expref" } }, function(a, eval)
  return extreme_by("max_by", a[1], eval, a[2], function(x, y) return x > y end)
end }
F.min_by = { { { "array" }, { "expref" } }, function(a, eval)
  return extreme_by("min_by", a[1], eval, a[2], function(x, y) return x < y end)
end }
F.merge = { { { "object" } }, function(a)
  local out, keys = {}, {}
  for _, obj in ipairs(a) do
    for _, k in ipairs(json.keys(obj)) do
      if out[k] == nil then keys[#keys + 1] = k end
      out[k] = obj[k]
    end
  end
  return json.object(out, keys)
end, variadic = true }
F.not_null = { { { "any" } }, function(a, _, n)
  for i = 1, n do
    if a[i] ~= null and a[i] ~= nil then return a[i] end
  end
  return null
end, variadic = true }
F.reverse = { { { "string", "array" } }, function(a)
  local v = a[1]
  if type(v) == "string" then return utf8_reverse(v) end
  local out, n = array(), #v
  for i = 1, n do out[i] = v[n + 1 - i] end
  return out
end }
F.sort = { { { "array-number", "array-string" } }, function(a)
  return stable_sort(a[1], a[1])
end }
F.sort_by = { { { "array" }, { "expref" } }, function(a, eval)
  local list, keys, key_type = a[1], {}, nil
  for i = 1, #list do
    local k, t = key_of("sort_by", eval, a[2], list[i], NUM_OR_STR)
    key_type = key_type or t
    if t ~= key_type then type_error("sort_by's expression", t, key_type) end
    keys[i] = k
  end
  return stable_sort(list, keys)
end }
F.sum = { { { "array-number" } }, function(a)
  local s = 0
  for i = 1, #a[1] do s = s + a[1][i] end
  return s
end }
F.to_array = { { { "any" } }, function(a)
  if jtype(a[1]) == "array" then return a[1] end
  return array({ a[1] })
end }
F.to_string = { { { "any" } }, function(a)
  if type(a[1]) == "string" then return a[1] end
  return json.encode(a[1])
end }
F.to_number = { { { "any" } }, function(a)
  local v = a[1]
  if type(v) == "number" then return v end
  if type(v) == "string" then return to_number(v) end
  return null
end }
F.type = { { { "any" } }, function(a) return jtype(a[1]) end }

--- The callable for function `name` with n arguments: fn(args, eval) -> value. Raises
-- unknown-function or invalid-arity.
function M.lookup(name, n)
  local f = F[name]
  if not f then
    jerr.raise("unknown-function", "unknown function " .. name .. "()", { ["function"] = name })
  end
  local sig, impl = f[1], f[2]
  if (f.variadic and n < #sig) or (not f.variadic and n ~= #sig) then
    jerr.raise("invalid-arity", string.format("%s() takes %s%d argument%s, got %d", name,
      f.variadic and "at least " or "", #sig, #sig == 1 and "" or "s", n), { ["function"] = name })
  end
  return function(args, eval)
    check_types(name, sig, args)
    local r = impl(args, eval, n)
    if r == nil then return null end
    return r
  end
end

--- The names of the built-in functions, sorted.
function M.names()
  local out = {}
  for k in pairs(F) do out[#out + 1] = k end
  sort(out)
  return out
end

return M
