--- Subscriptions the caller sees (GET /subscriptions): where to look for a vault of another
-- subscription of the tenant, and what `audit` covers by default.
local base = require("azcmk.client.base")
local V = require("azcmk.client.api_versions")

local C = base.class("subscriptions")

--- list{} -> array of subscriptions ({subscriptionId, displayName, state, tenantId, ...}), or nil, err.
function C:list(o)
  base.check(o or {}, {}, "subscriptions:list")
  return base.all(self.p:arm_pages("/subscriptions", { api_version = V.subscriptions }))
end

--- ids{} -> the subscription ids the caller sees, or nil, err.
function C:ids(o)
  local list, err = self:list(o)
  if not list then return nil, err end
  local out = {}
  for _, s in ipairs(list) do
    if type(s) == "table" and s.subscriptionId then out[#out + 1] = s.subscriptionId end
  end
  return out
end

return C
