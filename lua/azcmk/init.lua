--- azcmk: script the Azure Container Registry customer-managed-key life cycle from Lua.
-- The face for scripts, and its composition root: azcmk.new builds the transport, the
-- credential and the pipeline once (azcmk.compose); everything below gets them handed down
-- and never requires this module. Submodules load on first use, so `require "azcmk"` does
-- no I/O and stays cheap.
local M = { _VERSION = "0.1.0" }

local lazy = {
  core = "azcmk.core", http = "azcmk.http", crypto = "azcmk.crypto",
  pipeline = "azcmk.pipeline", credential = "azcmk.credential", cloud = "azcmk.cloud",
  errors = "azcmk.errors", log = "azcmk.log", retry = "azcmk.retry",
  client = "azcmk.client",
}

-- Inside nginx (a script run by content_by_lua, a timer, ...): the phase-aware transport,
-- cosockets where nginx allows them, so no call blocks the worker (docs/openresty.md).
local function in_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.get_phase) == "function"
end

--- A pipeline with sensible defaults: cloud from AZURE_CLOUD / AZURE_AUTHORITY_HOST, the
-- default credential chain (environment, workload identity, managed identity, Azure CLI),
-- logging from AZCMK_LOG, p.subscription from opts.subscription or AZURE_SUBSCRIPTION_ID,
-- the libcurl transport (inside nginx: the phase-aware cosocket one). opts are passed to
-- azcmk.pipeline.new (credential=, cloud=, transport=, per_call=, ...). No network I/O
-- happens until the first call.
function M.new(opts)
  opts = opts or {}
  require("azcmk.options").check(opts, require("azcmk.pipeline").OPTIONS, "azcmk.new")
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  if o.transport == nil and in_nginx() then
    o.transport = require("azcmk.transport.ngx").auto({ getenv = o.getenv,
      user_agent = require("azcmk.pipeline").user_agent(o.user_agent) })
  end
  return require("azcmk.compose").pipeline(o)
end

-- azcmk.playbook: the playbooks, each given a pipeline of azcmk.new{ getenv = o.getenv }
-- when the caller passes none (playbooks themselves only use the one they are given).
local function playbooks()
  local pb = require("azcmk.playbook")
  return setmetatable({}, {
    __index = function(t, k)
      local f = pb[k]
      if type(f) ~= "function" then return f end
      local function with_pipeline(o, ...)
        if o == nil or (type(o) == "table" and o.pipeline == nil) then
          local p, err = M.new({ getenv = o and o.getenv })
          if not p then return nil, err end
          local c = { pipeline = p }
          for key, v in pairs(o or {}) do c[key] = v end
          o = c
        end
        return f(o, ...)
      end
      rawset(t, k, with_pipeline)
      return with_pipeline
    end,
  })
end

return setmetatable(M, {
  __index = function(t, k)
    local mod
    if k == "playbook" then mod = playbooks()
    elseif lazy[k] then mod = require(lazy[k])
    else return nil end
    rawset(t, k, mod)
    return mod
  end,
})
