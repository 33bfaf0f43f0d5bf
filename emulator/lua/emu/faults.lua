--- emu.faults: injected failures (POST/DELETE /_emulator/faults), the ones Azure makes. Rules
-- live in the shared dict so every worker applies them; control paths (/_emulator/) never fault.
-- A rule matches on `host` (exact or "*.suffix"), `service` (host kind or a list: "arm",
-- "vault", "login", "msi", "acr", "hsm"), `path` (prefix, case-insensitive; "*" matches any
-- run of characters, e.g. "*/operationStatuses/") and `method`; `count` limits how often it
-- fires, `ratio` (0..1) makes it fire at random, `seed` makes those draws reproducible (the
-- n-th matching request decides the same way on every run).
-- What it does (an action): `status` (+ `retry_after`, `code`, `message`, `headers`) answers an
-- error in the service's envelope (429 in Azure's throttling shape); `drop` closes the
-- connection without an answer (nginx 444: HTTP/1.1 connection closed, HTTP/2 stream reset);
-- `delay_ms` waits first (a bare delay: the request is processed after the wait, even when its
-- client gave up meanwhile: applied late); `lro_fail` lets the request run but makes the
-- long-running operation it starts end Failed. By default the action replaces the request;
-- with `after = true` the request is processed first and the action hits its answer: a write
-- applied whose answer is lost, slow or an error.
-- `pick` draws one action per firing from a list of actions, or "all": every kind Azure makes
-- for the request's service (docs/emulator.md lists them).
local json = require("emu.json")
local errors = require("emu.errors")

local M = {}

local meta = ngx.shared.emu_meta
local KEY = "faults"

local cache, cache_ver -- per-worker decoded copy, refreshed when the version changes

local function load()
  local ver = meta:get("faults:ver") or 0
  if cache and cache_ver == ver then return cache end
  cache = json.decode(meta:get(KEY) or "[]") or {}
  cache_ver = ver
  return cache
end

function M.list()
  return load()
end

local ACTION = { status = "number", retry_after = "number", code = "string", message = "string", headers = "table",
  delay_ms = "number", drop = "boolean", after = "boolean", lro_fail = "boolean" }
local MATCH = { host = "string", service = "any", path = "string", method = "string", count = "number",
  ratio = "number", seed = "number", pick = "any" }
local SERVICES = { arm = true, vault = true, hsm = true, login = true, msi = true, acr = true }

--- The mix of `pick: "all"`, per service: every kind of failure Azure's endpoints make (a
-- rule's own delay_ms adds the slow answers: processed then late, and late then processed).
M.ALL = {
  arm = { { status = 429, retry_after = 1 }, { status = 500 }, { status = 503, retry_after = 1 }, { drop = true },
    { drop = true, after = true }, { status = 500, after = true }, { lro_fail = true } },
  vault = { { status = 429 }, { status = 500 }, { status = 503 }, { drop = true }, { drop = true, after = true },
    { status = 500, after = true } },
  login = { { status = 429, retry_after = 1 }, { status = 500 }, { status = 503 }, { drop = true } },
  msi = { { status = 429 }, { status = 500 }, { status = 503 }, { drop = true } },
  acr = { { status = 429 }, { status = 500 }, { status = 503 }, { drop = true }, { drop = true, after = true } },
}
M.ALL.hsm = M.ALL.vault

local function check_fields(r, allowed, what)
  for k, v in pairs(r) do
    local t = allowed[k] or ACTION[k]
    if not t then return nil, what .. ": unknown field '" .. tostring(k) .. "'" end
    if t ~= "any" and type(v) ~= t then return nil, what .. ": '" .. k .. "' must be a " .. t end
  end
  return true
end

-- Checks one action (a rule's own fields, or an element of `pick`); nil, message when wrong.
local function check_action(a, what)
  if not (a.status or a.drop or a.delay_ms or a.lro_fail) then
    return nil, what .. ": give 'status', 'drop', 'delay_ms' or 'lro_fail'"
  end
  if a.status and not (a.status >= 100 and a.status <= 599) then return nil, what .. ": bad status" end
  if a.status and a.drop then return nil, what .. ": give 'status' or 'drop', not both" end
  if a.after and not (a.status or a.drop or a.delay_ms) then
    return nil, what .. ": 'after' needs 'status', 'drop' or 'delay_ms'"
  end
  for _, k in ipairs({ "retry_after", "delay_ms" }) do
    if a[k] and not (a[k] >= 0 and a[k] <= 3600000) then
      return nil, what .. ": '" .. k .. "' must be from 0 to 3600000"
    end
  end
  if a.headers then
    if not a.status then return nil, what .. ": 'headers' needs 'status'" end
    for k, v in pairs(a.headers) do
      if type(k) ~= "string" or not k:match("^[%w%-]+$") or type(v) ~= "string" or v:find("[\r\n]") then
        return nil, what .. ": 'headers' must map header names to one-line strings"
      end
    end
  end
  return true
end

-- Checks a rule; returns the rule to store (a copy) or nil, message.
local function check_rule(r, i)
  local what = "rule " .. i
  if type(r) ~= "table" or json.is_array(r) then return nil, what .. " is not an object" end
  local ok, err = check_fields(r, MATCH, what)
  if not ok then return nil, err end
  if r.count and not (r.count >= 0 and r.count <= 3600000) then return nil, what .. ": 'count' must be 0..3600000" end
  if r.ratio and not (r.ratio >= 0 and r.ratio <= 1) then return nil, what .. ": ratio must be 0..1" end
  if r.seed and not (r.seed >= 0 and r.seed < 2 ^ 53) then return nil, what .. ": 'seed' must be a whole number" end
  if r.service ~= nil then
    local list = type(r.service) == "table" and r.service or { r.service }
    if #list == 0 then return nil, what .. ": 'service' must be a host kind or a list of them" end
    for _, s in ipairs(list) do
      if not SERVICES[s] then
        return nil, what .. ": 'service' must be one of arm, vault, hsm, login, msi, acr (or a list of them)"
      end
    end
  end
  if r.pick ~= nil then
    if r.pick == "all" then
      for k in pairs(ACTION) do
        if r[k] ~= nil and k ~= "delay_ms" then
          return nil, what .. ": with pick \"all\" only 'delay_ms' (the slow answers' delay) may be given"
        end
      end
    elseif type(r.pick) == "table" and json.is_array(r.pick) and #r.pick > 0 then
      for k in pairs(ACTION) do
        if r[k] ~= nil then return nil, what .. ": give the actions inside 'pick', not beside it" end
      end
      for j, a in ipairs(r.pick) do
        local w = what .. ", pick " .. j
        if type(a) ~= "table" or json.is_array(a) then return nil, w .. " is not an object" end
        ok, err = check_fields(a, {}, w)
        if ok then ok, err = check_action(a, w) end
        if not ok then return nil, err end
      end
    else
      return nil, what .. ": 'pick' must be \"all\" or a non-empty list of actions"
    end
  else
    ok, err = check_action(r, what)
    if not ok then return nil, err end
  end
  local rule = json.decode(json.encode(r))
  if rule.status then rule.status = math.floor(rule.status) end
  for _, a in ipairs(type(rule.pick) == "table" and rule.pick or {}) do
    if a.status then a.status = math.floor(a.status) end
  end
  return rule
end

--- Validates and appends rules; returns the full list or nil, message.
function M.add(rules)
  if type(rules) ~= "table" or #rules == 0 then return nil, "'rules' must be a non-empty array" end
  local out = json.array({})
  for _, r in ipairs(load()) do out[#out + 1] = r end
  local new = {}
  for i, r in ipairs(rules) do
    local rule, err = check_rule(r, i)
    if not rule then return nil, err end
    new[#new + 1] = rule
  end
  for _, rule in ipairs(new) do
    rule.id = meta:incr("faults:seq", 1, 0)
    out[#out + 1] = rule
  end
  meta:set(KEY, json.encode(out))
  meta:incr("faults:ver", 1, 0)
  return out
end

function M.clear()
  meta:set(KEY, "[]")
  meta:incr("faults:ver", 1, 0)
end

local function host_match(pat, host)
  pat = pat:lower()
  if pat:sub(1, 2) == "*." then return host:sub(-(#pat - 1)) == pat:sub(2) end
  return pat == host
end

-- Path prefix, case-insensitive; "*" matches any run of characters (also "/").
local function path_match(pat, path)
  pat, path = pat:lower(), path:lower()
  if not pat:find("*", 1, true) then return path:sub(1, #pat) == pat end
  local lp = "^" .. pat:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*")
  return path:find(lp) ~= nil
end

local function service_match(s, kind)
  if type(s) == "string" then return s == kind end
  for _, x in ipairs(s) do if x == kind then return true end end
  return false
end

-- Two uniform draws in [0,1) for the n-th matching request of a rule: from its seed (the same
-- on every run, whichever worker answers) or from the worker's generator.
local function draws(r, n)
  if not r.seed then return math.random(), math.random() end
  local h = ngx.md5(string.format("%.0f:%d", r.seed, n))
  return tonumber(h:sub(1, 8), 16) / 4294967296, tonumber(h:sub(9, 16), 16) / 4294967296
end

--- The rule and action that fire for req, or nil. Counts the firing.
function M.match(req)
  local rules = load()
  if #rules == 0 then return nil end
  for _, r in ipairs(rules) do
    if (not r.host or host_match(r.host, req.host))
      and (not r.service or service_match(r.service, req.kind))
      and (not r.path or path_match(r.path, req.path))
      and (not r.method or r.method:upper() == req.method) then
      local u1, u2 = 0, 0
      if r.ratio or r.pick then u1, u2 = draws(r, meta:incr("faults:n:" .. r.id, 1, 0)) end
      if not r.ratio or u1 < r.ratio then
        local fired = meta:incr("faults:fired:" .. r.id, 1, 0)
        if not r.count or fired <= r.count then
          local action = r
          if r.pick then
            local list = r.pick
            if list == "all" then
              list = {}
              for _, a in ipairs(M.ALL[req.kind] or M.ALL.arm) do list[#list + 1] = a end
              if r.delay_ms then
                list[#list + 1] = { delay_ms = r.delay_ms, after = true }
                list[#list + 1] = { delay_ms = r.delay_ms }
              end
            end
            action = list[math.floor(u2 * #list) + 1]
          end
          return r, action
        end
      end
    end
  end
  return nil
end

-- A short name of an action for the request log: "status:503", "drop_after", "delay", ...
local function action_name(a)
  local n = a.status and ("status:" .. a.status) or (a.drop and "drop") or (a.lro_fail and "lro_fail") or "delay"
  if a.after then n = n:gsub("^(%w+)", "%1_after") end
  return n
end

-- The error answer of an action in the envelope of the request's service.
local function error_answer(req, a)
  local headers = {}
  if a.retry_after then headers["Retry-After"] = tostring(math.floor(a.retry_after)) end
  for k, v in pairs(a.headers or {}) do headers[k] = v end
  if a.status == 429 and not a.code and not a.message then
    if req.kind == "arm" then return require("emu.throttle").arm_fault(req, a.retry_after, headers) end
    if req.kind == "vault" or req.kind == "hsm" then
      return errors.kv(429, "Throttled", require("emu.throttle").KV_MESSAGE .. "VaultRequestTypeLimitReached", nil,
        headers)
    end
  end
  return errors.for_kind(req.kind, a.status, a.code, a.message, headers)
end

--- Applies a matching rule before the request is processed: nil to continue (normally, or to
-- act after processing: see after()), or the response triple.
function M.apply(req)
  local r, a = M.match(req)
  if not r then return nil end
  local ctx = ngx.ctx
  ctx.fault, ctx.fault_action = r.id, action_name(a)
  if a.after then
    ctx.fault_after = a
    return nil
  end
  if a.lro_fail then ctx.lro_fail = { code = a.code, message = a.message } end
  if a.delay_ms and a.delay_ms > 0 then
    -- The body is read first: a request that waits is then processed whether or not its
    -- client is still there (nginx could no longer read the body of one that went away).
    if not a.drop and not a.status then pcall(ngx.req.read_body) end
    ngx.sleep(a.delay_ms / 1000)
  end
  if a.drop then return ngx.exit(444) end
  if not a.status then return nil end
  return error_answer(req, a)
end

--- Acts on a processed request's answer when its rule said `after`: waits, then drops the
-- answer (the client sees a reset; the write stays done) or replaces it by the error. Returns
-- the response triple to send.
function M.after(req, status, body, headers)
  local a = ngx.ctx.fault_after
  if not a then return status, body, headers end
  if a.delay_ms and a.delay_ms > 0 then ngx.sleep(a.delay_ms / 1000) end
  if a.drop then return ngx.exit(444) end
  if a.status then return error_answer(req, a) end
  return status, body, headers
end

return M
