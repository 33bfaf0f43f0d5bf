--- Stand-in for spec/support/emulator.lua until it lands: the same calls the pipeline specs
-- use (ensure, seed, control), over the real emulator started by bin/azcmk.
local cjson = require("cjson.safe")

local M = {}

local env

local VARS = { "AZCMK_CONNECT_TO", "AZCMK_CA_FILE", "AZURE_TENANT_ID", "AZURE_CLIENT_ID",
  "AZURE_CLIENT_SECRET",
               "AZURE_SUBSCRIPTION_ID", "AZCMK_EMULATOR_DIR" }

function M.ensure()
  if env then return env end
  env = {}
  if os.getenv("AZCMK_EMULATOR_DIR") and os.getenv("AZCMK_CONNECT_TO") then
    for _, k in ipairs(VARS) do env[k] = os.getenv(k) end
    return env
  end
  local port = os.getenv("AZCMK_PIPELINE_TEST_PORT") or "18643"
  local f = assert(io.popen("./bin/azcmk emulator start --port " .. port ..
    " --dir build/pipeline-emulator 2>/dev/null"))
  local out = f:read("*a")
  f:close()
  for k, v in out:gmatch("export ([%w_]+)='([^']*)'") do env[k] = v end
  assert(env.AZCMK_CONNECT_TO, "could not start the emulator: " .. out)
  return env
end

local client
function M.control(method, path, body)
  local e = M.ensure()
  if not client then client = require("azcmk.http").new({}, e) end
  local res = assert(client:request({ method = method,
    url = "https://management.azure.com/_emulator/" .. path,
    headers = { ["Content-Type"] = "application/json" },
    body = body ~= nil and (type(body) == "string" and body or cjson.encode(body)) or nil }))
  res.json = cjson.decode(res.body or "")
  return res
end

function M.seed()
  return M.control("GET", "seed").json
end

return M
