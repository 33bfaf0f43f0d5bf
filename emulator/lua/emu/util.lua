--- emu.util: small helpers shared by the services.
local M = {}

--- Random RFC 4122 v4 UUID (math.random, seeded per worker: ids, not secrets).
local random, format = math.random, string.format
function M.uuid()
  return format("%08x-%04x-4%03x-%04x-%06x%06x", random(0, 0xffffffff), random(0, 0xffff), random(0, 0xfff),
    random(0x8000, 0xbfff), random(0, 0xffffff), random(0, 0xffffff))
end

--- 32 lower-case hex characters (Key Vault key versions and similar).
function M.hex32()
  return (M.uuid():gsub("-", ""))
end

function M.is_guid(s)
  return type(s) == "string" and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$")
    ~= nil
end

function M.lower(s) return s and s:lower() end

--- true when id equals scope or lies under it (case-insensitive, on a segment boundary).
function M.under(id, scope)
  id, scope = id:lower():gsub("/+$", ""), scope:lower():gsub("/+$", "")
  if scope == "" then return true end
  return id == scope or id:sub(1, #scope + 1) == scope .. "/"
end

-- A quoted OData string at f[i] (after the opening quote): the value ('' = one quote) and the
-- position after the closing quote, or nil.
local function quoted(f, i)
  local parts = {}
  while true do
    local q = f:find("'", i, true)
    if not q then return nil end
    parts[#parts + 1] = f:sub(i, q - 1)
    if f:sub(q + 1, q + 1) ~= "'" then return table.concat(parts), q + 1 end
    parts[#parts + 1] = "'"
    i = q + 2
  end
end

--- Parses the OData $filter subset ARM accepts: clauses joined by `and`, each `field eq 'value'`
-- or `fn()` / `fn('value')`; keywords and names case-insensitive, '' for a quote in a value.
-- Returns a list of {field = lower name, value = s} | {call = lower name, arg = s|nil}
-- ({} for an empty filter), or nil when malformed.
function M.odata(f)
  local out = {}
  if not f or f:match("^%s*$") then return out end
  local pos = 1
  while true do
    local clause, i
    local field, after = f:match("^%s*([%a_][%w_]*)%s+[eE][qQ]%s*'()", pos)
    if field then
      local v, nxt = quoted(f, after)
      if not v then return nil end
      clause, i = { field = field:lower(), value = v }, nxt
    else
      local fn, rest = f:match("^%s*([%a_][%w_]*)%(()", pos)
      if not fn then return nil end
      clause = { call = fn:lower() }
      local q = f:match("^%s*'()", rest)
      if q then
        clause.arg, rest = quoted(f, q)
        if not clause.arg then return nil end
      end
      i = f:match("^%s*%)()", rest)
      if not i then return nil end
    end
    out[#out + 1] = clause
    if f:match("^%s*$", i) then return out end
    pos = f:match("^%s+[aA][nN][dD]%s+()", i)
    if not pos then return nil end
  end
end

--- Shallow merge of tables into a new one.
function M.merge(...)
  local out = {}
  for i = 1, select("#", ...) do
    local t = select(i, ...)
    if t then for k, v in pairs(t) do out[k] = v end end
  end
  return out
end

return M
