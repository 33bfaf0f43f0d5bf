--- verify: prove both directions of a registry's data plane, as the caller. It pushes a tiny
-- test artifact (a config blob, a layer blob and an OCI manifest tagged azcmk-verify-<random>)
-- into `repository`, pulls it back and compares digests and bytes, then deletes the manifest
-- (also when the pull failed). A CMK registry that cannot use its key fails both directions;
-- the answers also say which key version wraps the content where the service tells it.
--
-- When the push fails, the pull direction reads what the registry already holds (the content
-- probe: azcmk.state.content_probe), so a revoked registry shows both directions failing.
-- Returns the report when both directions work; else nil, err (the first direction's error)
-- with err.verification = the report.
local common = require("azcmk.playbook.common")
local plan = require("azcmk.playbook.plan")
local AcrData = require("azcmk.client.acr_data")
local Keys = require("azcmk.client.keys")
local content_probe = require("azcmk.state.content_probe")
local rules = require("azcmk.state.rules")
local errors = require("azcmk.errors")
local cjson = require("cjson.safe")

local M = {}

M.REPOSITORY = "azcmk-verify"
M.TAG_PREFIX = "azcmk-verify-"

local OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
local OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

-- What a report says about one direction's failure.
local function failure(err)
  return { ok = false, error = { kind = err.kind, status = err.status, code = err.code, role = err.role,
    message = err.message, hint = err.hint, request_id = err.request_id } }
end

--- The test artifact: its config, layer and manifest texts and their digests.
function M.artifact(tag)
  local config = cjson.encode({ architecture = "amd64", os = "linux",
    config = { Labels = { ["org.opencontainers.image.title"] = tag } } })
  local layer = "azcmk verify " .. tag .. "\n"
  local manifest = cjson.encode({ schemaVersion = 2, mediaType = AcrData.MANIFEST_TYPES[1],
    config = { mediaType = OCI_CONFIG, digest = AcrData.digest(config), size = #config },
    layers = { { mediaType = OCI_LAYER, digest = AcrData.digest(layer), size = #layer } },
    annotations = { ["org.opencontainers.image.description"] = "azcmk verify: safe to delete" } })
  return { tag = tag, config = config, layer = layer, manifest = manifest, digest = AcrData.digest(manifest) }
end

local function random_tag()
  local crypto = require("azcmk.crypto")
  return M.TAG_PREFIX .. crypto.hex(crypto.random_bytes(4))
end

-- The plan: push, pull, clean up (what a dry run shows).
local function actions(ls, repo, art)
  local base = "https://" .. ls .. "/v2/" .. repo
  return {
    plan.action({ step = "push", action = "create", name = repo .. ":" .. art.tag, id = base .. "/manifests/"
      .. art.tag, description = "push a test artifact (a config blob, a layer blob and an OCI manifest) to "
      .. repo .. ":" .. art.tag, reason = "a push proves the registry can encrypt new content with its key",
      request = "PUT " .. base .. "/manifests/" .. art.tag }),
    plan.action({ step = "pull", action = "check", name = repo .. ":" .. art.tag,
      description = "pull it back and compare digests and bytes",
      reason = "a pull proves the registry can decrypt its content" }),
    plan.action({ step = "cleanup", action = "remove", name = repo .. "@" .. art.digest,
      id = base .. "/manifests/" .. art.digest,
      description = "delete the test manifest (its tag goes with it)",
      reason = "the test artifact is not the registry's content", request = "DELETE " .. base .. "/manifests/"
        .. art.digest }),
  }
end

-- Push the artifact: { ok, manifest_digest, content_key } or failure(err) (+ .tried when the
-- manifest PUT was sent: cleanup must read back whether it landed).
local function push(d, repo, art)
  for _, data in ipairs({ art.config, art.layer }) do
    local b, err = d:put_blob({ repository = repo, data = data })
    if not b then return failure(err), err end
  end
  local m, err = d:put_manifest({ repository = repo, reference = art.tag, body = art.manifest })
  if not m then
    local f = failure(err)
    f.tried = true
    return f, err
  end
  if m.digest ~= art.digest then
    err = errors.new("azure", { code = "DigestMismatch", param = "registry",
      message = "the registry stored the manifest as " .. tostring(m.digest) .. ", expected " .. art.digest,
      hint = "report it with the request ids; the registry changed the manifest it was given" })
    local f = failure(err)
    f.tried = true
    return f, err
  end
  return { ok = true, manifest_digest = m.digest, content_key = m.content_key }
end

-- Pull it back and compare: { ok, manifest_digest, content_key } or failure(err).
local function pull(d, repo, art)
  local m, err = d:manifest({ repository = repo, reference = art.tag })
  if not m then return failure(err), err end
  if m.digest ~= art.digest or m.body ~= art.manifest then
    err = errors.new("azure", { code = "DigestMismatch", param = "registry",
      message = "the manifest read back differs from the one pushed (" .. tostring(m.digest) .. ")",
      hint = "report it with the request ids" })
    return failure(err), err
  end
  local key = m.content_key
  local wanted = { { AcrData.digest(art.config), art.config }, { AcrData.digest(art.layer), art.layer } }
  for _, want in ipairs(wanted) do
    local b, berr = d:blob({ repository = repo, digest = want[1] })
    if not b then return failure(berr), berr end
    if b.data ~= want[2] then
      berr = errors.new("azure", { code = "BlobDigestMismatch", param = "registry",
        message = "blob " .. want[1] .. " read back differs from the one pushed" })
      return failure(berr), berr
    end
    key = b.content_key or key
  end
  return { ok = true, manifest_digest = m.digest, content_key = key }
end

-- Without a pushed artifact: read what the registry holds (the content probe).
local function pull_existing(p, ls)
  local cp = content_probe.read(p, ls)
  local v = rules.content(cp)
  if v == "usable" then
    return { ok = true, existing = true, repository = cp.repository, reference = cp.reference,
      manifest_digest = cp.manifest_digest, content_key = cp.content_key }
  end
  if cp.err then
    local f = failure(cp.err)
    f.existing = true
    return f, cp.err
  end
  return { ok = false, skipped = true, reason = "nothing to pull: the push failed and the registry holds no "
    .. "content, so the pull direction could not be tried" }
end

-- Delete the manifest when it is (or may be) there: a manifest PUT that failed may still have
-- landed, so it is read back by its tag, never guessed.
local function cleanup(d, repo, art, pushed)
  local digest = pushed.ok and art.digest or nil
  if not digest then
    local h = d:manifest({ repository = repo, reference = art.tag, head = true })
    if not h then return { ok = true, needed = false } end
    digest = h.digest
  end
  local ok, err = d:delete_manifest({ repository = repo, digest = digest })
  if ok then return { ok = true, needed = true, manifest_digest = digest } end
  local f = failure(err)
  f.needed, f.manifest_digest = true, digest
  return f
end

--- verify{registry (or name), resource_group?, repository? (default "azcmk-verify"), dry_run?,
-- pipeline?, subscription?, progress?} -> report { registry = {name, id, login_server},
-- repository, tag, ok, push = {ok, manifest_digest?, error?}, pull = {ok, existing?, skipped?,
-- error?}, cleanup = {ok, needed, error?}, cmk, key_id (versioned, observed), key_version (or
-- "not observable on Azure"), declared_key_version (the registry's versionedKeyIdentifier),
-- key_matches?, warnings, steps } when both directions work; else nil, err with
-- err.verification = that report. dry_run: the plan, nothing written.
function M.verify(o)
  common.check(o, { registry = "string?", name = "string?", resource_group = "string?",
    repository = "string?",
    dry_run = "boolean?" }, "azcmk.playbook.verify")
  local repo = o.repository or M.REPOSITORY
  if not repo:match("^[a-z0-9]+[a-z0-9._/-]*$") or #repo > 256 then
    return nil, errors.input("'" .. repo .. "' is not a repository name (lower-case letters, digits, "
      .. ". _ - /)", { code = "InvalidRepository", param = "repository",
        hint = "pass a name such as `repository = azcmk-verify`" })
  end
  local ctx, err = common.context(o)
  if not ctx then return nil, err end
  local f = ctx:read(o.registry or o.name, o.resource_group)
  local reg, rg = common.registry_of(f)
  if not reg then return nil, rg end
  local ls = (reg.properties or {}).loginServer
  if not ls then
    return nil, errors.new("azure", { code = "NoLoginServer", param = "registry",
      message = "registry " .. reg.name .. " has no login server yet",
      hint = "wait until it is provisioned" })
  end
  local art = M.artifact(random_tag())
  local acts = actions(ls, repo, art)
  local r = { registry = { name = reg.name, id = reg.id, resource_group = rg, login_server = ls },
    repository = repo, tag = art.tag, cmk = f.cmk == true, warnings = ctx.warnings, steps = ctx.steps }
  local kvp = f.cmk and reg.properties.encryption.keyVaultProperties or nil
  r.declared_key_version = kvp and Keys.version_of(kvp.versionedKeyIdentifier or kvp.keyIdentifier) or nil
  if o.dry_run then return plan.dry_result(ctx, acts, r) end

  local d = AcrData.new(ctx.p, { login_server = ls })
  ctx:say("pushing " .. repo .. ":" .. art.tag .. " to " .. ls)
  local perr, lerr
  r.push, perr = push(d, repo, art)
  ctx:step("push", r.push.ok and "created" or "failed", { name = repo .. ":" .. art.tag })
  if r.push.ok then
    r.pull, lerr = pull(d, repo, art)
  else
    r.pull, lerr = pull_existing(ctx.p, ls)
  end
  ctx:step("pull", r.pull.ok and "checked" or "failed", { name = r.pull.existing and
    (tostring(r.pull.repository) .. ":" .. tostring(r.pull.reference)) or (repo .. ":" .. art.tag) })
  if r.push.ok or r.push.tried then
    r.cleanup = cleanup(d, repo, art, r.push)
    if r.cleanup.needed then ctx:step("cleanup", r.cleanup.ok and "removed" or "failed",
      { name = repo .. "@" .. tostring(r.cleanup.manifest_digest) }) end
    if not r.cleanup.ok then
      ctx:warn("the test artifact " .. repo .. ":" .. art.tag .. " could not be deleted ("
        .. tostring(r.cleanup.error.code) .. "): delete that tag yourself (`az acr repository delete`); "
        .. "deleting needs AcrDelete, Contributor or Owner")
    end
  else
    r.cleanup = { ok = true, needed = false }
  end
  r.push.tried = nil
  -- the key version that wraps the content, where the service tells it
  local key = r.push.content_key or r.pull.content_key
  r.push.content_key, r.pull.content_key = nil, nil
  r.key_id = key
  if key then
    r.key_version = Keys.version_of(key)
    if r.declared_key_version then r.key_matches = r.key_version == r.declared_key_version end
    if r.key_matches == false then
      ctx:warn("the content is wrapped by key version " .. r.key_version .. ", the registry declares "
        .. r.declared_key_version)
    end
  elseif r.push.ok or r.pull.ok then
    r.key_version = f.cmk and rules.NOT_OBSERVABLE or "service-managed key"
  end
  r.ok = r.push.ok and r.pull.ok
  if r.ok then return r end
  local e = perr or lerr or errors.new("azure", { code = "VerificationIncomplete", param = "registry",
    message = r.pull.reason or "the registry could not be verified",
    hint = "push any image, then verify again" })
  e.verification = r
  return nil, e
end

setmetatable(M, { __call = function(_, o) return M.verify(o) end })
return M
