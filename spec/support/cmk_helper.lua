--- Helpers for the CMK specs (spec/client, spec/playbook, spec/cli): a pipeline wired to the
-- emulator with the seeded owner's client secret, unique names, fast long-running
-- operations, the write requests of the emulator's log, and running `bin/azcmk`.
local E = require("support.emulator")
local cjson = require("cjson.safe")

local H = { E = E }

local counter = 0

--- A unique lower-case suffix (names of registries, vaults, keys are global in the emulator too).
function H.unique(prefix)
  counter = counter + 1
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + counter)
  return (prefix or "x") .. string.format("%04d%04d", math.random(0, 9999), counter % 10000)
end

function H.env() return E.ensure() end
function H.seed()
  if not H._seed then H._seed = E.seed() end
  return H._seed
end

--- Long-running operations finish at the first poll, with no wait.
function H.fast()
  E.control("POST", "config", { lro = { polls = 1, seconds = 0, retry_after = 0 } })
end

--- Back to the seeded state (faults cleared, fast LRO).
function H.reset()
  E.control("DELETE", "faults")
  E.control("POST", "reset")
  H._seed = nil
  H.fast()
end

--- After a spec file: no internal errors, then the seeded state and default pacing again (the
-- emulator may be shared with the other spec files of the run).
function H.done()
  E.assert_no_internal_errors()
  E.control("DELETE", "faults")
  E.control("POST", "reset")
end

--- The setup of a spec file: the seeded state, H.p (a pipeline as the seeded owner) and the
-- service clients on the seeded subscription. Returns clients, seed.
function H.start()
  H.env()
  H.reset()
  local seed = H.seed()
  H.p = H.pipeline()
  return require("azcmk.client").new(H.p, { subscription = seed.subscription_id }), seed
end

--- A pipeline on the emulator as the seeded owner (client secret).
function H.pipeline(extra)
  local env = E.ensure()
  local seed = H.seed()
  local credential = require("azcmk.credential")
  local o = {
    cloud = "AzureCloud",
    transport = require("azcmk.transport.curl").new({ env = env }),
    credential = credential.client_secret({ tenant_id = seed.tenant_id, client_id = seed.owner.app_id,
      client_secret = seed.owner.client_secret }),
    lro_interval = 0.01, log = "error",
  }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(require("azcmk.pipeline").new(o))
end

--- Options every playbook call takes: pipeline and subscription.
function H.opts(extra)
  local o = { pipeline = H.p or H.pipeline(), subscription = H.seed().subscription_id, interval = 0.01 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- The emulator's log sequence number, once the log has settled.
function H.seq()
  local last = E.log_seq()
  for _ = 1, 20 do
    os.execute("sleep 0.05")
    local now = E.log_seq()
    if now - last <= 1 then return now end
    last = now
  end
  return last
end

local WRITE = { PUT = true, PATCH = true, POST = true, DELETE = true }

--- Write requests (PUT/PATCH/POST/DELETE) to ARM, Key Vault or ACR logged after `since`
-- (token requests and the control API are not writes to Azure resources).
function H.writes(since)
  H.seq()
  local out = {}
  for _, e in ipairs(E.log(since)) do
    local host, path = tostring(e.host), tostring(e.path)
    if WRITE[e.method] and not host:match("^login%.") and not path:match("^/_emulator")
      and not path:match("/oauth2/") then
      out[#out + 1] = e
    end
  end
  return out
end

--- All logged requests after since (decoded), settled.
function H.log(since)
  H.seq()
  return E.log(since)
end

--- Requests to Azure's hosts logged after since (the control API left out).
function H.sent(since)
  local out = {}
  for _, e in ipairs(H.log(since)) do
    if not tostring(e.path):match("^/_emulator") then out[#out + 1] = e end
  end
  return out
end

--- Asserts that playbook `fn` refuses `opts` before any write: an input error with `code`, a
-- message matching message_pat and a hint (matching hint_pat when given). Returns the error.
function H.refused(fn, opts, code, message_pat, hint_pat)
  local assert = require("luassert")   -- a required module does not see the spec's assert
  local seq = H.seq()
  local r, err = fn(H.opts(opts))
  assert.is_nil(r)
  assert.truthy(err)
  assert.equal("input", err.kind)
  assert.equal(code, err.code)
  assert.matches(message_pat, err.message)
  assert.truthy(err.hint)
  if hint_pat then assert.matches(hint_pat, err.hint) end
  local writes = H.writes(seq)
  assert.equal(0, #writes, H.describe(writes))
  return err
end

--- "step=action ..." of a plan (a result's or -o json's plan list).
function H.plan_of(plan)
  local t = {}
  for _, a in ipairs(plan) do t[#t + 1] = a.step .. "=" .. a.action end
  return table.concat(t, " ")
end

--- Asserts the result r of a dry run (playbook or -o json): dry_run, nothing changed, and
-- every action of its plan in order with what it changes and why; a writing action names
-- its target (id) and request; r.changes counts them. Returns r.
function H.assert_dry(r)
  local assert = require("luassert")
  assert.is_true(r.dry_run or r.dryRun)  -- Lua results say dry_run; the CLI's JSON is camelCase
  assert.is_false(r.changed)
  local n = 0
  for i, a in ipairs(r.plan) do
    assert.equal(i, a.order)
    assert.truthy(a.step and a.action and a.description and a.reason, H.plan_of(r.plan))
    assert.equal("boolean", type(a.writes))
    if a.writes then
      n = n + 1
      assert.truthy(a.request and a.id, a.description)
    end
  end
  assert.equal(n, r.changes)
  return r
end

--- Describe log entries for assertion messages.
function H.describe(entries)
  local l = {}
  for _, e in ipairs(entries) do
    l[#l + 1] = e.method .. " " .. e.host .. e.path .. " -> " .. tostring(e.status)
  end
  return table.concat(l, "\n")
end

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
H.shq = shq

--- "env K=V ..." with the emulator's environment as the seeded owner (extra_env: more
-- variables; false removes one), to put in front of a shell command.
function H.cli_env(extra_env)
  local env = E.ensure()
  local parts = {}
  for _, k in ipairs({ "AZCMK_CONNECT_TO", "AZCMK_CA_FILE", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID",
    "AZCMK_EMULATOR_DIR" }) do
    parts[#parts + 1] = k .. "=" .. shq(env[k])
  end
  local seed = H.seed()
  parts[#parts + 1] = "AZURE_CLIENT_ID=" .. shq(seed.owner.app_id)
  parts[#parts + 1] = "AZURE_CLIENT_SECRET=" .. shq(seed.owner.client_secret)
  for k, v in pairs(extra_env or {}) do
    if v == false then
      table.insert(parts, 1, "-u " .. k)   -- env's options come before the assignments
      for i = #parts, 2, -1 do if parts[i]:match("^" .. k .. "=") then table.remove(parts, i) end end
    else parts[#parts + 1] = k .. "=" .. shq(v) end
  end
  return "env " .. table.concat(parts, " ")
end

--- The shell command that runs bin/azcmk (under the interpreter of this run) with the
-- emulator's environment (H.cli runs it; specs that signal it start it themselves).
function H.cli_command(argv, extra_env)
  local args = {}
  for _, a in ipairs(argv) do args[#args + 1] = shq(a) end
  return H.cli_env(extra_env) .. " " .. (rawget(_G, "jit") and "luajit" or "lua5.4") .. " ./bin/azcmk "
    .. table.concat(args, " ")
end

--- Runs bin/azcmk with the emulator's environment. Returns { code, stdout, stderr }.
-- stdout_to: a file to send stdout to instead (e.g. /dev/full).
function H.cli(argv, extra_env, stdout_to)
  local out, err = os.tmpname(), os.tmpname()
  local cmd = H.cli_command(argv, extra_env) .. " >" .. (stdout_to or out) .. " 2>" .. err .. "; echo $?"
  local p = io.popen(cmd)
  local code = tonumber(p:read("a"):match("(%d+)%s*$"))
  p:close()
  local function slurp(f)
    local h = io.open(f, "rb")
    local s = h and h:read("a") or ""
    if h then h:close() end
    os.remove(f)
    return s
  end
  return { code = code, stdout = slurp(out), stderr = slurp(err) }
end

function H.json(s) return cjson.decode(s) end

--- H.start, then one CMK registry (H.setup): the setup of spec files about one registry.
function H.start_with_registry()
  H.start()
  return H.setup()
end

--- Set up a CMK registry quickly (the playbook itself); returns the result and the names.
function H.setup(extra)
  local names = { resource_group = H.unique("rg-"), registry = H.unique("reg"), vault = H.unique("kv-"),
    location = "westus" }
  for k, v in pairs(extra or {}) do names[k] = v end
  local r, err = require("azcmk.playbook.setup").setup(H.opts(names))
  assert(r, "setup failed: " .. tostring(err))
  return r, names
end

--- Data plane status of a registry (anonymous GET /v2/: 401 serving, 403 denied).
function H.data_plane(login_server)
  local res = assert(E.request({ method = "GET", url = "https://" .. login_server .. "/v2/" }))
  return res.status, res
end

--- Pushes a small image (a config blob, a layer blob and an OCI manifest, tagged `tag`) to the
-- registry at login_server as the pipeline p's caller (default H.p), with the data-plane
-- client. Returns { digest (the manifest's), config, layer, manifest (its text) }.
function H.push_image(login_server, repo, tag, p)
  local AcrData = require("azcmk.client.acr_data")
  local d = AcrData.new(p or H.p, { login_server = login_server })
  local config = '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
  local layer = "layer of " .. repo .. ":" .. tag .. " " .. H.unique("x")
  local out = { config = assert(d:put_blob({ repository = repo, data = config })).digest,
    layer = assert(d:put_blob({ repository = repo, data = layer })).digest, layer_data = layer }
  out.manifest = cjson.encode({ schemaVersion = 2, mediaType = "application/vnd.oci.image.manifest.v1+json",
    config = { mediaType = "application/vnd.oci.image.config.v1+json", digest = out.config, size = #config },
    layers = { { mediaType = "application/vnd.oci.image.layer.v1.tar", digest = out.layer,
      size = #layer } } })
  out.digest = assert(d:put_manifest({ repository = repo, reference = tag, body = out.manifest })).digest
  return out
end

--- The versioned key id that wraps the registry's content key, as the emulator's control API
-- tells (independent of any data-plane answer).
function H.content_key(registry_id)
  return E.control("GET", "registries/content-key?id=" .. registry_id).json.kid
end

return H
