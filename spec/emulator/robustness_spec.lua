-- "Never a 500 for bad input": a sweep of odd requests over the emulator's own services
-- (Entra, managed identity, ARM types of this part, control API). Every answer must be a
-- 4xx/2xx in the service's envelope, and the internal-error counter must stay at 0.
local E = require("support.emulator")
local core = require("azcmk.core")

describe("robustness sweep", function()
  local seed, S
  setup(function()
    E.ensure()
    E.reset()
    seed = E.seed()
    S = "/subscriptions/" .. seed.subscription_id
    E.arm("PUT", S .. "/resourcegroups/sweep", { location = "westus" }, { api_version = "2024-11-01" })
  end)
  teardown(function()
    E.reset()
    E.assert_no_internal_errors()
  end)

  local BODIES = { "", "null", "{}", "[]", "[{}]", "0", "-1e999", '"x"', "{", '{"a":', "\0\1\2",
    '{"location":null}', '{"location":["westus"]}', '{"location":"westus","tags":null}',
    '{"location":"westus","tags":{"k":{"n":1}}}', '{"properties":null}', '{"properties":[]}',
    '{"properties":{"roleDefinitionId":[],"principalId":1,"principalType":{}}}',
    '{"rules":"x"}', '{"rules":[1]}', '{"rules":[{"status":1e9}]}', '{"advance":1e400}', '{"advance":null}',
    '{"lro":[]}', '{"lro":{"polls":"1"}}', '{"id":5}', '{"system":null}', string.rep("[", 200),
    '{"' .. string.rep("k", 5000) .. '":1}' }

  local function check(res, what, err)
    assert.truthy(res, what .. ": " .. tostring(err))
    assert.truthy(res.status < 500, what .. " -> " .. res.status .. " " .. tostring(res.body):sub(1, 300))
  end

  it("ARM routes with odd bodies, methods and api-versions", function()
    local tok = E.arm_token()
    local paths = {
      { S .. "/resourcegroups/sweep", "2024-11-01" },
      { S .. "/resourcegroups/sweep%20x", "2024-11-01" },
      { S .. "/resourceGroups/sweep/providers/Microsoft.ManagedIdentity/userAssignedIdentities/sw-id", "2024-11-30" },
      { S .. "/resourceGroups/sweep/providers/Microsoft.Authorization/roleAssignments/" .. core.uuid4(), "2022-04-01" },
      { S .. "/providers/Microsoft.Authorization/roleDefinitions/not-a-guid", "2022-04-01" },
      { S .. "/resources", "2021-04-01" },
      { S .. "/operationresults/does-not-exist", "2024-11-01" },
      { "/subscriptions", "2022-12-01" },
      { "/providers/Microsoft.Authorization/roleAssignments", "2022-04-01" },
    }
    for _, p in ipairs(paths) do
      for _, m in ipairs({ "GET", "PUT", "PATCH", "DELETE", "POST", "HEAD" }) do
        for _, b in ipairs(m == "GET" and { "" } or BODIES) do
          for _, api in ipairs({ p[2], "", "x", "2099-99-99" }) do
            local url = "https://management.azure.com" .. p[1] .. (api ~= "" and ("?api-version=" .. api) or "")
            local res, err = E.request({ method = m, url = url, body = b ~= "" and b or nil,
              headers = { Authorization = "Bearer " .. tok, ["Content-Type"] = "application/json" } })
            check(res, m .. " " .. url .. " " .. b:sub(1, 40), err)
            if m ~= "HEAD" and res.status >= 400 then
              assert.truthy(res.json and res.json.error and res.json.error.code, m .. " " .. url .. ": " .. res.body)
            end
          end
          if m == "GET" or m == "HEAD" then break end
        end
      end
    end
  end)

  it("odd filters and query strings", function()
    for _, f in ipairs({ "", "'", "resourceType eq", "name eq 'x' and", "and", "atScope() and atScope()",
      "assignedTo('')", "principalId eq 'zzz'", string.rep("a", 3000), "%00", "roleName eq ''" }) do
      for _, p in ipairs({ S .. "/resources", S .. "/providers/Microsoft.Authorization/roleAssignments",
        S .. "/providers/Microsoft.Authorization/roleDefinitions" }) do
        local r = E.arm("GET", p .. "?$filter=" .. E.urlencode(f), nil,
          { api_version = p:find("Authorization") and "2022-04-01" or "2021-04-01" })
        check(r, p .. " $filter=" .. f)
      end
    end
  end)

  it("Entra token endpoint with odd forms and headers", function()
    local url = "https://login.microsoftonline.com/" .. seed.tenant_id .. "/oauth2/v2.0/token"
    local base = "grant_type=client_credentials&client_id=" .. seed.owner.app_id
    local forms = {
      "", "=", "&&&", "grant_type", "grant_type=client_credentials&client_id=&scope=",
      "grant_type=client_credentials&client_id=%ZZ&scope=x",
      base .. "&scope=https://management.azure.com/.default" ..
        "&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=a.b.c",
      base .. "&scope=https://management.azure.com/.default" ..
        "&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=" ..
        core.b64url_encode('{"alg":"RS256","x5t":5}') .. "." .. core.b64url_encode('{"iss":[],"aud":{},"exp":"x"}') ..
        ".AAAA",
      base .. "&scope=https://management.azure.com/.default" ..
        "&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=" ..
        core.b64url_encode('{"alg":"RS256"}') .. "." .. core.b64url_encode('{"iss":"someone","sub":1,"aud":5}') ..
        ".AAAA",
      base .. "&scope=" .. string.rep("s", 4000),
    }
    for _, f in ipairs(forms) do
      for _, u in ipairs({ url, "https://login.microsoftonline.com/x/oauth2/v2.0/token",
        "https://login.microsoftonline.com/" .. seed.tenant_id .. "/oauth2/token" }) do
        local r = E.request({ method = "POST", url = u, body = f,
          headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } })
        check(r, u .. " " .. f:sub(1, 60))
        assert.truthy(r.status == 200 or (r.json and r.json.error and r.json.error_codes), r.body)
      end
    end
  end)

  it("managed identity endpoints with odd queries and headers", function()
    for _, q in ipairs({ "", "api-version", "api-version=2018-02-01&resource", "resource=&api-version=",
      "api-version=2018-02-01&resource=https://vault.azure.net&client_id=%00",
      "api-version=2018-02-01&api-version=2019-08-01&resource=https://vault.azure.net",
      "api-version=2018-02-01&resource=https://vault.azure.net&msi_res_id=" .. string.rep("x", 3000) }) do
      check(E.request({ url = "http://169.254.169.254/metadata/identity/oauth2/token?" .. q,
        headers = { Metadata = "true" } }), "imds " .. q)
      check(E.request({ url = seed.appservice.identity_endpoint .. "?" .. q,
        headers = { ["X-IDENTITY-HEADER"] = seed.appservice.identity_header } }), "appservice " .. q)
    end
  end)

  it("control API with odd bodies", function()
    for _, path in ipairs({ "clock", "faults", "config", "federated-token", "vm/identities", "appservice/identities",
      "reset" }) do
      for _, b in ipairs(BODIES) do
        for _, m in ipairs({ "POST", "DELETE" }) do
          local r = E.request({ method = m, url = "https://management.azure.com/_emulator/" .. path,
            body = b ~= "" and b or nil })
          check(r, m .. " " .. path .. " " .. b:sub(1, 40))
        end
      end
      E.control("DELETE", "faults")
      E.reset()
    end
  end)
end)
