--- emu.errors: Azure's error envelopes. Every helper returns the handler triple
-- `status, body, headers`, so a handler can `return errors.arm(404, "X", "msg")`.
-- errors.raise(status, body, headers) aborts the current handler with that response
-- (the dispatcher catches it); any other Lua error becomes a logged 500 InternalServerError.
local clock = require("emu.clock")

local M = {}

local RAISED = {}

--- ARM CloudError: {"error":{"code","message"[,"target","details","additionalInfo"]}}.
function M.arm(status, code, message, headers, extra)
  local err = { code = code, message = message }
  if extra then for k, v in pairs(extra) do err[k] = v end end
  return status, { error = err }, headers
end

--- Key Vault KeyVaultError: {"error":{"code","message","innererror":{"code"}}}.
function M.kv(status, code, message, inner_code, headers)
  local err = { code = code, message = message }
  if inner_code then err.innererror = { code = inner_code } end
  return status, { error = err }, headers
end

--- Container Registry data-plane errors: {"errors":[{"code","message","detail"}]}.
function M.acr(status, code, message, detail, headers)
  return status, { errors = { { code = code, message = message, detail = detail } } }, headers
end

--- Entra ID (AADSTS) error. err: OAuth error ("invalid_client"...), aadsts: number,
-- text: the message after "AADSTSnnn: ". ids: {trace_id=, correlation_id=} (defaults: the
-- request's ids from ngx.ctx).
function M.aad(status, err, aadsts, text, headers, ids)
  local ctx = ngx.ctx or {}
  ids = ids or {}
  local trace = ids.trace_id or ctx.request_id or "00000000-0000-0000-0000-000000000000"
  local corr = ids.correlation_id or ctx.correlation_id or trace
  local ts = os.date("!%Y-%m-%d %H:%M:%SZ", clock.time())
  local desc = string.format("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
    aadsts, text, trace, corr, ts)
  return status, {
    error = err, error_description = desc, error_codes = { aadsts }, timestamp = ts,
    trace_id = trace, correlation_id = corr,
    error_uri = "https://login.microsoftonline.com/error?code=" .. aadsts,
  }, headers
end

--- Microsoft Graph: {"error":{"code","message","innerError":{"date","request-id","client-request-id"}}}.
function M.graph(status, code, message, headers)
  local ctx = ngx.ctx or {}
  local rid = ctx.request_id or "00000000-0000-0000-0000-000000000000"
  return status, { error = { code = code, message = message, innerError = {
    date = os.date("!%Y-%m-%dT%H:%M:%S", clock.time()), ["request-id"] = rid,
    ["client-request-id"] = ctx.client_request_id or rid } } }, headers
end

--- Managed identity endpoints (IMDS / App Service): {"error","error_description"}.
function M.msi(status, err, description, headers)
  return status, { error = err, error_description = description }, headers
end

-- Generic codes per status, for faults and framework errors.
local ARM_CODES = {
  [400] = "BadRequest", [401] = "AuthenticationFailed", [403] = "AuthorizationFailed",
  [404] = "NotFound", [405] = "MethodNotAllowed", [408] = "RequestTimeout", [409] = "Conflict",
  [412] = "PreconditionFailed", [413] = "RequestContentTooLarge", [429] = "TooManyRequests",
  [500] = "InternalServerError", [502] = "BadGateway", [503] = "ServiceUnavailable",
  [504] = "GatewayTimeout",
}
local MESSAGES = {
  [404] = "The requested resource was not found.",
  [405] = "The requested resource does not support http method '%s'.",
  [408] = "The request timed out.",
  [409] = "The request conflicts with the current state of the resource.",
  [429] = "The request is being throttled. Please retry after the time given in the Retry-After header.",
  [500] = "The server encountered an internal error. Please retry the request.",
  [502] = "The gateway did not receive a response in time.",
  [503] = "The service is temporarily unavailable. Please retry the request.",
  [504] = "The gateway timed out.",
}
M.ARM_CODES = ARM_CODES

--- An error in the envelope of the service `kind` ("arm", "vault", "login", "msi", "acr").
function M.for_kind(kind, status, code, message, headers)
  code = code or ARM_CODES[status] or "Error"
  message = message or (MESSAGES[status] or "The request failed."):format(ngx.req.get_method())
  if kind == "vault" or kind == "hsm" then
    local kvcode = ({ [429] = "Throttled", [401] = "Unauthorized", [403] = "Forbidden",
      [404] = "NotFound" })[status] or code
    return M.kv(status, kvcode, message, nil, headers)
  elseif kind == "login" then
    local e = status >= 500 and "temporarily_unavailable" or (status == 429 and "slow_down" or "invalid_request")
    return M.aad(status, e, status >= 500 and 90033 or 90000, message, headers)
  elseif kind == "msi" then
    return M.msi(status, status >= 500 and "service_unavailable" or "invalid_request", message, headers)
  elseif kind == "acr" then
    return M.acr(status, code:upper(), message, nil, headers)
  elseif kind == "graph" then
    if status == 404 then -- Graph names the path segment it does not know
      local seg = ngx.var.uri:match("([^/]+)/*$") or ""
      return M.graph(400, "BadRequest", "Resource not found for the segment '" .. seg .. "'.", headers)
    end
    return M.graph(status, code, message, headers)
  end
  return M.arm(status, code, message, headers)
end

--- Aborts the running handler with this response (status, body, headers).
function M.raise(status, body, headers)
  error(setmetatable({ status = status, body = body, headers = headers }, RAISED), 0)
end

--- Raises the given triple: errors.throw(errors.arm(400, ...)).
function M.throw(status, body, headers)
  M.raise(status, body, headers)
end

--- status, body, headers if e is a raised response, else nil.
function M.caught(e)
  if type(e) == "table" and getmetatable(e) == RAISED then return e.status, e.body, e.headers end
  return nil
end

return M
