--- --subscription NAME_OR_ID, as az takes it: a subscription id (a GUID) is used as it is; any
-- other value is a display name, looked up among the subscriptions the caller sees
-- (case-insensitively). A name that matches none, or several, is refused with the choices.
local errors = require("azcmk.errors")

local M = {}

local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

function M.is_id(s) return type(s) == "string" and s:match(GUID) ~= nil end

local function choices(list)
  local c = {}
  for _, s in ipairs(list) do
    c[#c + 1] = tostring(s.displayName) .. " (" .. tostring(s.subscriptionId) .. ")"
  end
  table.sort(c)
  return table.concat(c, ", ")
end

--- The subscription id of `value` (an id or a name), or nil, err. p: the run's pipeline.
function M.resolve(p, value)
  if value == nil or M.is_id(value) then return value end
  local list, err = require("azcmk.client.subscriptions").new(p):list()
  if not list then return nil, err end
  return M.pick(list, value)
end

--- The id of the one subscription of `list` (GET /subscriptions' values) named `value`, or
-- nil, err (none or several, with the choices).
function M.pick(list, value)
  local found = {}
  for _, s in ipairs(list) do
    if type(s) == "table" and type(s.displayName) == "string" and s.displayName:lower() == value:lower() then
      found[#found + 1] = s
    end
  end
  if #found == 1 then return found[1].subscriptionId end
  if #found == 0 then
    return nil, errors.input("no subscription named '" .. value .. "' among the " .. #list
      .. " the caller sees", { code = "SubscriptionNotFound", param = "subscription",
        hint = #list > 0 and ("pass one of: " .. choices(list)) or "sign in with an identity that sees it" })
  end
  return nil, errors.input(#found .. " subscriptions are named '" .. value .. "'",
    { code = "AmbiguousSubscription", param = "subscription",
      hint = "pass the id of the one you mean: " .. choices(found) })
end

return M
