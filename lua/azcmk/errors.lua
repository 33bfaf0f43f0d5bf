--- Structured errors (docs/architecture.md "Where errors come from").
-- An error is a table { kind, status, code, message, request_id, hint, ... } with a
-- __tostring that never shows secrets. kind is one of: auth, http, azure, input, network,
-- timeout, io (a local read or write failed: the output on a full disk). Helpers build them
-- from ARM, Key Vault, Entra ID (AADSTS) and IMDS answers.
local cjson = require("cjson.safe")

local M = {}

local KINDS = { auth = true, http = true, azure = true, input = true, network = true, timeout = true,
  io = true }

--- What to do next, per known code (string codes) or HTTP status (number keys).
M.hints = {
  AuthorizationFailed = "the identity lacks an Azure RBAC role on this scope; grant one (e.g. Contributor) "
    .. "or use an identity that has it; role assignments can take a few minutes to propagate",
  InvalidAuthenticationToken = "the token was not accepted: check that the tenant, cloud and scope match "
    .. "the resource (AZURE_TENANT_ID, AZURE_CLOUD)",
  InvalidAuthenticationTokenTenant = "the token is for another tenant than the subscription's; "
    .. "set AZURE_TENANT_ID to the subscription's tenant",
  ExpiredAuthenticationToken = "the token expired; azcmk refreshes once automatically - check the "
    .. "clock of this machine if it keeps happening",
  AuthenticationFailed = "authentication failed; check the credential and the tenant",
  Unauthorized = "the request carried no valid token; check the credential and the cloud profile",
  ForbiddenByPolicy = "the vault's access policy does not grant this operation to the caller; add an "
    .. "access policy (keys: get, wrapKey, unwrapKey, ...) or switch the vault to RBAC",
  ForbiddenByRbac = "the vault uses Azure RBAC and the caller has no suitable role; assign e.g. "
    .. "'Key Vault Crypto Officer' (admin) or 'Key Vault Crypto Service Encryption User' (registry)",
  ForbiddenByFirewall = "the Key Vault firewall blocks this client; allow its address, use a private "
    .. "endpoint, or enable 'Allow trusted Microsoft services' for the registry",
  Forbidden = "access denied; check access policy / RBAC and the vault firewall",
  KeyNotFound = "the key does not exist in this vault; if it was deleted recently, recover it "
    .. "(`recover{}`) from soft delete",
  ObjectIsDeletedButRecoverable = "an object with this name is soft-deleted; recover it (`recover{}`) "
    .. "instead of creating it again, or purge it if you really mean to",
  ObjectIsBeingDeleted = "the object is still being deleted; wait and retry",
  VaultNotFound = "the vault does not exist (or is soft-deleted); check the name or recover the vault",
  ResourceGroupNotFound = "the resource group does not exist in this subscription; create it or check "
    .. "`resource_group` and `subscription`",
  ResourceNotFound = "the resource does not exist; check names, resource group and subscription",
  SubscriptionNotFound = "the subscription is unknown to this tenant; check AZURE_SUBSCRIPTION_ID and "
    .. "AZURE_TENANT_ID",
  InvalidApiVersionParameter = "the api-version is not supported for this resource type in this cloud",
  AADSTS7000215 = "invalid client secret: the secret is wrong or expired; create a new one and set "
    .. "AZURE_CLIENT_SECRET to its VALUE (not its id)",
  AADSTS700016 = "application not found in the tenant: check AZURE_CLIENT_ID and AZURE_TENANT_ID "
    .. "(and that the app has a service principal there)",
  AADSTS90002 = "tenant not found: check AZURE_TENANT_ID and the cloud (AZURE_CLOUD / AZURE_AUTHORITY_HOST)",
  AADSTS700027 = "the client assertion signature is invalid or the certificate is not registered on "
    .. "the app; upload the certificate's public part to the app registration",
  AADSTS700024 = "the client assertion is expired or not yet valid; check this machine's clock or "
    .. "the federated token file's freshness",
  AADSTS70021 = "no federated identity credential matches the token's issuer/subject; check the app's "
    .. "federated credentials",
  AADSTS7000222 = "the client secret expired; create a new one",
  CredentialUnavailable = "no credential could be used; see each provider's reason and configure one "
    .. "(environment variables, workload identity, managed identity)",
  ChallengeResourceMismatch = "the vault asked for a token for a resource that is not a parent domain of "
    .. "its host; the vault URL is probably wrong or hostile - see https://aka.ms/azsdk/blog/vault-uri",
  TLSVerificationFailed = "the server certificate could not be verified; set AZCMK_CA_FILE to your "
    .. "CA bundle (proxy or private CA); verification is never switched off",
  Timeout = "the call did not finish in time; check network reachability (proxy, firewall, private DNS) "
    .. "or raise the timeout",
  LroTimeout = "the long-running operation is still running; check its status later, or raise the timeout",
  OperationFailed = "the operation failed in Azure; see the message and the request id, fix the cause and "
    .. "run the command again",
  OperationCanceled = "the operation was canceled in Azure (often by a newer operation on the same "
    .. "resource); run the command again",
  InvalidVaultUrl = "give the vault as https://NAME.vault.azure.net (or the suffix of your cloud), or "
    .. "set AZURE_CLOUD to the cloud the vault belongs to",
  InsecureTokenTarget = "use an https:// URL; tokens are never sent over plain http",
  InvalidScope = "a scope looks like https://management.azure.com/.default",
  InvalidTenant = "set AZURE_TENANT_ID (or tenant_id) to the tenant's GUID or domain name",
  InvalidCloud = "set AZURE_CLOUD to AzureCloud, AzureChinaCloud or AzureUSGovernment, or pass a custom "
    .. "profile (cloud = {...}); endpoints must be https",
  InvalidAuthority = "set AZURE_AUTHORITY_HOST to an https URL such as https://login.microsoftonline.com",
  UntrustedNextLink = "the service returned a next page on another host; azcmk does not send the token there "
    .. "- check the endpoint (proxy, AZCMK_CONNECT_TO)",
  ChallengeMalformed = "the vault's 401 challenge is not one azcmk can use; check that the URL is really a "
    .. "Key Vault (AZCMK_CONNECT_TO, proxy)",
  ChallengeMissing = "the vault did not ask for a token; check that the URL is really a Key Vault "
    .. "(AZCMK_CONNECT_TO, proxy)",
  [429] = "throttled by Azure; azcmk already backed off - slow down or retry later",
  [503] = "the service is unavailable; azcmk already retried - retry later",
}

local mt = {}
mt.__index = mt

--- Scrub anything that looks like a token or secret out of free text.
function M.scrub(s)
  if type(s) ~= "string" then return s end
  -- JWTs (header always starts with eyJ)
  s = s:gsub("eyJ[%w%-_]+%.[%w%-_]+%.?[%w%-_]*", "[REDACTED]")
  -- bearer credentials
  s = s:gsub("([Bb]earer%s+)[%w%-_%.~%+/=]+", "%1[REDACTED]")
  -- key=value forms of secrets
  for _, k in ipairs({ "client_secret", "client_assertion", "access_token", "refresh_token",
                       "password", "sig", "secret" }) do
    s = s:gsub("(" .. k .. "%s*[=:]%s*\"?)[^\"&,%s]+", "%1[REDACTED]")
  end
  return s
end

function mt.__tostring(e)
  local parts = { e.kind or "error" }
  if e.status then parts[#parts + 1] = tostring(e.status) end
  if e.code then parts[#parts + 1] = tostring(e.code) end
  local s = table.concat(parts, " ")
  if e.message and e.message ~= "" then s = s .. ": " .. M.scrub(e.message) end
  if e.request_id then s = s .. " (request id " .. tostring(e.request_id) .. ")" end
  if e.hint then s = s .. " - hint: " .. e.hint end
  return s
end

function M.hint_for(code, status)
  if code ~= nil and M.hints[code] then return M.hints[code] end
  if type(code) == "string" then
    local aad = code:match("^(AADSTS%d+)")
    if aad and M.hints[aad] then return M.hints[aad] end
  end
  if status and M.hints[status] then return M.hints[status] end
  return nil
end

--- New structured error. fields: status, code, message, request_id, hint, retryable, ...
function M.new(kind, fields)
  if not KINDS[kind] then error("azcmk.errors: unknown error kind " .. tostring(kind), 2) end
  local e = {}
  for k, v in pairs(fields or {}) do e[k] = v end
  e.kind = kind
  if type(e.message) == "string" then e.message = M.scrub(e.message) end
  if e.hint == nil then e.hint = M.hint_for(e.code, e.status) end
  return setmetatable(e, mt)
end

function M.is_error(v) return getmetatable(v) == mt end

--- errors.is(err, x): x is a kind ("auth"), a code ("KeyNotFound", also matched against
-- outer and inner codes), or a status number.
function M.is(err, x)
  if type(err) ~= "table" then return false end
  if type(x) == "number" then return err.status == x end
  if err.kind == x or err.code == x then return true end
  if err.codes then
    for _, c in ipairs(err.codes) do if c == x then return true end end
  end
  return false
end

local function header(res, name)
  return res and res.headers and res.headers[name]
end

function M.request_id_of(res, body)
  local id = header(res, "x-ms-request-id") or header(res, "x-ms-client-request-id")
  if not id and type(body) == "table" then id = body.trace_id or body.correlation_id end
  return id
end

local function first_line(s)
  if type(s) ~= "string" then return s end
  return (s:match("^([^\r\n]*)")) or s
end

--- Parse an error body: ARM / Key Vault envelope, Entra ID OAuth error, IMDS error.
-- Returns code, message, codes (list, outer to inner), extra table.
function M.parse_body(body)
  local j = type(body) == "table" and body or (type(body) == "string" and cjson.decode(body))
  if type(j) ~= "table" then return nil end
  local e = j.error
  if type(e) == "table" then
    -- ARM common-types ErrorResponse, Key Vault KeyVaultError (innererror nests)
    local codes, code = {}, nil
    local cur, depth = e, 0
    while type(cur) == "table" and depth < 10 do
      if type(cur.code) == "string" then codes[#codes + 1] = cur.code; code = cur.code end
      cur = cur.innererror; depth = depth + 1
    end
    return code, e.message, codes, { target = e.target, details = e.details,
      additionalInfo = e.additionalInfo }
  elseif type(e) == "string" then
    -- OAuth: {"error":"invalid_client","error_description":"AADSTS7000215: ...","error_codes":[7000215]}
    local code, codes = e, { e }
    local ec = j.error_codes
    if type(ec) == "table" and tonumber(ec[1]) then
      code = "AADSTS" .. string.format("%d", tonumber(ec[1]))
      codes[#codes + 1] = code
    elseif type(j.error_description) == "string" then
      local a = j.error_description:match("^(AADSTS%d+)")
      if a then code = a; codes[#codes + 1] = a end
    end
    return code, first_line(j.error_description) or e, codes, { oauth_error = e }
  elseif type(j.errors) == "table" and type(j.errors[1]) == "table" then
    -- ACR data plane / Docker registry: {"errors":[{"code","message","detail"}]}
    local e1 = j.errors[1]
    return e1.code, e1.message, { e1.code }, { details = j.errors }
  elseif type(j.status) == "string" and j.code then
    return j.code, j.message, { j.code }, {}
  end
  return nil
end

--- Error from a non-2xx HTTP response. opts: kind (default: auth for 401, azure when the
-- body carries an Azure code, else http), message (fallback), hint.
function M.from_response(res, opts)
  opts = opts or {}
  local body = res.json
  if body == nil and type(res.body) == "string" and res.body ~= "" then body = cjson.decode(res.body) end
  local code, message, codes, extra = M.parse_body(body)
  local kind = opts.kind
  if not kind then
    if res.status == 401 or (extra and extra.oauth_error) then kind = "auth"
    elseif code then kind = "azure"
    else kind = "http" end
  end
  if not message then
    if res.status and res.status >= 300 and res.status < 400 then
      message = "unexpected redirect (" .. res.status .. ") to " .. tostring(header(res, "location"))
    else
      message = opts.message or ("HTTP " .. tostring(res.status))
    end
  end
  local e = M.new(kind, {
    status = res.status, code = code, codes = codes, message = message,
    request_id = M.request_id_of(res, body), hint = opts.hint,
    target = extra and extra.target, details = extra and extra.details,
  })
  if e.hint == nil and codes then
    for i = #codes, 1, -1 do
      local h = M.hint_for(codes[i]); if h then e.hint = h; break end
    end
  end
  if e.hint == nil then e.hint = M.hint_for(nil, res.status) end
  return e
end

function M.input(message, fields)
  local f = fields or {}
  f.message = message
  return M.new("input", f)
end

return M
