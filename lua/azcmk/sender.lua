--- One HTTP exchange without authentication: the retry and log policies in front of a
-- transport, for the token requests of credentials (Entra ID, IMDS, App Service), which
-- must not go through the bearer policy they serve.
-- ctx = { transport = t, log = logger|nil, retry = rules|nil, now = fn|nil, sleep = fn|nil }:
-- what the pipeline hands its credential (credential:attach).
local policy = require("azcmk.policy")
local retry_policy = require("azcmk.policy.retry")
local log_policy = require("azcmk.policy.log")

local M = {}

--- Send req through ctx.transport with retries and logging. opts (optional): retry (rules
-- for this exchange), budget (seconds), decide = function(req, res, err, attempt, now) ->
-- delay, why (replaces the rules' decision). Returns res (any status; res.attempts set) or
-- nil, err (network/timeout error, with err.attempts).
function M.send(ctx, req, opts)
  if not ctx.transport then error("azcmk.sender: ctx.transport is required", 2) end
  opts = opts or {}
  local chain = policy.chain({
    retry_policy.new(ctx, { rules = opts.retry, budget = opts.budget, decide = opts.decide }),
    log_policy.new(ctx),
  }, ctx.transport)
  return chain:send(req)
end

return M
