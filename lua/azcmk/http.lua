--- azcmk.http: the core's libcurl client, with the transport settings of the environment.
--
--   local http = require "azcmk.http"
--   local c = http.new{ timeout_ms = 10000 }
--   local res, err, code = c:request{ url = "https://management.azure.com/..." }
--
-- `new(opts [, env])` returns a core client (docs/core-api.md, "HTTP") made with the
-- transport contract's settings (azcmk.transport.contract.options): AZCMK_CONNECT_TO rules
-- after opts.connect_to, AZCMK_CA_FILE unless opts.ca_file, allow_http IMDS and loopback
-- unless given. `env` (optional table) replaces os.getenv for these variables, e.g. inside
-- nginx, which strips the environment, or in specs. Its errors are the core's (libcurl code
-- names); azcmk.transport.curl turns them into the contract's.
local core = require "azcmk.core"
local contract = require "azcmk.transport.contract"

local M = {}

M.DEFAULT_ALLOW_HTTP = contract.ALLOW_HTTP

--- Splits "a:1:b:2, c:1:d:2" into trimmed, non-empty rules.
M.split_rules = require("azcmk.url").split_list

--- The options `new` passes to the core: opts merged with the environment's defaults.
function M.options(opts, env)
  if opts ~= nil and type(opts) ~= "table" then error("azcmk.http.new: opts must be a table", 2) end
  if env ~= nil and type(env) ~= "table" then error("azcmk.http.new: env must be a table", 2) end
  local given = {}
  for k, v in pairs(opts or {}) do given[k] = v end
  for _, k in ipairs({ "connect_to", "allow_http" }) do
    if given[k] ~= nil and type(given[k]) ~= "table" then
      error("azcmk.http.new: '" .. k .. "' must be a list of strings", 2)
    end
  end
  given.env = env
  local o = contract.options(given)
  -- libcurl reads the proxy variables itself and the core merges the environment's no_proxy
  -- with an explicit list, so only that list is passed on
  o.https_proxy = nil
  o.no_proxy = opts and opts.no_proxy
  return o
end

function M.new(opts, env)
  return core.http_client(M.options(opts, env))
end

M.parse_header_line = core.parse_header_line

return M
