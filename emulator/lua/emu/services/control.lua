--- emu.services.control: the control API under /_emulator/ (answered on every emulated host
-- name and loopback address; others get 421, see emu.hosts.control_allowed).
--   GET  /_emulator/health          {"status":"ok","internal_errors":N,...}
--   POST /_emulator/reset           back to the seeded state (state, clock, faults, LRO config,
--                                   throttling: its start config, every bucket full)
--   GET  /_emulator/clock           {"now":unix,"iso":...,"offset":S}
--   POST /_emulator/clock           {"advance":S}  (S >= 0)
--   GET|POST|DELETE /_emulator/faults   {"rules":[...]}
--   GET  /_emulator/log[?since=SEQ] JSON lines;  DELETE /_emulator/log forgets them
--   GET  /_emulator/seed            the seeded ids and credentials
--   GET|POST /_emulator/config      {"lro":{"polls","seconds","retry_after",...},"throttle":{...},
--                                   "latency_ms":N} (every request waits N ms: a modelled round trip)
--   POST /_emulator/subscriptions   {"count":N,"prefix":"bench"} more subscriptions, the seeded
--                                   owner an Owner of each (fleets for benchmarks)
--   POST /_emulator/federated-token {"sub","aud","lifetime"} -> {"token"} (also DIR/federated-token)
--   GET|POST|DELETE /_emulator/vm/identities, /_emulator/appservice/identities
--                                   user-assigned identities attached to the managed identity hosts
--                                   ({"id": rid}); POST {"system": false|true} drops/restores the
--                                   system-assigned identity
--   GET  /_emulator/routes          every registered route (kind, methods, path, ARM type)
local router = require("emu.router")
local json = require("emu.json")
local clock = require("emu.clock")
local faults = require("emu.faults")
local reqlog = require("emu.reqlog")
local state = require("emu.state")
local lro = require("emu.lro")
local errors = require("emu.errors")
local throttle = require("emu.throttle")

local M = {}

local function route(method, path, handler)
  router.add({ kind = "control", method = method, path = "/_emulator" .. path, handler = handler, ci = false })
end

local function bad(msg)
  return errors.arm(400, "BadRequest", msg)
end

local function body_object(req, optional)
  local raw = req:body()
  if raw == nil and optional then return {} end
  local v = json.decode(raw)
  if type(v) ~= "table" or json.is_array(v) then errors.throw(bad("body must be a JSON object")) end
  return v
end

route("GET", "/health", function()
  local seed = require("emu.seed").data
  return 200, { status = "ok", internal_errors = ngx.shared.emu_meta:get("internal_errors") or 0,
    pid = ngx.worker.pid(), worker = ngx.worker.id(), port = seed.port, http_port = seed.http_port,
    log_seq = reqlog.last_seq(), throttled = throttle.count() }
end)

route("POST", "/reset", function()
  require("emu.main").reseed()
  clock.reset()
  faults.clear()
  lro.reset_config()
  throttle.reset()
  ngx.shared.emu_meta:delete("latency_ms")
  return 200, { status = "reset" }
end)

local function clock_body()
  local now = clock.now()
  return { now = now, iso = clock.iso(now), offset = clock.offset() }
end

route("GET", "/clock", function() return 200, clock_body() end)
route("POST", "/clock", function(req)
  local b = body_object(req)
  if type(b.advance) ~= "number" or not (b.advance >= 0 and b.advance <= 10 * 366 * 86400) then
    return bad("'advance' must be a number of seconds, 0 to ten years")
  end
  clock.advance(b.advance)
  return 200, clock_body()
end)

route("GET", "/faults", function() return 200, { rules = json.array(faults.list()) } end)
route("POST", "/faults", function(req)
  local b = body_object(req)
  local list, err = faults.add(b.rules)
  if not list then return bad(err) end
  return 200, { rules = list }
end)
route("DELETE", "/faults", function()
  faults.clear()
  return 200, { rules = json.array({}) }
end)

route("GET", "/log", function(req)
  local lines = reqlog.lines(tonumber(req:arg("since")) or 0)
  local body = table.concat(lines, "\n")
  if #lines > 0 then body = body .. "\n" end
  return 200, body, { ["Content-Type"] = "application/x-ndjson" }
end)
route("DELETE", "/log", function()
  reqlog.clear()
  return 200, { cleared = true, seq = reqlog.last_seq() }
end)

route("GET", "/routes", function()
  local out = json.array({})
  for _, r in ipairs(router.routes()) do
    local kinds, methods = {}, {}
    for k in pairs(r.kinds) do kinds[#kinds + 1] = k end
    for m in pairs(r.methods) do methods[#methods + 1] = m end
    table.sort(kinds)
    table.sort(methods)
    out[#out + 1] = { kind = table.concat(kinds, ","), methods = json.array(methods), path = r.path,
      type = r.type }
  end
  return 200, { routes = out }
end)

route("GET", "/seed", function()
  return 200, require("emu.seed").data
end)

local function config_body()
  return { lro = lro.config(), throttle = throttle.config(), latency_ms = ngx.shared.emu_meta:get("latency_ms") or 0 }
end

route("GET", "/config", function() return 200, config_body() end)
route("POST", "/config", function(req)
  local b = body_object(req)
  for k in pairs(b) do
    if k ~= "lro" and k ~= "throttle" and k ~= "latency_ms" then
      return bad("unknown setting '" .. tostring(k) .. "'")
    end
  end
  if b.latency_ms ~= nil then
    if type(b.latency_ms) ~= "number" or not (b.latency_ms >= 0 and b.latency_ms <= 60000) then
      return bad("'latency_ms' must be a number of milliseconds from 0 to 60000")
    end
  end
  if b.lro ~= nil then
    if type(b.lro) ~= "table" then return bad("'lro' must be an object") end
    local c, err = lro.configure(b.lro)
    if not c then return bad(err) end
  end
  if b.throttle ~= nil then
    local c, err = throttle.configure(b.throttle)
    if not c then return bad(err) end
  end
  if b.latency_ms ~= nil then ngx.shared.emu_meta:set("latency_ms", b.latency_ms) end
  return 200, config_body()
end)

-- More subscriptions for a fleet: ids derived from the prefix and number (the same every
-- time), named "<prefix>-<n>", the seeded owner an Owner of each. Answers their ids.
route("POST", "/subscriptions", function(req)
  local b = body_object(req)
  local n = b.count
  if type(n) ~= "number" or n ~= math.floor(n) or n < 1 or n > 1000 then
    return bad("'count' must be a whole number from 1 to 1000")
  end
  local prefix = b.prefix or "fleet"
  if type(prefix) ~= "string" or not prefix:match("^[%w-]+$") or #prefix > 40 then
    return bad("'prefix' must be letters, digits and dashes (at most 40)")
  end
  local seed = require("emu.seed")
  local ids = json.array({})
  for i = 1, n do
    local h = ngx.md5(prefix .. ":" .. i)
    local id = string.format("%s-%s-4%s-8%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(14, 16), h:sub(18, 20),
      h:sub(21, 32))
    seed.add_subscription(id, prefix .. "-" .. i)
    ids[i] = id
  end
  return 200, { subscriptions = ids }
end)

route("POST", "/federated-token", function(req)
  local b = body_object(req, true)
  for _, k in ipairs({ "sub", "aud", "iss" }) do
    if b[k] ~= nil and type(b[k]) ~= "string" then return bad("'" .. k .. "' must be a string") end
  end
  if b.lifetime ~= nil and (type(b.lifetime) ~= "number" or not (b.lifetime > 0 and b.lifetime <= 366 * 86400)) then
    return bad("'lifetime' must be a positive number of seconds")
  end
  local seed = require("emu.seed")
  local tok, claims = seed.federated_token(b)
  if b.write ~= false then seed.write_federated_token(tok) end
  return 200, { token = tok, file = seed.data.workload.token_file, claims = claims }
end)

-- Managed identity hosts: which user-assigned identities the VM / App Service carry.
for _, host in ipairs({ "vm", "appservice" }) do
  route("GET", "/" .. host .. "/identities", function()
    local h = state.get("mihost:" .. host)
    return 200, { resource_id = h.resource_id, system = h.system or json.null,
      user_assigned = json.array(h.user_assigned) }
  end)
  route("POST", "/" .. host .. "/identities", function(req)
    local b = body_object(req)
    if b.system ~= nil then
      -- {"system": false} removes the host's system-assigned identity, {"system": true} restores it.
      if type(b.system) ~= "boolean" then return bad("'system' must be true or false") end
      local seeded = require("emu.seed").data[host].principal_id
      local h = state.update("mihost:" .. host, function(h)
        h.system = b.system and seeded or nil
        return h
      end)
      return 200, { resource_id = h.resource_id, system = h.system or json.null,
        user_assigned = json.array(h.user_assigned) }
    end
    local rid = b.id or b.resource_id
    if type(rid) ~= "string" then return bad("give the identity's resource id as 'id'") end
    local arm = require("emu.arm")
    local res = arm.get(rid)
    if not res or res.type:lower() ~= "microsoft.managedidentity/userassignedidentities" then
      return errors.arm(404, "NotFound", "No user-assigned identity '" .. rid .. "'.")
    end
    local h = state.update("mihost:" .. host, function(h)
      for _, x in ipairs(h.user_assigned) do if x:lower() == res.id:lower() then return h end end
      h.user_assigned[#h.user_assigned + 1] = res.id
      h.user_assigned = json.array(h.user_assigned)
      return h
    end)
    return 200, { resource_id = h.resource_id, system = h.system or json.null,
      user_assigned = json.array(h.user_assigned) }
  end)
  route("DELETE", "/" .. host .. "/identities", function(req)
    local b = body_object(req, true)
    local rid = b.id or b.resource_id
    local h = state.update("mihost:" .. host, function(h)
      local out = json.array({})
      for _, x in ipairs(h.user_assigned) do
        if rid and x:lower() ~= rid:lower() then out[#out + 1] = x end
      end
      h.user_assigned = out
      return h
    end)
    return 200, { resource_id = h.resource_id, system = h.system or json.null,
      user_assigned = json.array(h.user_assigned) }
  end)
end

return M
