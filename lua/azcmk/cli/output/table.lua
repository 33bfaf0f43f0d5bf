--- `-o table` in the Azure CLI's shape (knack's _TableOutput through tabulate's "simple"
-- format): a header row, a row of dashes, one line per row, columns two spaces apart.
--  * A list gives one row per element, anything else one row.
--  * An object's row has a column per field holding a scalar (not null, not a list or an
--    object; not id, type or etag), headed by the field name with its first letter upper-case.
--    Without a --query the columns are sorted by name; after one they keep the query's order.
--  * A list's row has columns Column1, Column2, ...; a scalar's row the column Result.
--  * Columns are the union of all rows' columns, first seen first; a row without one has an
--    empty cell. A column is as wide as its widest cell, and at least its header plus two.
--  * Cells are Python's str() of the value (True, False, 2.5, nested values as Python prints
--    them), trimmed, left-aligned; lines end without trailing blanks. Cells with line breaks
--    span several lines.
local json = require("azcmk.json")

local M = {}

local type, concat, rep = type, table.concat, string.rep
local null = json.null

local SKIP = { id = true, type = true, etag = true }

-- Python's repr() of a string: single quotes unless it holds ' and no ".
local function py_str_repr(s)
  local q = (s:find("'", 1, true) and not s:find('"', 1, true)) and '"' or "'"
  s = s:gsub("[%c\\" .. q .. "]", function(c)
    if c == "\\" or c == q then return "\\" .. c end
    local named = ({ ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" })[c]
    return named or string.format("\\x%02x", c:byte())
  end)
  return q .. s .. q
end

local function number(n)
  if n ~= n then return "nan" end
  if n == math.huge then return "inf" elseif n == -math.huge then return "-inf" end
  return json.number(n)
end

-- Python's repr() of a nested value (how tabulate shows a list or dict in a cell).
local function py_repr(v)
  local t = type(v)
  if v == nil or v == null then return "None" end
  if t == "boolean" then return v and "True" or "False" end
  if t == "number" then return number(v) end
  if t == "string" then return py_str_repr(v) end
  local parts = {}
  if json.is_array(v) then
    for i = 1, #v do parts[i] = py_repr(v[i]) end
    return "[" .. concat(parts, ", ") .. "]"
  end
  for i, k in ipairs(json.keys(v)) do parts[i] = py_str_repr(k) .. ": " .. py_repr(v[k]) end
  return "{" .. concat(parts, ", ") .. "}"
end

-- Python's str() of a cell value; nil for an empty cell.
local function cell(v)
  if v == nil or v == null then return nil end
  if type(v) == "string" then return v end
  return py_repr(v)
end

local function capitalize(k) return (k:gsub("^%l", string.upper)) end

-- One row: a list of { header, value } in column order.
local function row_of(item, sort_keys)
  local cols = {}
  local kind = json.type(item)
  if kind == "object" then
    local keys = json.keys(item)
    if sort_keys then table.sort(keys) end
    for _, k in ipairs(keys) do
      local v = item[k]
      if not SKIP[k] and v ~= null and type(v) ~= "table" then cols[#cols + 1] = { capitalize(k), v } end
    end
  elseif kind == "array" then
    for i = 1, #item do cols[i] = { "Column" .. i, item[i] } end
  else
    cols[1] = { "Result", item }
  end
  return cols
end

-- Code points in a UTF-8 string (tabulate measures with len()).
local function width(s)
  local n = 0
  for i = 1, #s do
    local b = s:byte(i)
    if b < 0x80 or b >= 0xC0 then n = n + 1 end
  end
  return n
end

local function trim(s) return (s:gsub("^[%s]+", ""):gsub("[%s]+$", "")) end

local function lines_of(s)   -- Python's str.splitlines() for \n, \r\n and \r
  local out = {}
  for line in (s:gsub("\r\n?", "\n") .. "\n"):gmatch("(.-)\n") do out[#out + 1] = line end
  if s == "" or s:find("[\r\n]$") then out[#out] = nil end
  return out
end

--- The table text (with its final newline) for value; sort_keys: order object fields by name
-- (az does without a --query).
function M.render(value, sort_keys)
  if value == nil then value = null end
  local items = json.is_array(value) and value or { value }
  -- columns, first seen first, and each row's cells by header
  local headers, seen, rows = {}, {}, {}
  for i, item in ipairs(items) do
    local cells = {}
    for _, c in ipairs(row_of(item, sort_keys)) do
      if not seen[c[1]] then seen[c[1]] = true headers[#headers + 1] = c[1] end
      cells[c[1]] = cell(c[2])
    end
    rows[i] = cells
  end
  if #headers == 0 then return "\n" end
  -- tabulate looks for line breaks before it trims the cells
  local multiline = false
  for _, cells in ipairs(rows) do
    for h, s in pairs(cells) do
      if s:find("[\r\n]") then multiline = true end
      cells[h] = trim(s)
    end
  end
  -- column widths: the widest cell (line), at least the header + 2
  local widths = {}
  for j, h in ipairs(headers) do
    local w = width(h) + 2
    for _, cells in ipairs(rows) do
      for line in ((cells[h] or "") .. "\n"):gmatch("([^\r\n]*)[\r\n]") do
        if width(line) > w then w = width(line) end
      end
    end
    widths[j] = w
  end
  local function pad(s, w) return s .. rep(" ", w - width(s)) end
  local out = {}
  local function line(cells) out[#out + 1] = (concat(cells, "  "):gsub("%s+$", "")) end
  local head, dashes = {}, {}
  for j, h in ipairs(headers) do
    head[j] = pad(h, widths[j])
    dashes[j] = rep("-", widths[j])
  end
  line(head)
  line(dashes)
  for _, cells in ipairs(rows) do
    if not multiline then
      local padded = {}
      for j, h in ipairs(headers) do padded[j] = pad(cells[h] or "", widths[j]) end
      line(padded)
    else
      -- each cell split into its lines; short cells filled with blank lines
      local split, n = {}, 0
      for j, h in ipairs(headers) do
        split[j] = lines_of(cells[h] or "")
        if #split[j] > n then n = #split[j] end
      end
      for k = 1, n do
        local padded = {}
        for j = 1, #headers do padded[j] = pad(split[j][k] or "", widths[j]) end
        line(padded)
      end
    end
  end
  return concat(out, "\n") .. "\n"
end

return M
