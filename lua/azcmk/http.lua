--- azcmk.http: the core's libcurl client, with transport defaults from the environment.
--
--   local http = require "azcmk.http"
--   local c = http.new{ timeout_ms = 10000 }
--   local res, err, code = c:request{ url = "https://management.azure.com/..." }
--
-- `new(opts [, env])` returns a core client (docs/core-api.md, "HTTP"). Defaults:
--   connect_to  AZCMK_CONNECT_TO (comma-separated HOST:PORT:CONNECT_HOST:CONNECT_PORT rules),
--               after the explicit opts.connect_to rules (libcurl uses the first match);
--   ca_file     AZCMK_CA_FILE unless opts.ca_file is given;
--   allow_http  169.254.169.254, 127.0.0.1, localhost, ::1 unless opts.allow_http is given.
-- `env` (optional table) replaces os.getenv for these variables, e.g. inside nginx,
-- which strips the environment, or in specs.
local core = require "azcmk.core"

local M = {}

M.DEFAULT_ALLOW_HTTP = { "169.254.169.254", "127.0.0.1", "localhost", "::1" }

local function getenv(env, name)
  local v
  if env ~= nil then v = env[name] else v = os.getenv(name) end
  if v == "" then return nil end
  return v
end

--- Splits "a:1:b:2, c:1:d:2" into trimmed, non-empty rules.
M.split_rules = require("azcmk.url").split_list

local function copy_list(t, what)
  if type(t) ~= "table" then error("azcmk.http.new: '" .. what .. "' must be a list of strings", 3) end
  local out = {}
  for i = 1, #t do out[i] = t[i] end
  return out
end

--- The options `new` passes to the core: opts merged with the environment's defaults.
function M.options(opts, env)
  if opts ~= nil and type(opts) ~= "table" then error("azcmk.http.new: opts must be a table", 2) end
  if env ~= nil and type(env) ~= "table" then error("azcmk.http.new: env must be a table", 2) end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  local rules = o.connect_to ~= nil and copy_list(o.connect_to, "connect_to") or {}
  for _, r in ipairs(M.split_rules(getenv(env, "AZCMK_CONNECT_TO"))) do rules[#rules + 1] = r end
  o.connect_to = rules
  if o.ca_file == nil then o.ca_file = getenv(env, "AZCMK_CA_FILE") end
  if o.allow_http == nil then o.allow_http = copy_list(M.DEFAULT_ALLOW_HTTP, "allow_http") end
  return o
end

function M.new(opts, env)
  return core.http_client(M.options(opts, env))
end

M.parse_header_line = core.parse_header_line

return M
