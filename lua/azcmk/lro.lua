--- ARM long-running operations.
-- Polls Azure-AsyncOperation, else Location, else the resource's provisioningState (PUT and
-- PATCH), else the initial answer is final. Interval from Retry-After (and -ms forms), else
-- opts.interval (default 30 s). Terminal: Succeeded / Failed / Canceled (any case). A failed
-- or canceled operation becomes a structured error (kind azure, code from the operation's
-- `error`). Polling URLs on another host than the original request are refused.
local errors = require("azcmk.errors")
local retry = require("azcmk.retry")
local url = require("azcmk.url")
local clock = require("azcmk.clock")

local M = {}

M.DEFAULT_INTERVAL = 30
M.DEFAULT_TIMEOUT = 3600

local TERMINAL = { succeeded = "Succeeded", failed = "Failed", canceled = "Canceled", cancelled = "Canceled" }

--- Terminal state name ("Succeeded", "Failed", "Canceled") or nil when still running.
function M.terminal(status)
  if type(status) ~= "string" then return nil end
  return TERMINAL[status:lower()]
end

local function provisioning_state(res)
  local j = res and res.json
  if type(j) == "table" then
    if type(j.properties) == "table" and type(j.properties.provisioningState) == "string" then
      return j.properties.provisioningState
    end
    if type(j.provisioningState) == "string" then return j.provisioningState end
  end
  return nil
end
M.provisioning_state = provisioning_state

--- Initial state for body polling: "InProgress", a terminal name, or "Succeeded".
function M.initial_body_state(res)
  local s = res.status
  if s == 202 then return "InProgress" end
  if s == 204 then return "Succeeded" end
  local ps = provisioning_state(res)
  if s == 201 then return ps or "InProgress" end
  if s == 200 then return ps or "Succeeded" end
  return nil
end

--- Choose the polling method from the initial response: "async", "location", "body" or
-- "done"; plus the polling URL.
function M.strategy(method, res)
  local h = res.headers or {}
  if h["azure-asyncoperation"] and h["azure-asyncoperation"] ~= "" then return "async",
    h["azure-asyncoperation"] end
  if h["location"] and h["location"] ~= "" then return "location", h["location"] end
  method = (method or ""):upper()
  if (method == "PUT" or method == "PATCH") and res.status ~= 204 and (res.status == 202 or
    provisioning_state(res)) then
    return "body", nil
  end
  return "done", nil
end

local function same_host_url(u, orig)
  local p = url.parse(u)
  if not p then return nil, "polling URL is not an absolute URL" end
  if p.scheme ~= orig.scheme or p.host ~= orig.host or (p.port or 443) ~= (orig.port or 443) then
    return nil,
      "polling URL " .. url.origin(p) .. " is on another host than the request (" .. url.origin(orig) .. ")"
  end
  return u
end

local function failure(state, res, what)
  local j = res and res.json
  local e = type(j) == "table" and (j.error or (type(j.properties) == "table" and j.properties.error)) or nil
  local code, msg
  if type(e) == "table" then code, msg = e.code, e.message end
  return errors.new("azure", {
    status = res and res.status,
      code = code or (state == "Canceled" and "OperationCanceled" or "OperationFailed"),
    message = msg or ("the long-running operation ended " .. state .. " (" .. what .. ")"),
    request_id = res and (errors.request_id_of(res)), state = state,
    details = type(e) == "table" and e.details or nil,
  })
end

--- Wait for the operation started by `initial` (a successful pipeline result) to finish.
-- p: the pipeline (p:send, p.now, p.sleep); req: { method, url } of the initial request.
-- opts: interval (s), timeout (s), progress = function(info) with info = { state, polls,
-- elapsed, method = "async"|"location"|"body" }, final_state_via ("location" |
-- "azure-async-operation" | "original-uri"), api_version (for the final GET on the resource).
-- Returns the final response (with .json) or nil, err.
function M.poll(p, initial, req, opts)
  opts = opts or {}
  local now = p.now or clock.now
  local sleep = p.sleep or clock.sleep
  local interval = opts.interval or p.lro_interval or M.DEFAULT_INTERVAL
  local timeout = opts.timeout or p.lro_timeout or M.DEFAULT_TIMEOUT
  local start = now()
  local orig = url.parse(req.url)
  local method = (req.method or "GET"):upper()
  local kind, poll_url = M.strategy(method, initial)
  if kind == "done" then return initial end
  if poll_url then
    local ok, why = same_host_url(poll_url, orig)
    if not ok then
      return nil, errors.new("input", { code = "UntrustedPollingUrl", message = why,
        hint = "the service returned a polling URL on another host; azcmk does not send the token there" })
    end
  end
  local location = initial.headers and initial.headers["location"]
  if location and not same_host_url(location, orig) then location = nil end
  local last = initial
  local polls = 0
  local state
  if kind == "body" then
    state = M.initial_body_state(initial)
    if state and M.terminal(state) then
      if M.terminal(state) == "Succeeded" then return initial end
      return nil, failure(M.terminal(state), initial, "provisioningState")
    end
  end
  while true do
    local delay = retry.retry_after(last.headers, now()) or interval
    if now() - start + delay > timeout then
      return nil, errors.new("timeout", { code = "LroTimeout", state = state or "InProgress",
        message = string.format("%s %s still running after %ds (timeout %ds)", method, orig.path,
                                math.floor(now() - start), timeout),
        request_id = errors.request_id_of(last) })
    end
    sleep(delay)
    polls = polls + 1
    local target = (kind == "body") and req.url or poll_url
    local res, err = p:send({ method = "GET", url = target })
    if not res then return nil, err end
    last = res
    if kind == "async" then
      state = type(res.json) == "table" and res.json.status or nil
      if not state then
        return nil, errors.new("azure", { code = "InvalidOperationStatus", status = res.status,
          message = "the Azure-AsyncOperation answer has no status", request_id = errors.request_id_of(res) })
      end
    elseif kind == "location" then
      state = res.status == 202 and "InProgress" or "Succeeded"
    else
      state = provisioning_state(res) or "Succeeded"
    end
    local term = M.terminal(state)
    if opts.progress then
      pcall(opts.progress, { state = state, polls = polls, elapsed = now() - start, method = kind })
    end
    if term == "Failed" or term == "Canceled" then return nil, failure(term, res, kind) end
    if term == "Succeeded" then
      -- final result
      local final_url
      local rl = type(res.json) == "table" and res.json.resourceLocation
      if kind == "async" and type(rl) == "string" and same_host_url(rl, orig) then final_url = rl
      elseif opts.final_state_via == "location" and location then final_url = location
      elseif method == "PUT" or method == "PATCH" then
        if kind == "body" then return res end
        final_url = req.url
      elseif method == "POST" and kind == "async" and location then final_url = location
      else
        return res
      end
      return p:send({ method = "GET", url = final_url })
    end
    -- still running
    if kind == "location" and res.headers["location"] then
      local nl = same_host_url(res.headers["location"], orig)
      if nl then poll_url = nl end
    end
  end
end

return M
