--- Policy: what a pipeline call returns - the one place where answers are decoded and
-- failures become structured errors (docs/pipeline.md, "The result").
--   2xx        -> res, with res.json (the body decoded when it is JSON), request_id (the
--                 service's x-ms-request-id, else the client request id), client_request_id,
--                 url and method as sent
--   other      -> nil, err, res: err from the response (errors.from_response: ARM, Key Vault,
--                 Entra ID envelopes) with operation "METHOD /path"
--   no answer  -> nil, err (transport, token or input error) with the request ids filled in
local cjson = require("cjson.safe")
local errors = require("azcmk.errors")
local url = require("azcmk.url")
local request_id = require("azcmk.policy.request_id")

local M = {}

local P = {}
P.__index = P

function M.new() return setmetatable({ name = "response" }, P) end

--- Decode res.body into res.json when it is JSON (by content type, or a body that starts
-- like a JSON object or array). Undecodable JSON leaves res.json nil.
function M.decode(res)
  local body = res.body
  if not body or body == "" then return res end
  local first = body:match("^%s*(.)")
  if first == "{" or first == "[" or (res.headers["content-type"] or ""):lower():find("json", 1, true) then
    res.json = cjson.decode(body)
  end
  return res
end

function P.send(_, req, next)
  local res, err = next:send(req)
  local crid = request_id.of(req)
  if not res then
    if type(err) == "table" then
      err.client_request_id = err.client_request_id or crid
      err.request_id = err.request_id or crid
    end
    return nil, err
  end
  local h = res.headers
  res.client_request_id = crid
  res.request_id = h["x-ms-request-id"] or h["x-ms-client-request-id"] or crid
  res.url = req.url
  res.method = req.method
  M.decode(res)
  local status = res.status
  if status >= 200 and status < 300 then return res end
  local e = errors.from_response(res)
  e.client_request_id = crid
  e.request_id = e.request_id or crid
  local target = req.target or url.parse(req.url)
  e.operation = req.method .. " " .. (target and target.path or req.url)
  e.outcome = res.outcome   -- "unknown": a write that may have been applied (policy.retry)
  return nil, e, res
end

return M
