--- emu.main: the nginx entry points (init, init_worker, handle, log, too_large) and the
-- request object handed to every handler. See docs/emulator.md.
local json = require("emu.json")
local router = require("emu.router")
local errors = require("emu.errors")
local hosts = require("emu.hosts")
local faults = require("emu.faults")
local reqlog = require("emu.reqlog")
local util = require("emu.util")
local clock = require("emu.clock")
local state = require("emu.state")
local throttle = require("emu.throttle")

local M = {}

--- Service modules, loaded at init; each registers its routes when required and may export
-- seed() (called after the seeded state is written, also on reset). Add yours here.
M.SERVICES = {
  "emu.services.control",
  "emu.services.entra",
  "emu.services.managed_identity",
  "emu.arm.subscriptions",
  "emu.arm.resource_groups",
  "emu.arm.identities",
  "emu.arm.authorization",
  "emu.arm.resources",
  "emu.arm.operations",
  "emu.arm.vaults",
  "emu.arm.vault_keys",
  "emu.services.keyvault",
  "emu.arm.registries",
  "emu.services.acr",
  "emu.arm.deployments",
  "emu.services.graph",
}

M.BODY_LIMIT = 4 * 1024 * 1024 -- Azure Resource Manager's request limit; nginx's hard limit is above it

local services = {}

--- Writes the seeded state: flush, seed.apply(), every service's seed().
function M.reseed()
  local seed = require("emu.seed")
  state.flush()
  seed.apply()
  for _, s in ipairs(services) do
    if type(s) == "table" and s.seed then s.seed(seed.data) end
  end
end

function M.init(dir)
  local seed = require("emu.seed")
  seed.load(dir)
  for _, name in ipairs(M.SERVICES) do services[#services + 1] = require(name) end
  ngx.shared.emu_meta:flush_all()
  ngx.shared.emu_log:flush_all()
  throttle.init()
  M.reseed()
end

function M.init_worker()
  math.randomseed(math.floor(ngx.now() * 1000) + ngx.worker.pid() * 7919)
  -- Each start writes a fresh federated token (valid one hour of simulated time).
  if ngx.worker.id() == 0 then
    local seed = require("emu.seed")
    local ok, tok = pcall(seed.federated_token)
    if ok then seed.write_federated_token(tok) else ngx.log(ngx.ERR, "emulator: federated token: ", tok) end
  end
end

-- ---------------------------------------------------------------- request object

local Req = {}
Req.__index = Req

--- Raw body string, or nil when empty. Bodies are kept in memory (see BODY_LIMIT).
function Req:body()
  if self._body_read then return self._body end
  self._body_read = true
  ngx.req.read_body()
  local b = ngx.req.get_body_data()
  if not b then
    local f = ngx.req.get_body_file()
    if f then
      local h = io.open(f, "rb")
      if h then b = h:read("*a") h:close() end
    end
  end
  if b == "" then b = nil end
  if b and #b > M.BODY_LIMIT then errors.throw(M.too_large_response(self)) end
  self._body = b
  return b
end

--- Body parsed as JSON (any value), raising the 400 of this host's service when it is not
-- JSON. For ARM resource bodies prefer emu.arm.body(req) (object check, ARM texts).
function Req:json()
  local raw = self:body()
  local v, err = json.decode(raw)
  if v == nil then
    if self.kind == "vault" or self.kind == "hsm" then
      errors.throw(errors.kv(400, "BadParameter", "The request body is not valid JSON: " .. tostring(err))) -- synthetic
    end
    errors.throw(errors.arm(400, "InvalidRequestContent", -- synthetic
      "The request content was invalid and could not be deserialized: '" .. tostring(err) .. "'."))
  end
  return v
end

--- Form fields of an application/x-www-form-urlencoded body (first value of each).
function Req:form()
  local raw = self:body() or ""
  local out = {}
  for pair in raw:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k = ngx.unescape_uri((k:gsub("+", " ")))
    if out[k] == nil then out[k] = ngx.unescape_uri((v:gsub("+", " "))) end
  end
  return out
end

--- One request header (first value), name case-insensitive.
function Req:header(name)
  local v = self.headers[name]
  if type(v) == "table" then v = v[1] end
  return v
end

--- One query parameter (first value; "" for a bare key), name as sent.
function Req:arg(name)
  local v = self.query[name]
  if type(v) == "table" then v = v[1] end
  if v == true then v = "" end
  return v
end

local function new_request()
  local host = (ngx.var.host or ""):lower()
  local http_port = ngx.var.https ~= "on"
  local kind, cloud, subname = hosts.classify(host, http_port)
  local path = ngx.var.uri
  if path:sub(1, 11) == "/_emulator/" or path == "/_emulator" then kind = "control" end
  local headers = ngx.req.get_headers(200)
  local client_rid = headers["x-ms-client-request-id"] or headers["client-request-id"]
  if type(client_rid) == "table" then client_rid = client_rid[1] end
  local request_id = util.uuid()
  local req = setmetatable({
    method = ngx.req.get_method(), host = host, kind = kind, cloud = cloud, subname = subname,
    path = path, query = ngx.req.get_uri_args(200), headers = headers, params = {},
    request_id = request_id, client_request_id = client_rid,
    correlation_id = client_rid or request_id, now = clock.now(),
  }, Req)
  local ctx = ngx.ctx
  ctx.kind, ctx.request_id, ctx.correlation_id = kind, request_id, req.correlation_id
  ctx.client_request_id = client_rid
  return req
end
M.new_request = new_request

-- ---------------------------------------------------------------- responses

local function send(req, status, body, headers)
  ngx.status = status
  local h = ngx.header
  h["x-ms-request-id"] = req.request_id
  if req.kind == "arm" then
    h["x-ms-correlation-request-id"] = req.correlation_id
    h["x-ms-routing-request-id"] = "WESTUS:" .. os.date("!%Y%m%dT%H%M%SZ", math.floor(req.now)) .. ":" ..
      req.request_id
    h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    for k, v in pairs(throttle.arm_headers(req) or {}) do h[k] = v end
    h["X-Content-Type-Options"] = "nosniff"
  end
  if req.client_request_id then
    h["x-ms-client-request-id"] = req.client_request_id
    if req.kind == "login" then h["client-request-id"] = req.client_request_id end
  end
  h["Cache-Control"] = "no-cache"
  if headers then for k, v in pairs(headers) do h[k] = v end end
  if body == nil or status == 204 or status == 304 then
    -- a HEAD answer may carry the length of the body it leaves out
    if status ~= 204 and status ~= 304 and not (headers and headers["Content-Length"]) then h["Content-Length"] = 0 end
    ngx.send_headers()
    return ngx.exit(ngx.HTTP_OK)
  end
  if type(body) == "table" then
    body = json.encode(body)
    if not (headers and (headers["Content-Type"] or headers["content-type"])) then
      h["Content-Type"] = "application/json; charset=utf-8"
    end
  end
  h["Content-Length"] = #body
  ngx.print(body)
  return ngx.exit(ngx.HTTP_OK)
end

local function internal_error(req, err)
  local msg = tostring(err)
  ngx.log(ngx.ERR, "emulator: internal error in ", req.method, " ", req.path, ": ", msg)
  ngx.shared.emu_meta:incr("internal_errors", 1, 0)
  ngx.ctx.internal_error = msg:sub(1, 500)
  return errors.for_kind(req.kind == "control" and "arm" or req.kind, 500, "InternalServerError",
    "Encountered internal server error. Diagnostic information: timestamp '" .. clock.iso() ..
    "', request id '" .. req.request_id .. "'.")
end

local function not_routed(req, why)
  if req.kind == "arm" then
    -- ARM authenticates before it looks at the path.
    require("emu.auth").arm(req)
    local ns, typ = req.path:match("/providers/([^/]+)/([^/]+)")
    if why == "method" then
      return errors.arm(405, "MethodNotAllowed", "The requested resource does not support http method '" .. -- synthetic
        req.method .. "'.")
    end
    if ns then
      return errors.arm(404, "InvalidResourceType", string.format( -- synthetic
        "The resource type '%s' could not be found in the namespace '%s' for api version '%s'.", typ, ns,
        tostring(req:arg("api-version"))))
    end
    return errors.arm(404, "NotFound", "The requested path '" .. req.path .. "' was not found.") -- synthetic
  elseif req.kind == "login" then
    -- synthetic (the text below)
    return errors.aad(404, "invalid_request", 90000, "The requested endpoint '" .. req.path .. "' was not found.")
  end
  if why == "method" then return errors.for_kind(req.kind, 405) end
  return errors.for_kind(req.kind == "control" and "arm" or req.kind, 404)
end

local function too_large_response(req)
  local msg = string.format("The request content size exceeds the maximum allowed size of %d bytes.", M.BODY_LIMIT)
  local status, body, headers
  if req.kind == "vault" or req.kind == "hsm" then
    status, body, headers = errors.kv(413, "RequestTooLarge", msg) -- synthetic
  elseif req.kind == "login" then
    status, body, headers = errors.aad(413, "invalid_request", 90000, msg) -- synthetic
  else
    status, body, headers = errors.arm(413, "RequestContentTooLarge", msg) -- synthetic
  end
  return status, body, headers
end
M.too_large_response = too_large_response

local function dispatch(req)
  -- Bodies over the limit: Azure-style 413 (nginx's own limit is higher, so HTTP/2 clients
  -- get a clean answer instead of a reset stream).
  local cl = tonumber(req.headers["content-length"])
  if cl and cl > M.BODY_LIMIT and req.kind ~= "acr" then return too_large_response(req) end -- acr: blob layers
  if req.kind == "control" and not hosts.control_allowed(req.host) then
    -- DNS rebinding: a browser page on another name must not reach /_emulator/* (seed secrets)
    return errors.arm(421, "MisdirectedRequest", "The emulator's control API answers only on the emulated " ..
      "host names and loopback addresses.") -- synthetic
  end
  if req.kind ~= "control" then
    -- the modelled round trip (/_emulator/config latency_ms): the request waits, then is served
    local latency = ngx.shared.emu_meta:get("latency_ms")
    if latency and latency > 0 then ngx.sleep(latency / 1000) end
    local st, b, h = faults.apply(req)
    if st then return st, b, h end
  end
  local route, params = router.match(req.kind, req.method, req.path)
  if not route then return not_routed(req, params) end
  req.params, req.route = params, route
  return route.handler(req)
end

local function traceback(e)
  if errors.caught(e) then return e end
  return debug.traceback(tostring(e), 2)
end

--- content_by_lua entry point.
function M.handle()
  local ok_req, req = pcall(new_request)
  if not ok_req then
    ngx.log(ngx.ERR, "emulator: cannot read request: ", tostring(req))
    ngx.status = 400
    ngx.say('{"error":{"code":"BadRequest","message":"The request could not be read."}}')
    return ngx.exit(400)
  end
  local res = { xpcall(dispatch, traceback, req) }
  local status, body, headers
  if res[1] then
    status, body, headers = res[2], res[3], res[4]
    if type(status) ~= "number" then
      status, body, headers = internal_error(req, "handler returned no status")
    end
  else
    status, body, headers = errors.caught(res[2])
    if not status then status, body, headers = internal_error(req, res[2]) end
  end
  -- Read an unread body before answering: answering an HTTP/2 stream whose upload is still
  -- open makes nginx reset it, which clients see as a transport error instead of our answer.
  if not req._body_read and (tonumber(req.headers["content-length"]) or 0) <= M.BODY_LIMIT then
    pcall(ngx.req.read_body)
  end
  -- A fault rule with `after`: the request was processed; now its answer is delayed, lost or
  -- replaced by an error.
  if ngx.ctx.fault_after then status, body, headers = faults.after(req, status, body, headers) end
  if type(body) == "table" then
    local ok, enc = pcall(json.encode, body)
    if not ok then
      status, body, headers = internal_error(req, enc)
    else
      body = enc
      headers = headers or {}
      if not (headers["Content-Type"] or headers["content-type"]) then
        headers["Content-Type"] = "application/json; charset=utf-8"
      end
    end
  end
  return send(req, status, body, headers)
end


--- The 413 page (error_page 413 in nginx.conf, bodies beyond nginx's hard limit).
function M.too_large()
  local req = new_request()
  local status, body, headers = too_large_response(req)
  ngx.header["Connection"] = "close"
  return send(req, status, body, headers)
end

--- log_by_lua entry point.
function M.log()
  local ok, err = pcall(reqlog.record)
  if not ok then ngx.log(ngx.ERR, "emulator: log: ", tostring(err)) end
end

return M
