--- emu.seed: the seeded world. Reads DIR/seed.json (fixed ids + this start's secrets, written
-- by `azcmk emulator start`) and the keys in DIR at init; apply() writes the seeded state
-- (again on POST /_emulator/reset). M.data is what GET /_emulator/seed returns.
local json = require("emu.json")
local state = require("emu.state")
local directory = require("emu.directory")
local auth = require("emu.auth")
local rbac = require("emu.rbac")

local M = { data = nil, dir = nil }

local function readfile(path)
  local f, err = io.open(path, "rb")
  if not f then error("emulator: cannot read " .. path .. ": " .. tostring(err)) end
  local s = f:read("*a")
  f:close()
  return s
end

local core

local function key_info(pem)
  local pk = assert(core.pkey_from_pem(pem))
  local jwk = pk:jwk()
  local kid = core.b64url_encode(core.sha1(core.b64url_decode(jwk.n)))
  return { pkey = pk, kid = kid, jwk = jwk }
end

-- Workload identity: the emulator's OIDC issuer and the federated credential it matches.
M.OIDC_AUDIENCE = "api://AzureADTokenExchange"
M.OIDC_SUBJECT = "system:serviceaccount:azcmk:workload"

-- The second subscription of the tenant (Owner: the owner principal only), so that a vault in
-- another subscription than the registry can be rehearsed. Fixed id (sorted after the first).
M.SUBSCRIPTION2_ID = "7e4a1b2c-9d8e-4f70-8a1b-2c3d4e5f6a7b"
M.SUBSCRIPTION2_NAME = "azcmk-emulator-second"

function M.load(dir)
  core = require("azcmk.core")
  M.dir = dir
  local s = json.decode(readfile(dir .. "/seed.json"))
  if type(s) ~= "table" then error("emulator: bad " .. dir .. "/seed.json") end
  auth.signing = key_info(readfile(dir .. "/signing.key"))
  auth.oidc = key_info(readfile(dir .. "/oidc.key"))
  local cert_pem = readfile(dir .. "/sp-cert.pem")
  local bundle = assert(core.load_pem(cert_pem))
  local tid, sub = s.tenant_id, s.subscription_id
  local d = {
    tenant_id = tid, subscription_id = sub, subscription_name = s.subscription_name,
    subscription2_id = s.subscription2_id or M.SUBSCRIPTION2_ID,
    subscription2_name = s.subscription2_name or M.SUBSCRIPTION2_NAME,
    port = s.port, http_port = s.http_port, dir = dir,
    owner = {
      app_id = s.owner_app_id, object_id = s.owner_object_id, display_name = "azcmk-emulator-owner",
      client_secret = s.owner_client_secret,
      certificate_file = dir .. "/sp-cert.pem", pkcs12_file = dir .. "/sp-cert.p12",
      pkcs12_password = s.p12_password,
      x5t = bundle.cert:x5t(), x5t_s256 = bundle.cert:x5t_s256(),
    },
    noaccess = { app_id = s.noaccess_app_id, object_id = s.noaccess_object_id,
      display_name = "azcmk-emulator-noaccess", client_secret = s.noaccess_client_secret },
    vm = {
      resource_id = "/subscriptions/" .. sub .. "/resourceGroups/azcmk-emulator/providers/" ..
        "Microsoft.Compute/virtualMachines/rehearsal-vm",
      principal_id = s.vm_principal_id, client_id = s.vm_client_id,
      imds_endpoint = "http://169.254.169.254/metadata/identity/oauth2/token",
    },
    appservice = {
      resource_id = "/subscriptions/" .. sub .. "/resourceGroups/azcmk-emulator/providers/Microsoft.Web/sites/" ..
        "rehearsal-app",
      principal_id = s.appservice_principal_id, client_id = s.appservice_client_id,
      identity_endpoint = "http://127.0.0.1:" .. s.http_port .. "/msi/token",
      identity_header = s.identity_header,
    },
    workload = {
      app_id = s.owner_app_id, issuer = "https://oidc.emulator.azcmk.invalid/" .. tid .. "/",
      subject = M.OIDC_SUBJECT, audience = M.OIDC_AUDIENCE, token_file = dir .. "/federated-token",
    },
    role_definitions = { owner = rbac.OWNER, contributor = rbac.CONTRIBUTOR, reader = rbac.READER,
      key_vault_crypto_service_encryption_user = rbac.KV_CRYPTO_SERVICE_ENCRYPTION_USER },
  }
  bundle.cert:close()
  M.data = d
  M.cert_pem = cert_pem
  return d
end

--- A federated (workload identity) token from the emulator's OIDC issuer.
-- opts: sub, aud, lifetime (s), iss. Uses real time: the kubelet's clock, not Azure's.
function M.federated_token(opts)
  opts = opts or {}
  local now = math.floor(ngx.now() + require("emu.clock").offset())
  local claims = {
    iss = opts.iss or M.data.workload.issuer, sub = opts.sub or M.OIDC_SUBJECT,
    aud = json.array({ opts.aud or M.OIDC_AUDIENCE }), iat = now, nbf = now, exp = now + (opts.lifetime or 3600),
    ["kubernetes.io"] = { namespace = "azcmk", serviceaccount = { name = "workload" } },
  }
  local header = { alg = "RS256", kid = auth.oidc.kid, typ = "JWT" }
  return core.jwt_sign(json.encode(header), json.encode(claims), auth.oidc.pkey, "RS256"), claims
end

-- chmod through the FFI inside nginx (no fork), the shell elsewhere.
local function chmod600(path)
  local okf, ffi = pcall(require, "ffi")
  if okf then
    pcall(ffi.cdef, "int chmod(const char *path, unsigned int mode);")
    return ffi.C.chmod(path, 384) == 0 -- 0600
  end
  return os.execute("chmod 600 '" .. path:gsub("'", "'\\''") .. "'")
end

--- DIR/federated-token (0600: it is a credential): written to a private temporary file first,
-- then renamed over the old one, so it is never readable by others, not even for a moment.
function M.write_federated_token(tok)
  local path = M.dir .. "/federated-token"
  local tmp = path .. ".tmp." .. tostring(ngx and ngx.worker and ngx.worker.pid() or 0)
  local f = io.open(tmp, "wb")
  if not f then return end
  chmod600(tmp)
  f:write(tok)
  f:close()
  os.rename(tmp, path)
end

local function role_assignment(guid, scope, role, principal, ptype)
  local id = scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. guid
  local ra = {
    id = id, type = "Microsoft.Authorization/roleAssignments", name = guid,
    properties = {
      roleDefinitionId = "/providers/Microsoft.Authorization/roleDefinitions/" .. role,
      principalId = principal, principalType = ptype or "ServicePrincipal", scope = scope,
      condition = json.null, conditionVersion = json.null,
      createdOn = "2026-01-01T00:00:00.0000000Z", updatedOn = "2026-01-01T00:00:00.0000000Z",
      createdBy = json.null, updatedBy = json.null, delegatedManagedIdentityResourceId = json.null,
      description = json.null,
    },
  }
  state.put("arm:" .. id:lower(), ra)
  rbac.index_add(principal, id)
end

--- Writes the seeded state (after a flush).
local function subscription(id, name, tid)
  state.put("sub:" .. id:lower(), {
    id = "/subscriptions/" .. id, subscriptionId = id, tenantId = tid,
    displayName = name, state = "Enabled", authorizationSource = "RoleBased",
    managedByTenants = json.array({}),
    subscriptionPolicies = { locationPlacementId = "Public_2014-09-01", quotaId = "PayAsYouGo_2014-09-01",
      spendingLimit = "Off" },
  })
end

--- One more subscription (control API: fleets), the seeded owner an Owner of it.
function M.add_subscription(id, name)
  local d = M.data
  subscription(id, name, d.tenant_id)
  role_assignment(ngx.md5("owner:" .. id):gsub("^(........)(....).(...).(...)(............).*$",
    "%1-%2-4%3-8%4-%5"), "/subscriptions/" .. id, rbac.OWNER, d.owner.object_id)
end

function M.apply()
  local d = M.data
  subscription(d.subscription_id, d.subscription_name, d.tenant_id)
  subscription(d.subscription2_id, d.subscription2_name, d.tenant_id)
  state.put("tenant:" .. d.tenant_id:lower(), { tenantId = d.tenant_id, domain = "azcmkemulator.onmicrosoft.com" })
  directory.add({ objectId = d.owner.object_id, appId = d.owner.app_id, displayName = d.owner.display_name,
    kind = "app" })
  directory.set_credentials(d.owner.app_id, {
    secrets = { d.owner.client_secret },
    certs = { { x5t = d.owner.x5t, x5t_s256 = d.owner.x5t_s256, pem = M.cert_pem } },
    federated = { { name = "azcmk-workload", issuer = d.workload.issuer, subject = d.workload.subject,
      audiences = { d.workload.audience } } },
  })
  directory.add({ objectId = d.noaccess.object_id, appId = d.noaccess.app_id, displayName = d.noaccess.display_name,
    kind = "app" })
  directory.set_credentials(d.noaccess.app_id, { secrets = { d.noaccess.client_secret } })
  directory.add({ objectId = d.vm.principal_id, appId = d.vm.client_id, displayName = "rehearsal-vm",
    kind = "managedIdentity", resourceId = d.vm.resource_id })
  directory.add({ objectId = d.appservice.principal_id, appId = d.appservice.client_id,
    displayName = "rehearsal-app", kind = "managedIdentity", resourceId = d.appservice.resource_id })
  -- Managed identity hosts: the VM (IMDS) and the App Service (identity endpoint).
  state.put("mihost:vm", { resource_id = d.vm.resource_id, system = d.vm.principal_id,
    user_assigned = json.array({}) })
  state.put("mihost:appservice", { resource_id = d.appservice.resource_id, system = d.appservice.principal_id,
    user_assigned = json.array({}) })
  local subscope = "/subscriptions/" .. d.subscription_id
  role_assignment("1a6b2c3d-0000-4000-8000-00000000a001", subscope, rbac.OWNER, d.owner.object_id)
  role_assignment("1a6b2c3d-0000-4000-8000-00000000a002", subscope, rbac.OWNER, d.vm.principal_id)
  role_assignment("1a6b2c3d-0000-4000-8000-00000000a003", subscope, rbac.OWNER, d.appservice.principal_id)
  role_assignment("1a6b2c3d-0000-4000-8000-00000000a004", "/subscriptions/" .. d.subscription2_id, rbac.OWNER,
    d.owner.object_id)
end

return M
