--- Request header tables ({ Name = "value" }) looked up whatever the case of their names:
-- callers write "Content-Type", "content-type" or "CONTENT-TYPE" alike.
local M = {}

--- The name under which h holds the header `name` (lower-case), or nil.
function M.key(h, name)
  for k in pairs(h) do
    if type(k) == "string" and k:lower() == name then return k end
  end
  return nil
end

--- The value of header `name` (lower-case) in h, or nil.
function M.get(h, name)
  local k = M.key(h, name)
  return k and h[k]
end

return M
