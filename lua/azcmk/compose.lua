--- What each face (a script's azcmk.new, the `azcmk` command line, the nginx helpers
-- azcmk.ngx) does once to serve its callers: build the transport, the credential and the
-- pipeline, from options and the environment, and hand the pipeline down. The face
-- decides what depends on where it runs (which transport, which token cache); the rest is
-- the same for all and lives here.
local pipeline = require("azcmk.pipeline")

local M = {}

--- A pipeline with the defaults of every face. opts are azcmk.pipeline.new's, plus
--   transport     a built transport (default: azcmk.transport.curl with the environment's
--                 AZCMK_CONNECT_TO / AZCMK_CA_FILE and the pipeline's user agent)
--   credential    default: the DefaultAzureCredential chain (environment, workload identity,
--                 managed identity, Azure CLI)
--   subscription  default: AZURE_SUBSCRIPTION_ID
--   operation_id  default: AZCMK_OPERATION_ID (docs/read-back.md)
--   getenv        replaces os.getenv for all of the above (nginx strips the environment)
-- Returns the pipeline, or nil, err (an invalid cloud, AZURE_TOKEN_CREDENTIALS, ...). No
-- network I/O happens here.
function M.pipeline(opts)
  opts = opts or {}
  require("azcmk.options").check(opts, pipeline.OPTIONS, "azcmk.compose.pipeline")
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local getenv = o.getenv or os.getenv
  if o.subscription == nil then
    local s = getenv("AZURE_SUBSCRIPTION_ID")
    if s and s ~= "" then o.subscription = s end
  end
  if o.operation_id == nil then
    local s = getenv("AZCMK_OPERATION_ID")
    if s and s ~= "" then o.operation_id = s end
  end
  if o.transport == nil then
    o.transport = require("azcmk.transport.curl").new({ getenv = o.getenv,
      user_agent = pipeline.user_agent(o.user_agent) })
  end
  if o.credential == nil then
    local cred, err = require("azcmk.credential.default").new({ getenv = o.getenv, cloud = o.cloud })
    if not cred then return nil, err end
    o.credential = cred
  end
  return pipeline.new(o)
end

return M
