--- The content probe: does the registry really read its content with its key? As the caller,
-- through the data-plane client (azcmk.client.acr_data): the catalog, the first repository
-- and its first tag, that manifest, and one blob it names (the config, else the first layer).
-- It returns facts and judges nothing (azcmk.state.rules.content does):
--   { login_server, step (the last call made: catalog, tags, manifest, blob),
--     repositories (how many on the catalog's first page), empty (true: none),
--     repository, reference, manifest_digest, blob_digest,
--     content_key (the versioned key id that wraps the content when the service says it:
--                  the emulator does, Azure does not),
--     err (the structured error of the call that failed) }
local AcrData = require("azcmk.client.acr_data")

local M = {}

-- The blob a manifest names that the probe reads: the config (small), else the first layer.
local function blob_of(m)
  local j = type(m.json) == "table" and m.json or {}
  if type(j.config) == "table" and type(j.config.digest) == "string" then return j.config.digest end
  local l = type(j.layers) == "table" and j.layers[1]
  return type(l) == "table" and l.digest or nil
end

--- read(p, login_server[, repository]) -> facts (never nil). repository: probe this one
-- instead of the catalog's first.
function M.read(p, login_server, repository)
  local d = AcrData.new(p, { login_server = login_server })
  local f = { login_server = login_server, step = "catalog" }
  local function seen(x) f.content_key = x.content_key or f.content_key end
  local repo = repository
  if not repo then
    local cat, err = d:catalog({ n = 100 })
    if not cat then f.err = err; return f end
    seen(cat)
    f.repositories = #cat.repositories
    repo = cat.repositories[1]
    if not repo then f.empty = true; return f end
  end
  f.repository, f.step = repo, "tags"
  local tags, terr = d:tags({ repository = repo, n = 1 })
  if not tags then f.err = terr; return f end
  seen(tags)
  f.reference = tags.tags[1]
  if not f.reference then f.empty = true; return f end
  f.step = "manifest"
  local m, merr = d:manifest({ repository = repo, reference = f.reference })
  if not m then f.err = merr; return f end
  seen(m)
  f.manifest_digest = m.digest
  f.blob_digest = blob_of(m)
  if not f.blob_digest then return f end   -- an index names manifests, not blobs: the read stands
  f.step = "blob"
  local b, berr = d:blob({ repository = repo, digest = f.blob_digest })
  if not b then f.err = berr; return f end
  seen(b)
  return f
end

return M
