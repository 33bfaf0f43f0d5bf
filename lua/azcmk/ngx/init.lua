--- azcmk inside nginx (OpenResty / Debian's libnginx-mod-http-lua), the nginx face: a
-- pipeline whose Azure calls use cosockets in request and timer phases and whose tokens
-- live in a shared dict for all workers. docs/openresty.md; examples/nginx/.
--
--   -- content_by_lua_block / timer:
--   local p = require("azcmk.ngx").pipeline()        -- one per worker, made on first use
--   local res, err = p:arm("GET", "/subscriptions/" .. p.subscription .. "/resourcegroups",
--                          { api_version = "2021-04-01" })
--
-- Nothing does I/O at require time or when the pipeline is made.
local M = {}

M.TOKEN_DICT = "azcmk_tokens"

local pipelines = {}

-- The default credential chain, with a cache key that is the same in every worker before
-- any token was fetched (the chain's own key changes once it has picked a provider, which
-- would make each worker's first fetch miss the shared entry).
local function stable_default(opts)
  local cred, err = require("azcmk.credential.default").new({ getenv = opts.getenv, cloud = opts.cloud })
  if not cred then return nil, err end
  local keys = {}
  for i = 1, #(cred.providers or {}) do
    local ok, p = pcall(cred._provider, cred, i)
    if ok and type(p) == "table" and not p.failed and p.available and p:available() then
      keys[#keys + 1] = p:cache_key()
    end
  end
  local key = (cred.name or "default") .. "{" .. table.concat(keys, ";") .. "}"
  return setmetatable({ cache_key = function() return key end }, { __index = cred })
end

--- A new pipeline for nginx: the nginx face's composition root. opts as azcmk.new /
-- azcmk.pipeline.new, plus
--   token_dict   shared dict for tokens (default "azcmk_tokens"; false = per-worker cache)
--   lock_ttl, wait_s   the cross-worker fetch lock (azcmk.ngx.token_store)
-- The transport defaults to the phase-aware one: cosockets in request and timer phases,
-- libcurl where nginx has no cosockets (init, init_worker).
function M.new(opts)
  opts = opts or {}
  local options = require("azcmk.options")
  options.check(opts, options.merge(require("azcmk.pipeline").OPTIONS, { token_dict = "any?",
    lock_ttl = "number?", wait_s = "number?" }), "azcmk.ngx.new")
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local dict = o.token_dict
  if dict == nil then dict = M.TOKEN_DICT end
  o.token_dict, o.lock_ttl, o.wait_s = nil, nil, nil
  if o.transport == nil then
    o.transport = require("azcmk.transport.ngx").auto({ getenv = o.getenv,
      user_agent = require("azcmk.pipeline").user_agent(o.user_agent) })
  end
  if o.credential == nil then
    local cred, err = stable_default(o)
    if not cred then return nil, err end
    o.credential = cred
  end
  if dict and o.token_cache == nil then
    o.token_cache = require("azcmk.ngx.token_store").cache({ dict = dict, lock_ttl = opts.lock_ttl,
      wait_s = opts.wait_s })
  end
  return require("azcmk.compose").pipeline(o)
end

--- The worker's pipeline named `name` (default "default"), made on first use with opts.
function M.pipeline(opts, name)
  name = name or "default"
  local p = pipelines[name]
  if p then return p end
  local err
  p, err = M.new(opts)
  if not p then return nil, err end
  pipelines[name] = p
  return p
end

return M
