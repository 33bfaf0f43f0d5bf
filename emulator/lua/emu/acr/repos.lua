--- emu.acr.repos: a registry's repositories (metadata in the shared state; content bytes are in
-- emu.acr.blobs). Keys, per blob store (emu.acr.content_key's `store`):
--   "acr:repo:<store>|<repository>" = { name, blobs = {<digest> = size}, manifests = {<digest> =
--                                       {mediaType, size}}, tags = {<tag> = <digest>} }
--   "acr:blob:<store>|<digest>"       = size   (the blob's file exists: cross-repository mounts)
--   "acr:up:<store>|<uuid>"           = { repo, parts, size, started }   (upload sessions)
local state = require("emu.state")

local M = {}

local function rkey(store, repo) return "acr:repo:" .. store .. "|" .. repo end

--- Repository name rule of the distribution spec: lower-case path components joined by "/".
function M.valid_name(name)
  if type(name) ~= "string" or #name == 0 or #name > 256 then return false end
  for comp in (name .. "/"):gmatch("(.-)/") do
    if not comp:match("^[a-z0-9]+$") and not comp:match("^[a-z0-9][a-z0-9._-]*[a-z0-9]$") then return false end
    if comp:find("%.%.") or comp:find("[._]%-") or comp:find("%-[._]") then return false end
  end
  return true
end

function M.get(store, repo) return state.get(rkey(store, repo)) end

--- Atomic edit of a repository record (created when missing).
function M.edit(store, repo, fn)
  return state.update(rkey(store, repo), function(cur)
    cur = cur or { name = repo, blobs = {}, manifests = {}, tags = {} }
    cur.blobs, cur.manifests, cur.tags = cur.blobs or {}, cur.manifests or {}, cur.tags or {}
    return fn(cur)
  end)
end

--- Repository names of a store, sorted.
function M.names(store)
  local prefix = "acr:repo:" .. store .. "|"
  local out = {}
  for _, k in ipairs(state.keys(prefix)) do
    local r = state.get(k)
    if r and next(r.manifests or {}) ~= nil then out[#out + 1] = k:sub(#prefix + 1) end
  end
  return out
end

function M.blob_size(store, digest) return state.get("acr:blob:" .. store .. "|" .. digest) end
function M.blob_stored(store, digest, size) state.put("acr:blob:" .. store .. "|" .. digest, size) end

function M.upload(store, uuid) return state.get("acr:up:" .. store .. "|" .. uuid) end
function M.upload_put(store, uuid, rec) state.put("acr:up:" .. store .. "|" .. uuid, rec) end
function M.upload_edit(store, uuid, fn) return state.update("acr:up:" .. store .. "|" .. uuid, fn) end
function M.upload_drop(store, uuid) state.delete("acr:up:" .. store .. "|" .. uuid) end

--- Drops every record of a store (registry deleted).
function M.drop_store(store)
  for _, p in ipairs({ "acr:repo:", "acr:blob:", "acr:up:" }) do
    for _, k in ipairs(state.keys(p .. store .. "|")) do state.delete(k) end
  end
end

return M
