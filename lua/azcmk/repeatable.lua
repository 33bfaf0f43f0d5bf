--- Which requests are safe to send again when their first try's outcome is unknown, and
-- which failures leave that outcome unknown: the one table the retry rules (azcmk.retry) and
-- the clients' read-backs (azcmk.client.reconcile) go by. docs/read-back.md explains it.
--
-- A request is repeatable when sending it twice leaves Azure as sending it once: reads, and
-- writes that name their whole result (ARM's PUT, PATCH and DELETE must be idempotent by
-- ARM's resource provider contract). A POST is not, unless a rule below says it only reads
-- or changes nothing; a few Key Vault calls that look idempotent are not (every key import
-- or secret PUT makes a new version).
local url = require("azcmk.url")

local M = {}

-- Default by method, for requests no rule names.
M.METHODS = { GET = true, HEAD = true, OPTIONS = true, PUT = true, PATCH = true, DELETE = true, POST = false }

-- { method, host kind (nil: any), path pattern (Lua, matched on the lower-case path),
--   repeatable, why }. The first rule that matches decides.
M.RULES = {
  { "POST", "vault", "^/keys/[^/]+/create$", false, "every key create makes a new key version" },
  { "POST", "vault", "^/keys/[^/]+/rotate$", false, "every rotate makes a new key version" },
  { "PUT", "vault", "^/keys/[^/]+$", false, "every key import makes a new key version" },
  { "PUT", "vault", "^/secrets/[^/]+$", false, "every secret set makes a new secret version" },
  { "POST", "vault", "^/keys/restore$", false, "a second restore of the same backup is refused" },
  { "POST", "vault", "^/deletedkeys/[^/]+/recover$", false,
    "a second recover fails: the key is no longer deleted" },
  { "POST", "vault", "^/keys/[^/]+/backup$", true, "a backup only reads" },
  { "POST", "arm", "/list[^/]*$", true, "list actions (listKeys, listCredentials, ...) only read" },
  { "POST", "arm", "/checknameavailability$", true, "a name check only reads" },
  { "POST", "arm", "/deployments/[^/]+/validate$", true, "a deployment validation only reads" },
  { "POST", "arm", "/deployments/[^/]+/whatif$", true, "a what-if only reads" },
  { "POST", "arm", "^/subscriptions/[^/]+/providers/[^/]+/register$", true,
    "registering a provider twice is once" },
  -- role assignments are PUTs named by a GUID: the same PUT twice is one assignment, and a PUT
  -- under another name for the same principal, role and scope is refused (RoleAssignmentExists)
  { "PUT", "arm", "/providers/microsoft%.authorization/roleassignments/[^/]+$", true,
    "one name is one assignment; Azure refuses a second for the same principal, role and scope" },
  -- token endpoints (Entra ID, IMDS, App Service): a token request changes nothing
  { "POST", "authority", "/oauth2/", true, "a token request changes nothing" },
}
-- Key Vault and Managed HSM cryptographic operations change nothing
for _, kind in ipairs({ "vault", "hsm" }) do
  for _, op in ipairs({ "wrapkey", "unwrapkey", "encrypt", "decrypt", "sign", "verify" }) do
    table.insert(M.RULES, 1, { "POST", kind, "^/keys/[^/]+/[^/]*/?" .. op .. "$", true,
      "a cryptographic operation changes nothing" })
  end
end

local function path_of(req)
  local t = req.target or url.parse(req.url or "")
  return t and (t.path or "/"):lower() or "/"
end

--- repeatable, why for a request { method, url | target, host_kind, idempotent }: whether
-- it may be sent again when the outcome of an earlier try is unknown. The request's own
-- `idempotent` (true / false) wins: a caller that knows better says so.
function M.classify(req)
  if req.idempotent ~= nil then return req.idempotent == true, "marked by its caller" end
  local method = (req.method or "GET"):upper()
  local path = path_of(req)
  for _, r in ipairs(M.RULES) do
    if r[1] == method and (r[2] == nil or r[2] == req.host_kind) and path:find(r[3]) then
      return r[4], r[5]
    end
  end
  -- a token request sent outside the pipeline (credentials' own sender) has no host kind
  if method == "POST" and req.host_kind == nil and path:find("/oauth2/", 1, true) then
    return true, "a token request changes nothing"
  end
  local m = M.METHODS[method]
  if m == nil then return false, method .. " is not known to be idempotent" end
  return m, m and (method .. " is idempotent") or (method .. " may change something each time")
end

--- Whether a failed try surely did not reach the service's logic, so that even a
-- non-repeatable request may be sent again: the connection never carried it (phase
-- "connect"), or the service said it refused it unprocessed (429: throttled requests are not
-- processed, by Azure's throttling contract).
function M.not_applied(res, err)
  if err then return err.phase == "connect" end
  return res ~= nil and res.status == 429
end

--- Whether a failure leaves a write's outcome unknown: the request may have been applied
-- although no success came back (a connection dropped or timed out after sending, a 5xx
-- answer, a time budget that ran out between tries). Takes a structured error
-- (azcmk.errors, the transport contract's codes).
function M.ambiguous(err)
  if type(err) ~= "table" then return false end
  if err.outcome == "unknown" then return true end
  if err.phase == "io" then return true end
  if err.kind == "timeout" then return true end
  local s = tonumber(err.status)
  return s ~= nil and s >= 500
end

return M
