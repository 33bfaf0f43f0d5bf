--- Policy: every call carries x-ms-client-request-id, a new UUID v4 unless the caller gave
-- one, the same for all tries of the call; services echo it and log it, so a user can quote
-- it to Azure support (res.client_request_id, err.client_request_id).
local headers = require("azcmk.headers")

local M = {}

M.HEADER = "x-ms-client-request-id"

local P = {}
P.__index = P

local uuid
-- the core's UUID v4, looked up once (math.random when the core is not built)
local function new_id()
  if not uuid then
    local ok, core = pcall(require, "azcmk.core")
    uuid = ok and type(core) == "table" and core.uuid4 or require("azcmk.credential.base").uuid
  end
  return uuid()
end

function M.new() return setmetatable({ name = "request_id" }, P) end

function P.send(_, req, next)
  local h = req.headers
  if not headers.key(h, M.HEADER) then h[M.HEADER] = new_id() end
  return next:send(req)
end

--- The client request id a request carries (nil before this policy ran).
function M.of(req)
  return headers.get(req.headers, M.HEADER)
end

return M
