--- emu.acr.admin: the registry's admin user (Basic credentials on the data plane while
-- properties.adminUserEnabled is true) and its two ARM actions:
--   POST .../registries/{name}/listCredentials
--   POST .../registries/{name}/regenerateCredential {"name": "password" | "password2"}
-- both answering {"username": "<registry name>", "passwords": [{"name": "password", "value"},
-- {"name": "password2", "value"}]} (the REST reference's RegistryListCredentialsResult).
-- Passwords live in "acr:admin:<lower registry id>", made on first use, dropped with the registry.
local arm = require("emu.arm")
local errors = require("emu.errors")
local state = require("emu.state")
local json = require("emu.json")

local M = {}

local function C() return require("azcmk.core") end
local function regs() return require("emu.arm.registries") end

local function new_password()
  -- 32 characters of base64 (ACR's passwords look like this; the alphabet is the emulator's choice)
  return (C().b64_encode(C().random_bytes(24)):gsub("/", "A"))
end

local function passwords(id)
  local key = "acr:admin:" .. id:lower()
  local cur = state.get(key)
  if cur then return cur end
  state.add(key, { password = new_password(), password2 = new_password() })
  return state.get(key)
end

local function body(rec, pw)
  return { username = rec.name, passwords = json.array({ { name = "password", value = pw.password },
    { name = "password2", value = pw.password2 } }) }
end

--- Whether user/password are the admin credentials of registry record rec (admin user enabled).
function M.check(rec, user, password)
  if not (rec.properties and rec.properties.adminUserEnabled == true) then return false end
  if type(user) ~= "string" or user:lower() ~= rec.name:lower() then return false end
  local pw = passwords(rec.id)
  return password == pw.password or password == pw.password2
end

function M.forget(id) state.delete("acr:admin:" .. id:lower()) end

local BASE = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerRegistry/registries/{name}"

local function registry(req)
  local p = req.params
  arm.require_rg(p.sub, p.rg)
  local rec = regs().current(regs().id(p.sub, p.rg, p.name))
  if not rec then errors.throw(arm.not_found(regs().TYPE, p.name, p.rg)) end
  if rec.properties.adminUserEnabled ~= true then
    -- synthetic text:
    errors.throw(errors.arm(400, "AdminUserDisabled", "The admin user is disabled for the registry " .. rec.name ..
      ". Enable it with properties.adminUserEnabled = true (az acr update -n " .. rec.name ..
      " --admin-enabled true) and try again."))
  end
  return rec
end

arm.route({ method = "POST", path = BASE .. "/listCredentials", type = "Microsoft.ContainerRegistry/registries",
  action = "Microsoft.ContainerRegistry/registries/listCredentials/action",
  scope = function(req) return regs().id(req.params.sub, req.params.rg, req.params.name) end,
  handler = function(req)
    local rec = registry(req)
    return 200, body(rec, passwords(rec.id))
  end })

arm.route({ method = "POST", path = BASE .. "/regenerateCredential", type = "Microsoft.ContainerRegistry/registries",
  action = "Microsoft.ContainerRegistry/registries/regenerateCredential/action",
  scope = function(req) return regs().id(req.params.sub, req.params.rg, req.params.name) end,
  handler = function(req)
    local rec = registry(req)
    local b = arm.body(req)
    local which = type(b.name) == "string" and b.name:lower() or nil
    if which ~= "password" and which ~= "password2" then
      -- synthetic text:
      return errors.arm(400, "InvalidRequestContent", "The request content was invalid and could not be " ..
        "deserialized: 'Error converting value \"" .. tostring(b.name) .. "\" to type 'PasswordName'. " ..
        "Path 'name'.'.")
    end
    passwords(rec.id)
    local pw = state.update("acr:admin:" .. rec.id:lower(), function(cur)
      cur[which] = new_password()
      return cur
    end)
    return 200, body(rec, pw)
  end })

return M
