--- Policy: User-Agent "azcmk/<version>[ <the caller's addition>]" on every call that does not
-- set its own.
local headers = require("azcmk.headers")

local M = {}

local P = {}
P.__index = P

--- ua: the whole User-Agent value.
function M.new(ua)
  if type(ua) ~= "string" or ua == "" then
    error("azcmk.policy.user_agent: a user agent string expected", 2)
  end
  return setmetatable({ name = "user_agent", value = ua }, P)
end

function P:send(req, next)
  local h = req.headers
  if not headers.key(h, "user-agent") then h["User-Agent"] = self.value end
  return next:send(req)
end

return M
