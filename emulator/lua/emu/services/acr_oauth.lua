--- emu.services.acr_oauth: the routes of the registry's token service (emu.acr.tokens has the
-- rules): POST /oauth2/exchange, POST and GET /oauth2/token on every login server.
-- Answers: 200 {"refresh_token"} / {"access_token"} (recorded ACR traffic); errors in ACR's
-- {"errors":[{code, message, detail}]} envelope with synthetic texts (ACR's are not recorded).
local router = require("emu.router")
local tokens = require("emu.acr.tokens")
local admin = require("emu.acr.admin")

local function acr() return require("emu.services.acr") end

local JSON = { ["Content-Type"] = "application/json; charset=utf-8" }

local function answer(req, body)
  local h = { ["X-Ms-Correlation-Request-Id"] = req.correlation_id,
    ["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains" }
  for k, v in pairs(JSON) do h[k] = v end
  return 200, body, h
end

local function refuse(req, status, code, message)
  local st, body, h = acr().error(req, status, code, message)
  h["Docker-Distribution-Api-Version"] = nil
  return st, body, h
end

local function registry(req)
  local rec = acr().registry_of(req)
  if rec then return rec end
  -- synthetic: real clients get a DNS failure for an unknown registry name.
  require("emu.errors").throw(refuse(req, 404, "NOT_FOUND", "registry '" .. req.host .. "' not found (in Azure " ..
    "the name would not resolve)"))
end

-- every value of a form or query field, in order (scope may repeat)
local function all(raw, name)
  local out = {}
  for pair in (raw or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if ngx.unescape_uri((k:gsub("+", " "))) == name then out[#out + 1] = ngx.unescape_uri((v:gsub("+", " "))) end
  end
  return out
end

local function check_service(req, service)
  if service ~= nil and service ~= "" and service:lower() ~= req.host then
    -- synthetic text:
    require("emu.errors").throw(refuse(req, 400, "BAD_REQUEST", "The service '" .. service .. "' does not match " ..
      "the registry '" .. req.host .. "'."))
  end
end

-- POST /oauth2/exchange
router.add({ kind = "acr", method = "POST", path = "/oauth2/exchange", handler = function(req)
  local rec = registry(req)
  local f = req:form()
  check_service(req, f.service)
  local grant = f.grant_type
  if grant ~= "access_token" and grant ~= "access_token_refresh_token" and grant ~= "refresh_token" then
    -- synthetic text:
    return refuse(req, 400, "UNSUPPORTED", "grant_type must be access_token, access_token_refresh_token or " ..
      "refresh_token.")
  end
  local claims
  if grant == "refresh_token" then
    local c = tokens.verify(f.refresh_token, req.host, "refresh_token")
    claims = c and { oid = c.sub, tid = c.tenant, appid = c.appid }
  else
    local why
    claims, why = tokens.check_entra(f.access_token or "", req.cloud)
    if not claims then
      -- synthetic text:
      return refuse(req, 401, "UNAUTHORIZED", "The access token is invalid (" .. tostring(why) .. "): an Azure AD " ..
        "access token for https://management.azure.com/ or https://containerregistry.azure.net is required.")
    end
  end
  if not claims then
    return refuse(req, 401, "UNAUTHORIZED", "The refresh token is invalid or expired.") -- synthetic
  end
  if f.tenant and f.tenant ~= "" and f.tenant:lower() ~= tostring(claims.tid):lower() then
    return refuse(req, 401, "UNAUTHORIZED", "The tenant '" .. f.tenant .. "' does not match the token.") -- synthetic
  end
  local _ = rec
  return answer(req, { refresh_token = tokens.refresh_token(req.host, claims) })
end })

--- Who asks for an access token: {kind = "aad" | "admin" | "anonymous", oid, tid} or nil, message.
local function caller(req, rec, form)
  local h = req:header("authorization")
  local user, pw
  if h then user, pw = tokens.basic(h) end
  if form and form.grant_type == "password" and (form.username or form.password) then
    user, pw = form.username, form.password
  end
  local refresh = form and form.grant_type == "refresh_token" and form.refresh_token or nil
  if user == tokens.TOKEN_USER then refresh = pw end
  if refresh and refresh ~= "" then
    local c = tokens.verify(refresh, req.host, "refresh_token")
    if not c then return nil, "The refresh token is invalid or expired." end -- synthetic
    return { kind = "aad", oid = c.sub, tid = c.tenant }
  end
  if user and user ~= "" then
    if admin.check(rec, user, pw) then return { kind = "admin", user = user } end
    return nil, "The username or password is incorrect, or the admin user is disabled." -- synthetic
  end
  if h and not user then return nil, "The Authorization header is not Basic credentials." end -- synthetic
  return { kind = "anonymous" }
end

local function token(req)
  local rec = registry(req)
  local form, raw
  if req.method == "POST" then
    raw = req:body()
    form = req:form()
    if form.grant_type ~= "refresh_token" and form.grant_type ~= "password" then
      -- synthetic text:
      return refuse(req, 400, "UNSUPPORTED", "grant_type must be refresh_token or password.")
    end
  else
    raw = ngx.var.args
  end
  local service = all(raw, "service")[1]
  check_service(req, service)
  local who, why = caller(req, rec, form)
  if not who then
    local st, body, h = refuse(req, 401, "UNAUTHORIZED", why)
    h["WWW-Authenticate"] = string.format('Basic realm="https://%s/oauth2/token"', req.host)
    return st, body, h
  end
  if who.kind == "anonymous" and rec.properties.anonymousPullEnabled ~= true then
    local st, body, h = refuse(req, 401, "UNAUTHORIZED", acr().AUTH_MESSAGE)
    h["WWW-Authenticate"] = string.format('Basic realm="https://%s/oauth2/token"', req.host)
    return st, body, h
  end
  local access = tokens.grant(who, rec, tokens.parse_scopes(all(raw, "scope")))
  return answer(req, { access_token = tokens.access_token(req.host, who, access,
    form and form.grant_type or (who.kind == "anonymous" and "anonymous" or "password")) })
end

router.add({ kind = "acr", method = { "POST", "GET" }, path = "/oauth2/token", handler = token })
