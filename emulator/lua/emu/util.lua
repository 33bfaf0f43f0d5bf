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
