--- Shared plumbing of the service clients (layer 3): argument checks, resource ids, the
-- subscription, and "not found -> nil" mapping. Every request goes through the pipeline
-- (p:arm, p:arm_lro, p:arm_pages, p:vault); no client builds HTTP requests itself.
local errors = require("azcmk.errors")
local url = require("azcmk.url")
local options = require("azcmk.options")

local M = {}

-- Keys every client call takes, and those of calls that wait for a long-running operation.
M.COMMON = { subscription = "string?" }
M.LRO = { progress = "function?", interval = "number?", timeout = "number?" }

--- check(o, spec, where[, extra]): raises on a programmer error (wrong argument types, a
-- missing required key, a key the call does not know: azcmk.options). spec: { field =
-- "string" | "string?" | "table" | ... }; the keys of M.COMMON (and of extra, e.g. M.LRO)
-- are always allowed.
function M.check(o, spec, where, extra)
  return options.check(o, options.merge(M.COMMON, extra, spec), "azcmk.client." .. where, 4)
end

--- The subscription a client of pipeline p with opts works in; raises (at the caller's caller)
-- when p is not a pipeline or the subscription not a string.
function M.check_new(what, p, opts)
  if type(p) ~= "table" or type(p.arm) ~= "function" then
    error(what .. ".new: a pipeline is required", 3)
  end
  local sub = (opts or {}).subscription or p.subscription
  if sub ~= nil and type(sub) ~= "string" then
    error(what .. ".new: subscription must be a string", 3)
  end
  return sub
end

--- A client class: new(p, {subscription=}) with the pipeline and the subscription id.
function M.class(name)
  local C = { _name = name }
  C.__index = C
  function C.new(p, opts)
    local sub = M.check_new("azcmk.client." .. name, p, opts)
    return setmetatable({ p = p, subscription = sub }, C)
  end
  return C
end

function M.seg(s) return url.encode(s) end

--- The subscription of a call (opts.subscription, else the client's), or raises.
function M.sub(self, o)
  local s = (o and o.subscription) or self.subscription
  if type(s) ~= "string" or s == "" then
    error("azcmk.client." .. self._name .. ": no subscription (pass subscription= to new or the call)", 3)
  end
  return s
end

function M.sub_path(self, o)
  return "/subscriptions/" .. M.seg(M.sub(self, o))
end

function M.rg_path(self, o)
  return M.sub_path(self, o) .. "/resourceGroups/" .. M.seg(o.resource_group)
end

--- Path of a list of provider resources: of o.resource_group when given, else of the subscription.
function M.list_path(self, o, provider_type)
  local scope = o.resource_group and M.rg_path(self, o) or M.sub_path(self, o)
  return scope .. "/providers/" .. provider_type
end

--- Resource id of a provider resource in a resource group.
function M.resource_path(self, o, provider_type, name)
  return M.rg_path(self, o) .. "/providers/" .. provider_type .. "/" .. M.seg(name)
end

--- nil (not an error) for 404s, else the error unchanged.
function M.not_found(err)
  return errors.is(err, 404)
end

--- Run an ARM GET; 404 -> nil, nil (absent), other failures -> nil, err.
function M.get_or_nil(p, path, opts)
  local res, err = p:arm("GET", path, opts)
  if res then return res.json end
  if M.not_found(err) then return nil, nil end
  return nil, err
end

--- Every item of a list (an iterator from p:arm_pages / p:vault_pages) as an array, or
-- nil, err at the first failure.
function M.all(items)
  local out = {}
  for item, err in items do
    if not item then return nil, err end
    out[#out + 1] = item
  end
  return out
end

-- lua-cjson 2.1.0 (Debian) cannot encode an empty array: the pipeline's encoder turns this
-- value into [].
M.EMPTY_ARRAY = require("azcmk.pipeline").EMPTY_ARRAY

--- Copy of a table, one level.
function M.copy(t)
  local r = {}
  for k, v in pairs(t or {}) do r[k] = v end
  return r
end

--- Drops a leading "https://management..." from an id given as a URL; ids stay paths.
function M.id_path(id)
  if type(id) ~= "string" then return id end
  return (id:gsub("^https://[^/]+", ""))
end

--- The LRO options of a call: progress, interval, timeout.
function M.lro_opts(o, api_version, body, interval)
  return { api_version = api_version, body = body, progress = o.progress, interval = o.interval or interval,
           timeout = o.timeout }
end

--- Options of a plain call with a body.
function M.with_body(api_version, body)
  return { api_version = api_version, body = body }
end

return M
