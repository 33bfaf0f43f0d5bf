--- emu.util: small helpers shared by the services.
local M = {}

local hexd = "0123456789abcdef"

--- Random RFC 4122 v4 UUID (math.random, seeded per worker: ids, not secrets).
function M.uuid()
  local t = {}
  for i = 1, 32 do
    local r = math.random(1, 16)
    t[i] = hexd:sub(r, r)
  end
  t[13] = "4"
  local v = math.random(9, 12)
  t[17] = hexd:sub(v, v)
  local s = table.concat(t)
  return s:sub(1, 8) .. "-" .. s:sub(9, 12) .. "-" .. s:sub(13, 16) .. "-" .. s:sub(17, 20) .. "-" .. s:sub(21, 32)
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
