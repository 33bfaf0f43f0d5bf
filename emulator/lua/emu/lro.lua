--- emu.lro: Azure's long-running-operation protocol.
-- A handler that starts an operation calls lro.begin{...}; it gets the response headers to
-- send (Azure-AsyncOperation and/or Location, Retry-After). The operation completes after
-- `polls` polls AND `seconds` simulated seconds (defaults from POST /_emulator/config
-- {"lro": {"polls": 1, "seconds": 0, "retry_after": 1}}). On completion the registered
-- completer runs exactly once (cross-worker) and decides Succeeded / Failed.
--   GET .../operationStatuses/{id}  -> 200 {"id","name","status","startTime"[,"endTime","error"]}
--   GET .../operationResults/{id}   -> 202 + Location + Retry-After while running; then the
--                                      final status/body (200/204), or the error.
local state = require("emu.state")
local clock = require("emu.clock")
local json = require("emu.json")
local errors = require("emu.errors")

local M = {}

local meta = ngx.shared.emu_meta
local completers, failers = {}, {}

M.DEFAULTS = { polls = 1, seconds = 0, retry_after = 1 }
-- Forced outcomes for rehearsing failures: the next `fail_next` operations end with
-- `fail_status` ("Failed" or "Canceled") and the error below, without running their completer;
-- the operation's failure hook (register's on_fail) leaves the resource as Azure does. A fault
-- rule's `lro_fail` forces the operation its request starts the same way.
M.FORCED = { fail_next = "number", fail_status = "string", fail_code = "string", fail_message = "string" }

function M.config()
  local c = json.decode(meta:get("lro:config") or "") or {}
  for k, v in pairs(M.DEFAULTS) do if c[k] == nil then c[k] = v end end
  return c
end

function M.configure(c)
  local cur = M.config()
  for k, v in pairs(c) do
    if M.FORCED[k] then
      if type(v) ~= M.FORCED[k] then return nil, "lro." .. k .. " must be a " .. M.FORCED[k] end
      if k == "fail_status" and v ~= "Failed" and v ~= "Canceled" then
        return nil, "lro.fail_status must be Failed or Canceled"
      end
      if k == "fail_next" and not (v >= 0 and v <= 1000) then return nil, "lro.fail_next must be 0..1000" end
    elseif M.DEFAULTS[k] == nil then
      return nil, "unknown lro setting '" .. tostring(k) .. "'"
    elseif type(v) ~= "number" or not (v >= 0 and v <= 86400 * 366) then
      return nil, "lro." .. k .. " must be a number from 0 to a year"
    end
    cur[k] = v
  end
  meta:set("lro:config", json.encode(cur))
  return cur
end

function M.reset_config()
  meta:delete("lro:config")
end

--- Registers the function that finishes operations of `name`:
-- fn(args, op) -> true[, result_body[, result_status]] | false, error_table[, error_status]
-- on_fail(args, op), optional, leaves the resource as Azure does when such an operation ends
-- Failed or Canceled by a forced outcome (the completer does not run then).
function M.register(name, fn, on_fail)
  completers[name] = fn
  failers[name] = on_fail
end

-- The forced outcome of an operation starting now, or nil: a fault rule's `lro_fail` on this
-- request (emu.faults), else the next of the configured `fail_next`.
local function forced_outcome(cfg)
  local f = ngx.ctx.lro_fail
  if f then
    return { status = "Failed", code = f.code or "InternalServerError", http = 500,
      message = f.message or "The operation failed because of an internal error. Please retry the operation " ..
        "later. (Injected by the emulator's faults.)" } -- synthetic
  end
  if (cfg.fail_next or 0) <= 0 then return nil end
  -- Take one forced failure; the config is shared by all workers, so decrement atomically.
  return state.with_lock("lro:config", function()
    local c = M.config()
    if (c.fail_next or 0) <= 0 then return nil end
    c.fail_next = c.fail_next - 1
    meta:set("lro:config", json.encode(c))
    return { status = c.fail_status or "Failed", code = c.fail_code or "OperationFailed",
      message = c.fail_message or "The operation failed (forced by the emulator's lro.fail_next)." }
  end)
end

local function uuid()
  return require("emu.util").uuid()
end

--- Starts an operation. opts:
--   req          the request (host and api-version of the status URLs come from it)
--   prefix       ARM path the status URLs hang under, e.g. the resource id, or
--                "/subscriptions/{sub}/providers/Microsoft.X/locations/{loc}"
--   style        "async" (Azure-AsyncOperation), "location" (Location), or "both" (default)
--   action, args completer name and its JSON-able arguments
--   name_prefix  operation id prefix, e.g. "registries-" (ACR's style)
--   results_segment  "operationResults" (default) or e.g. "operationresults" (resource groups)
--   short_status     the status answer is only {"status"[,"error"]}, repeating Azure-AsyncOperation
--                    and api-supported-versions (Container Registry's, in recorded traffic)
--   polls, seconds, retry_after  override the configured defaults
-- Returns headers, op.
function M.begin(opts)
  local cfg = M.config()
  local id = (opts.name_prefix or "") .. uuid()
  local now = clock.now()
  local prefix = (opts.prefix or ""):gsub("/+$", "")
  local api = opts.api_version or (opts.req and opts.req.query["api-version"]) or ""
  local host = opts.req and opts.req.host or "management.azure.com"
  local base = "https://" .. host .. prefix
  local op = {
    id = id, status = "InProgress", polls = 0,
    polls_needed = opts.polls or cfg.polls, done_at = now + (opts.seconds or cfg.seconds),
    start = now, action = opts.action, args = opts.args,
    status_url = base .. "/operationStatuses/" .. id .. "?api-version=" .. api,
    location_url = base .. "/" .. (opts.results_segment or "operationResults") .. "/" .. id .. "?api-version=" .. api,
    retry_after = opts.retry_after or cfg.retry_after,
    short = opts.short_status or nil, api = api,
  }
  op.forced = forced_outcome(cfg)
  state.put("op:" .. id, op)
  local h = { ["Retry-After"] = tostring(math.floor(op.retry_after)) }
  local style = opts.style or "both"
  if style == "async" or style == "both" then h["Azure-AsyncOperation"] = op.status_url end
  if style == "location" or style == "both" then h["Location"] = op.location_url end
  return h, op
end

--- Counts a poll of operation id and completes it when due. Returns op or nil.
function M.poll(id)
  local op = state.update("op:" .. id, function(op)
    if not op then return nil end
    op.polls = op.polls + 1
    if op.status == "InProgress" and op.polls >= op.polls_needed and clock.now() >= op.done_at
      and op.forced then
      op.end_time = clock.now()
      op.status = op.forced.status
      op.error, op.error_status = { code = op.forced.code, message = op.forced.message }, op.forced.http or 400
      local undo = op.action and failers[op.action]
      if undo then
        local pok, e = pcall(undo, op.args, op)
        if not pok then
          ngx.log(ngx.ERR, "emulator: LRO failure hook ", op.action, " failed: ", tostring(e))
          ngx.shared.emu_meta:incr("internal_errors", 1, 0)
        end
      end
    elseif op.status == "InProgress" and op.polls >= op.polls_needed and clock.now() >= op.done_at then
      local fn = op.action and completers[op.action]
      local ok, a, b = true, nil, nil
      if op.action and not fn then
        ok, a, b = false, { code = "InternalServerError", message = "no completer " .. op.action }, 500
      elseif fn then
        local pok, r1, r2, r3 = pcall(fn, op.args, op)
        if not pok then
          ngx.log(ngx.ERR, "emulator: LRO completer ", op.action, " failed: ", tostring(r1))
          ngx.shared.emu_meta:incr("internal_errors", 1, 0)
          ok, a, b = false, { code = "InternalServerError", message = "Internal error." }, 500
        else
          ok, a, b = r1, r2, r3
        end
      end
      op.end_time = clock.now()
      if ok then
        op.status = "Succeeded"
        op.result_body, op.result_status = a, b
      else
        op.status = "Failed"
        op.error, op.error_status = a, b or 400
      end
    end
    return op
  end)
  return op
end

--- Peeks at an operation without counting a poll.
function M.get(id)
  return state.get("op:" .. id)
end

function M.status_body(op)
  if op.short then return { status = op.status, error = op.error } end
  local b = { id = op.status_url:match("^https://[^/]+([^?]*)"), name = op.id, status = op.status,
    startTime = clock.iso(op.start) }
  if op.end_time then b.endTime = clock.iso(op.end_time) end
  if op.error then b.error = op.error end
  return b
end

-- The polled operation of the route, or raises 404 OperationNotFound.
local function polled(req)
  local op = M.poll(req.params.opid)
  if not op then
    -- synthetic (the text below)
    errors.throw(errors.arm(404, "OperationNotFound", "The operation '" .. req.params.opid ..
      "' could not be found."))
  end
  return op
end

-- GET .../operationStatuses/{opid}
function M.handle_status(req)
  local op = polled(req)
  local h = {}
  if op.status == "InProgress" then h["Retry-After"] = tostring(math.floor(op.retry_after)) end
  if op.short then h["Azure-AsyncOperation"], h["api-supported-versions"] = op.status_url, op.api end
  return 200, M.status_body(op), h
end

-- GET .../operationResults/{opid}
function M.handle_result(req)
  local op = polled(req)
  if op.status == "InProgress" then
    return 202, nil, { Location = op.location_url, ["Retry-After"] = tostring(math.floor(op.retry_after)) }
  elseif op.status == "Failed" or op.status == "Canceled" then
    return op.error_status or 400, { error = op.error }
  end
  if op.result_body == nil then return op.result_status or 200, nil end
  return op.result_status or 200, op.result_body
end

return M
