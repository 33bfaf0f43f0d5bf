--- Chain of credentials: tries providers in order and remembers the
-- first that works. When every provider fails it returns ONE error naming each provider and
-- its own reason (err.attempts = { {name=, reason=, error=}, ... }).
-- A provider that is configured but fails to authenticate (not "unavailable") stops the
-- chain, as in the Azure SDKs, so a wrong secret is reported instead of silently falling
-- back to another identity; opts.continue_on_failure = true keeps going.
-- Entries may be credentials or factory functions (called once, lazily).
local base = require("azcmk.credential.base")
local errors = require("azcmk.errors")

local C = base.class("ChainedTokenCredential")

local M = {}

function M.new(list, opts)
  if type(list) ~= "table" then error("azcmk.credential.chain: list of credentials expected", 2) end
  opts = opts or {}
  return base.new(C, { providers = { (table.unpack or unpack)(list) }, -- luacheck: ignore
                       name = opts.name, continue_on_failure = opts.continue_on_failure, ctx = opts.ctx })
end

function C:_provider(i)
  local p = self.providers[i]
  if type(p) == "function" then
    local ok, r = pcall(p)
    if not ok or type(r) ~= "table" then
      p = { name = "provider#" .. i, failed = tostring(r) }
    else
      p = r
    end
    self.providers[i] = p
  end
  if p.attach and self.ctx then p:attach(self.ctx) end
  return p
end

function C:attach(ctx)
  base.methods.attach(self, ctx)
  if self.selected then self.selected:attach(self.ctx) end
end

function C:available()
  local reasons = {}
  for i = 1, #self.providers do
    local p = self:_provider(i)
    if not p.failed then
      local ok, why = p:available()
      if ok then return true end
      reasons[#reasons + 1] = p.name .. ": " .. tostring(why)
    else
      reasons[#reasons + 1] = p.name .. ": " .. p.failed
    end
  end
  return false, table.concat(reasons, "; ")
end

function C:cache_key()
  if self.selected then return self.selected:cache_key() end
  return self.name .. "|unselected"
end

-- stopped: the attempt whose authentication failure ended the chain (or nil)
local function report(self, attempts, stopped)
  local lines = {}
  for _, a in ipairs(attempts) do lines[#lines + 1] = a.name .. ": " .. a.reason end
  local msg = "no credential in " .. self.name .. " could get a token - " .. table.concat(lines, "; ")
  local e = stopped and stopped.error or {}
  return errors.new("auth", {
    code = stopped and e.code or "CredentialUnavailable",
    message = msg, attempts = attempts, unavailable = not stopped,
    status = e.status, request_id = e.request_id, hint = e.hint,
  })
end

local function reason_of(name, err)
  local r = err and (err.reason or err.message) or "failed"
  r = tostring(r)
  local prefix = name .. ": "
  if r:sub(1, #prefix) == prefix then r = r:sub(#prefix + 1) end
  if err and err.code and err.code ~= "CredentialUnavailable" and not r:find(err.code, 1, true) then
    r = err.code .. " " .. r
  end
  return r
end

function C:get_token(scope, opts)
  if self.selected then
    local tok, err = self.selected:get_token(scope, opts)
    if tok then return tok end
    if not (err and err.unavailable) then return nil, err end
    self.selected = nil
  end
  local attempts = {}
  for i = 1, #self.providers do
    local p = self:_provider(i)
    if p.failed then
      attempts[#attempts + 1] = { name = p.name, reason = "could not be built: " .. p.failed }
    else
      local ok, why = p:available()
      if not ok then
        attempts[#attempts + 1] = { name = p.name, reason = tostring(why), unavailable = true }
      else
        local tok, err = p:get_token(scope, opts)
        if tok then
          self.selected = p
          return tok
        end
        attempts[#attempts + 1] = { name = p.name, reason = reason_of(p.name, err), error = err,
                                    unavailable = err and err.unavailable }
        if not (err and err.unavailable) and not self.continue_on_failure then
          local failed = attempts[#attempts]
          for j = i + 1, #self.providers do
            local q = self.providers[j]
            attempts[#attempts + 1] = { name = type(q) == "table" and q.name or ("provider#" .. j),
                                        reason = "not tried (" .. p.name .. " failed to authenticate)" }
          end
          return nil, report(self, attempts, failed)
        end
      end
    end
  end
  return nil, report(self, attempts, nil)
end

M.class = C
return M
