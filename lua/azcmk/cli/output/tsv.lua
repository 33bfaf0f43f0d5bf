--- `-o tsv` as the Azure CLI writes it (knack's _TsvOutput): values only, one line per
-- element of a list (one line for anything else), tab-separated.
--  * An object's line holds its field values: sorted by field name, or in the order a --query
--    named them; a nested list is written as its length, a nested object as an empty field.
--  * A list's line holds its elements the same way.
--  * Scalars are Python's str(): a nested true is True, null is None; a line that is a bare
--    boolean is written true/false.
local json = require("azcmk.json")

local M = {}

local null = json.null

local function scalar(v)
  if v == nil or v == null then return "None" end
  if v == true then return "True" elseif v == false then return "False" end
  if type(v) == "number" then
    if v ~= v then return "nan" end
    if v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
    return json.number(v)
  end
  return v
end

local function field(v)
  local kind = json.type(v)
  if kind == "array" then return tostring(#v) end
  if kind == "object" then return "" end
  return scalar(v)
end

local function line(item, ordered)
  local kind = json.type(item)
  if kind == "boolean" then return item and "true" or "false" end
  if kind ~= "array" and kind ~= "object" then return scalar(item) end
  local fields = {}
  if kind == "array" then
    for i = 1, #item do fields[i] = field(item[i]) end
  else
    local keys = json.keys(item)
    if not ordered then table.sort(keys) end
    for i, k in ipairs(keys) do fields[i] = field(item[k]) end
  end
  return table.concat(fields, "\t")
end

--- The tsv text for value; ordered: objects that record a key order (what a --query
-- built) keep it, as knack keeps an OrderedDict's.
function M.render(value, ordered)
  if value == nil then value = null end
  local items = json.is_array(value) and value or { value }
  local out = {}
  for i = 1, #items do out[i] = line(items[i], ordered) .. "\n" end
  return table.concat(out)
end

return M
