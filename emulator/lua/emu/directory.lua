--- emu.directory: the tenant's principals (Entra ID directory) and app credentials.
--   "dir:<objectId>"  { objectId, appId, type = "ServicePrincipal", displayName,
--                       kind = "app" | "managedIdentity", resourceId? (managed identities) }
--   "app:<appId>"     objectId (an app's service principal)
--   "cred:<appId>"    { secrets = {...}, certs = {{x5t=, x5t_s256=, pem=}}, federated = {...} }
-- Managed identities created through ARM register here too, so tokens can be issued for
-- them and role assignments can find them.
local state = require("emu.state")

local M = {}

function M.add(p)
  assert(p.objectId and p.appId, "principal needs objectId and appId")
  p.type = p.type or "ServicePrincipal"
  state.put("dir:" .. p.objectId:lower(), p)
  state.put("app:" .. p.appId:lower(), p.objectId:lower())
  return p
end

function M.remove(object_id)
  local p = M.get(object_id)
  if not p then return end
  state.delete("dir:" .. object_id:lower())
  state.delete("app:" .. p.appId:lower())
  state.delete("cred:" .. p.appId:lower())
end

--- Principal by object id, or nil.
function M.get(object_id)
  if type(object_id) ~= "string" then return nil end
  return state.get("dir:" .. object_id:lower())
end

--- Principal by application (client) id, or nil.
function M.by_app(app_id)
  if type(app_id) ~= "string" then return nil end
  local oid = state.get("app:" .. app_id:lower())
  return oid and M.get(oid)
end

--- Managed identity principal by ARM resource id (case-insensitive), or nil.
function M.by_resource_id(rid)
  if type(rid) ~= "string" then return nil end
  local oid = state.get("mirid:" .. rid:lower())
  return oid and M.get(oid)
end

function M.index_resource_id(rid, object_id)
  if object_id then state.put("mirid:" .. rid:lower(), object_id:lower())
  else state.delete("mirid:" .. rid:lower()) end
end

function M.credentials(app_id)
  return state.get("cred:" .. app_id:lower())
end

function M.set_credentials(app_id, creds)
  state.put("cred:" .. app_id:lower(), creds)
end

return M
