local credential = require("azcmk.credential")
local chain = require("azcmk.credential.chain")
local managed_identity = require("azcmk.credential.managed_identity")
local app_service = require("azcmk.credential.app_service")
local errors = require("azcmk.errors")
local base = require("azcmk.credential.base")

local function env(t) return function(k) return t[k] end end

local function fixed(name, result)
  local c = base.new(base.class(name), {})
  c.get_token = function()
    if type(result) == "string" then return base.token({ token = result, expires_on = os.time() + 3600 }) end
    return nil, result
  end
  return c
end

describe("azcmk.credential (unit)", function()
  it("builds without any I/O and reports why a credential is unavailable", function()
    local c = credential.client_secret({ tenant_id = "t", client_id = "c" })
    local ok, why = c:available()
    assert.is_false(ok); assert.truthy(why:find("client_secret", 1, true))
    local tok, err = c:get_token("https://management.azure.com/.default")
    assert.is_nil(tok); assert.is_true(err.unavailable)
    assert.falsy(tostring(credential.client_secret({ tenant_id = "t", client_id = "c",
      client_secret = "S3CR3T" }))
      :find("S3CR3T", 1, true))
  end)

  it("chain: remembers the first provider that works", function()
    local calls = 0
    local a = fixed("A", base.unavailable("A", "not configured"))
    local b = fixed("B", "tok-b")
    local orig = b.get_token
    b.get_token = function(...) calls = calls + 1; return orig(...) end
    local ch = chain.new({ a, b })
    assert.equal("tok-b", ch:get_token("s").token)
    assert.equal("tok-b", ch:get_token("s").token)
    assert.equal(b, ch.selected)
    assert.equal(2, calls)
  end)

  it("chain: one error naming every provider and its reason", function()
    local ch = chain.new({
      fixed("EnvironmentCredential", base.unavailable("EnvironmentCredential",
        "AZURE_CLIENT_SECRET not set")),
      fixed("WorkloadIdentityCredential", base.unavailable("WorkloadIdentityCredential",
        "AZURE_FEDERATED_TOKEN_FILE not set")),
      fixed("ManagedIdentityCredential", base.unavailable("ManagedIdentityCredential",
        "IMDS endpoint not reachable")),
    }, { name = "DefaultAzureCredential" })
    local tok, err = ch:get_token("https://management.azure.com/.default")
    assert.is_nil(tok)
    assert.equal("auth", err.kind); assert.equal("CredentialUnavailable", err.code)
    local s = tostring(err)
    for _, frag in ipairs({ "EnvironmentCredential: AZURE_CLIENT_SECRET not set",
      "WorkloadIdentityCredential: AZURE_FEDERATED_TOKEN_FILE not set",
      "ManagedIdentityCredential: IMDS endpoint not reachable" }) do
      assert.truthy(s:find(frag, 1, true), frag)
    end
    assert.equal(3, #err.attempts)
  end)

  it("chain: an authentication failure stops the chain and is reported", function()
    local bad = errors.new("auth", { code = "AADSTS7000215", status = 401, message = "invalid secret" })
    local ch = chain.new({ fixed("EnvironmentCredential", bad), fixed("ManagedIdentityCredential", "tok") })
    local tok, err = ch:get_token("s")
    assert.is_nil(tok)
    assert.equal("AADSTS7000215", err.code)
    assert.truthy(tostring(err):find("ManagedIdentityCredential: not tried", 1, true))
    local ch2 = chain.new({ fixed("E", bad), fixed("M", "tok") }, { continue_on_failure = true })
    assert.equal("tok", ch2:get_token("s").token)
  end)

  it("default(): the SDK order, narrowed by AZURE_TOKEN_CREDENTIALS", function()
    local d = credential.default({ getenv = env({}) })
    local names = {}
    for _, p in ipairs(d.providers) do names[#names + 1] = p.name end
    assert.same({ "EnvironmentCredential", "WorkloadIdentityCredential", "ManagedIdentityCredential",
                  "AzureCliCredential" }, names)
    assert.equal(3, #credential.default({ getenv = env({ AZURE_TOKEN_CREDENTIALS = "prod" }) }).providers)
    local dev = credential.default({ getenv = env({ AZURE_TOKEN_CREDENTIALS = "dev" }) })
    assert.equal(1, #dev.providers); assert.equal("AzureCliCredential", dev.providers[1].name)
    d = credential.default({ getenv = env({ AZURE_TOKEN_CREDENTIALS = "ManagedIdentityCredential" }) })
    assert.equal(1, #d.providers); assert.equal("ManagedIdentityCredential", d.providers[1].name)
    d = credential.default({ getenv = env({ AZURE_TENANT_ID = "t", AZURE_CLIENT_ID = "c",
      AZURE_CLIENT_SECRET = "s" }) })
    assert.equal("ClientSecretCredential", d.providers[1].inner.name)
    assert.equal("c", d.providers[3].client_id)         -- AZURE_CLIENT_ID doubles as user-assigned MI
    d = credential.default({ getenv = env({ AZURE_TENANT_ID = "t", AZURE_CLIENT_ID = "c",
                                            AZURE_CLIENT_CERTIFICATE_PATH = "/x.pem" }) })
    assert.equal("ClientCertificateCredential", d.providers[1].inner.name)
    local ok, why = credential.default({ getenv = env({}) }).providers[1]:available()
    assert.is_false(ok); assert.truthy(why:find("AZURE_TENANT_ID", 1, true))
  end)

  it("managed identity: picks the source from the environment", function()
    assert.equal("imds", managed_identity.source(env({})))
    assert.equal("app_service", managed_identity.source(env({ IDENTITY_ENDPOINT = "http://127.0.0.1:1/t",
                                                              IDENTITY_HEADER = "h" })))
    assert.is_nil((managed_identity.source(env({ IDENTITY_ENDPOINT = "x", IDENTITY_HEADER = "h",
                                                 IDENTITY_SERVER_THUMBPRINT = "t" }))))
    assert.is_nil((managed_identity.source(env({ IDENTITY_ENDPOINT = "x", IMDS_ENDPOINT = "y" }))))
    assert.equal("azure_ml", managed_identity.source(env({ MSI_ENDPOINT = "x", MSI_SECRET = "s" })))
    assert.equal("cloud_shell", managed_identity.source(env({ MSI_ENDPOINT = "x" })))
    assert.has_error(function() managed_identity.new({ client_id = "a", object_id = "b" }) end)
  end)

  it("app service: reads expires_on as epoch or date", function()
    assert.equal(1506484173, app_service.parse_expires_on("1506484173"))
    assert.equal(1506484173, app_service.parse_expires_on(1506484173))
    assert.equal(require("azcmk.clock").timegm(2026, 11, 22, 4, 0, 0),
                 app_service.parse_expires_on("11/22/2026 05:00:00 +01:00"))
  end)

  it("static: a given token, checked for scope and expiry", function()
    local s = credential.static({ token = "T", expires_on = os.time() + 60, scopes = { "a/.default" } })
    assert.equal("T", s:get_token("a/.default").token)
    local _, err = s:get_token("b/.default")
    assert.is_true(err.unavailable)
    local _, e2 = credential.static({ token = "T", expires_on = 1 }):get_token("a/.default")
    assert.equal("ExpiredAuthenticationToken", e2.code)
    assert.has_error(function() credential.static({ token = 5 }) end)
  end)

  it("Azure CLI: runs az without a shell-injectable argument and reads its answer", function()
    local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
    local az = dir .. "/az"
    local f = io.open(az, "w")
    f:write([=[#!/bin/sh
case "$*" in *"--tenant 'bad'"*|*"--tenant bad"*) echo "ERROR: Please run 'az login' to setup account."; exit
  1;; esac
echo '{"accessToken": "CLI-TOKEN-123456", "expires_on": 4102444800}'
]=])
    f:close()
    os.execute("chmod +x " .. az)
    local cli = credential.azure_cli({ getenv = env({ PATH = "/nonexistent:" .. dir }) })
    assert.is_true((cli:available()))
    local tok = assert(cli:get_token("https://management.azure.com/.default"))
    assert.equal("CLI-TOKEN-123456", tok.token)
    assert.equal(4102444800, tok.expires_on)
    local t2, err = cli:get_token("https://management.azure.com/.default", { tenant_id = "bad" })
    assert.is_nil(t2); assert.is_true(err.unavailable)
    assert.truthy(tostring(err):find("az login", 1, true))
    local _, e3 = cli:get_token("https://x/.default'; touch /tmp/pwned; '")
    assert.equal("InvalidScope", e3.code)
    local _, e4 = cli:get_token("https://x/.default", { tenant_id = "t;rm" })
    assert.equal("InvalidTenant", e4.code)
    local none = credential.azure_cli({ getenv = env({ PATH = "/nonexistent" }) })
    local ok, why = none:available()
    assert.is_false(ok); assert.truthy(why:find("not found", 1, true))
    os.execute("rm -rf " .. dir)
    assert.truthy(require("azcmk.credential.azure_cli").parse_local("2026-11-22 05:00:00.123456"))
  end)

  it("workload identity: re-reads the token file when it changes", function()
    local path = os.tmpname()
    local f = io.open(path, "w"); f:write("assertion-1\n"); f:close()
    local now = 1000
    local wi = credential.workload_identity({ tenant_id = "t", client_id = "c", token_file_path = path,
                                              getenv = env({}) })
    wi.ctx.now = function() return now end
    assert.equal("assertion-1", wi:assertion())
    f = io.open(path, "w"); f:write("assertion-2-longer"); f:close()
    assert.equal("assertion-2-longer", wi:assertion())
    now = now + 601
    assert.equal("assertion-2-longer", wi:assertion())
    os.remove(path)
    local _, err = wi:assertion()
    assert.equal("FederatedTokenUnreadable", err.code)
  end)
end)
