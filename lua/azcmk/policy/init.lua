--- Pipeline policies: the steps every call of a pipeline goes through, one file each
-- (lua/azcmk/policy/*.lua), chained in a fixed order in front of a transport
-- (docs/pipeline.md, "Policies"):
--
--   request_id, user_agent, [per_call ...], response, retry, [per_retry ...], challenge,
--   bearer, log -> transport
--
-- A policy is a table with a `send` method:
--
--   function policy:send(req, next)
--     -- before: look at or change req (req.headers, req.url, ...)
--     local res, err, raw = next:send(req)
--     -- after: look at what came back
--     return res, err, raw
--   end
--
-- `next:send(req)` runs the rest of the chain. Inside `response` a call returns the
-- transport's answer (any status) or nil, err; outside it, the pipeline's result: res (2xx,
-- JSON decoded) or nil, err (structured), raw. So a per-call policy sees each call once,
-- after retries, as p:send's caller will; a per-retry policy sees every try with its raw
-- status, before the token is added. A policy may answer without calling next (a cache, a
-- refusal: return nil, err).
--
-- req carries, besides method, url, headers, body and timeout_ms (what reaches the
-- transport): target (the parsed URL), host_kind ("arm", "vault", ... of the cloud profile),
-- scope, tenant, auth, idempotent and, inside retry, attempt. A policy below retry sets
-- req.final = true to stop the retry loop for an error of its own making (no token, a
-- refused target). Policies hold no per-call state of their own: they are shared by every
-- call of their pipeline (and of the pipelines made from it by p:with).
local M = {}

M.ORDER = { "request_id", "user_agent", "per_call", "response", "retry", "per_retry", "challenge", "bearer",
  "log" }

local Node = {}
Node.__index = Node

function Node:send(req) return self.policy:send(req, self.next) end

local Last = {}
Last.__index = Last

function Last:send(req) return self.transport:request(req) end

--- The chain of `policies` (a list, outermost first) in front of `transport`: an object whose
-- send(req) runs them in order. Built once per pipeline; calls allocate nothing for it.
function M.chain(policies, transport)
  if type(transport) ~= "table" or type(transport.request) ~= "function" then
    error("azcmk.policy.chain: a transport with request() expected", 2)
  end
  local node = setmetatable({ transport = transport }, Last)
  for i = #policies, 1, -1 do
    local p = policies[i]
    if type(p) ~= "table" or type(p.send) ~= "function" then
      error("azcmk.policy.chain: policy " .. i .. " has no send method", 2)
    end
    node = setmetatable({ policy = p, next = node }, Node)
  end
  return node
end

return M
