--- What every CMK verb of the command line shares: flag parsing and --help, the pipeline,
-- progress on stderr, output (readable text, `-o table`, `-o json` = only JSON on stdout) and
-- errors (one line on stderr: reason + next step; exit 2 when refused before any change,
-- 1 when an operation failed).
local json = require("azcmk.json")
local args = require("azcmk.cli.args")
local output = require("azcmk.cli.output")
local params = require("azcmk.cli.params")

local M = {}

M.EXIT_OK, M.EXIT_FAILED, M.EXIT_REFUSED = 0, 1, 2

-- ------------------------------------------------------------------ results as JSON data

--- Mark a table to print as a JSON array even when empty (azcmk.json's marker).
M.array_mt = json.array_mt

-- keys whose empty value is an empty list
local LIST_KEYS = { warnings = true, steps = true, plan = true, accessPolicies = true, ipRules = true,
  problems = true, evidence = true }

-- keys whose contents are the user's or Azure's own names, kept as they are
local VERBATIM = { tags = true, outputs = true, parameters = true, userAssignedIdentities = true }

-- camel's memo: a result's field names repeat on every row of a fleet (bounded: other tables'
-- keys are whatever Azure sent)
local camel_of, camel_n = {}, 0

--- snake_case -> camelCase ("key_version_in_use" -> "keyVersionInUse"); other keys unchanged.
function M.camel(k)
  if type(k) ~= "string" then return k end
  local c = camel_of[k]
  if c then return c end
  c = k:match("^[a-z][a-z0-9]*_[a-z0-9_]*[a-z0-9]$") and (k:gsub("_(%w)", string.upper)) or k
  if camel_n < 1024 then camel_of[k], camel_n = c, camel_n + 1 end
  return c
end

local function data(v, verbatim)
  if type(v) == "function" then return nil end
  if type(v) ~= "table" or v == json.null then return v end
  local mt = getmetatable(v)
  if mt == json.array_mt or json.is_array(v) then
    local a = json.array()
    for i = 1, #v do local x = data(v[i], verbatim); a[i] = x == nil and json.null or x end
    return a
  end
  local o = {}
  for k, x in pairs(v) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      local name = verbatim and k or M.camel(k)
      local d = data(x, verbatim or VERBATIM[name])
      if type(d) == "table" and next(d) == nil and LIST_KEYS[name] then d = json.array() end
      o[name] = d
    end
  end
  return o
end

--- A result as the command line prints it as JSON: one naming convention, camelCase (as
-- Azure and az), whatever the playbook's Lua names are; functions and _private fields left
-- out; arrays marked. Names the user or Azure chose (tags, a template's outputs and
-- parameters, identity ids) are kept as they are.
function M.data(v) return data(v, false) end

--- Pretty JSON with sorted keys, camelCase (stable output for people and diffs).
function M.json(v)
  return json.pretty(M.data(v))
end

-- ------------------------------------------------------------------ errors

local function one_line(s)
  s = tostring(s or "")
  s = s:gsub("[\r\n]+", " "):gsub("%s+", " "):gsub("^%s+", ""):gsub("%s+$", "")
  return s
end
M.one_line = one_line

--- Library text (which names options and playbooks) as the command line's (flags and
-- commands): azcmk.cli.params.
function M.words(s, verb) return params.text(s, verb) end

--- The one-line reason + next step of a structured error. The library names the offending
-- option (err.param); the line names its flag.
function M.error_line(verb, err)
  local errors = require("azcmk.errors")
  if type(err) ~= "table" then return "azcmk " .. verb .. ": " .. one_line(err) end
  local msg = one_line(M.words(errors.scrub(err.message or tostring(err)), verb))
  local flag = err.param and params.flag(err.param, verb)
  local where = err.code and (" [" .. tostring(err.code) .. (err.status and (" " .. err.status) or "")
    .. (flag and (", " .. flag) or "") .. "]") or (err.status and (" [" .. err.status .. "]") or "")
  local line = "azcmk " .. verb .. ": " .. msg .. where
  if err.hint then line = line .. " -- next: " .. one_line(M.words(err.hint, verb)) end
  if err.request_id and err.kind ~= "input" then line = line .. " (request id " .. tostring(err.request_id)
    .. ")" end
  return line
end

function M.fail(io_, verb, err)
  io_.stderr:write(M.error_line(verb, err), "\n")
  if type(err) == "table" and err.kind == "input" then return M.EXIT_REFUSED end
  return M.EXIT_FAILED
end

-- ------------------------------------------------------------------ running a verb

--- Parses argv; handles --help; checks -o (azcmk.cli.output's formats and flags.outputs, the
-- verb's own) and compiles --query (refused before anything runs). Returns opts (opts.query_c:
-- the compiled query), positional, or nil, exit code.
-- positional: the name of the verb's positional words, nil when it takes none; about: a
-- paragraph for --help.
function M.parse(argv, io_, verb, usage, flags, positional, about)
  local opts, pos = args.parse(argv, flags, positional)
  if not opts then
    io_.stderr:write("azcmk ", verb, ": ", pos, " -- next: run 'azcmk ", verb, " --help'\n")
    return nil, M.EXIT_REFUSED
  end
  if opts.help then
    io_.stdout:write(args.help(usage, flags, about))
    return nil, M.EXIT_OK
  end
  if opts.output then
    local ok, err = require("azcmk.cli.output").check(opts.output, flags and flags.outputs)
    if not ok then return nil, M.fail(io_, verb, err) end
  end
  if opts.query then
    local q, err = require("azcmk.jmespath").compile(opts.query)
    if not q then return nil, M.fail(io_, verb, err) end
    opts.query_c = q
  end
  return opts, pos
end

--- The command line's composition root: the one pipeline of a run (libcurl transport, the
-- default credential chain, cloud, logging and subscription from the environment). Built
-- here once and handed to the playbooks; nothing below reads the environment for it.
-- --debug and --verbose set the log level (AZCMK_LOG's words) for this run; without them
-- AZCMK_LOG decides.
-- Waits before a retry that last longer than a second are said on stderr.
function M.pipeline(opts, stderr)
  opts = opts or {}
  stderr = stderr or io.stderr
  return require("azcmk.compose").pipeline({ log = opts.debug and "debug" or opts.verbose and "info" or nil,
    on_wait = function(w) if w.delay > 1 then stderr:write(M.wait_line(w), "\n") end end })
end

--- "  waiting 6s before retrying GET management.azure.com (attempt 1 failed: status 429 with
-- retry-after)"
function M.wait_line(w)
  return string.format("  waiting %gs before retrying %s %s (attempt %d failed: %s)",
    math.floor(w.delay * 10 + 0.5) / 10, tostring(w.method), tostring(w.host), w.attempt, tostring(w.why))
end

--- The options every playbook takes, from the common flags: pipeline, subscription, progress.
function M.base_options(opts, io_)
  local p, err = M.pipeline(opts, io_.stderr)
  if not p then return nil, err end
  local sub
  sub, err = require("azcmk.cli.subscription").resolve(p, opts.subscription)
  if err then return nil, err end
  local o = { subscription = sub or p.subscription, resource_group = opts.resource_group, pipeline = p }
  o.progress = function(ev)
    -- steps are listed with the result; stderr gets what happens meanwhile
    if ev and ev.message and not ev.step then io_.stderr:write("  ", one_line(M.words(ev.message)), "\n") end
  end
  if not o.subscription then
    return nil, require("azcmk.errors").input("no subscription given", { code = "MissingSubscription",
      hint = "pass --subscription NAME_OR_ID or set AZURE_SUBSCRIPTION_ID "
        .. "(eval \"$(azcmk emulator start)\" sets it)" })
  end
  return o
end

--- Steps as readable lines.
function M.steps_text(result)
  local lines = {}
  for _, s in ipairs(result.steps or {}) do
    local what = s.name or s.id or ""
    local detail = s.detail and ("  (" .. s.detail .. ")") or ""
    lines[#lines + 1] = string.format("  %-15s %-12s %s%s", s.step, s.action, what, detail)
  end
  return table.concat(lines, "\n")
end

--- key/value rows as one object whose fields keep the rows' order: `-o table` makes them
-- columns (az's shape), headed by the names.
function M.row(rows)
  local o, keys = {}, {}
  for _, r in ipairs(rows) do
    keys[#keys + 1] = r[1]
    o[r[1]] = r[2] == nil and json.null or M.data(r[2])
  end
  return json.object(o, keys)
end

--- Writes a result (returns true, or nil, err when stdout cannot be written):
--   no -o and no --query  the readable text (text: a string)
--   else                  the JSON data (json_value, default result; camelCase), shaped by
--                         --query, in -o's format (default json); -o table without a query
--                         uses `rows` (a list of objects, or key/value pairs for one row).
function M.emit(io_, opts, result, json_value, rows, text)
  if not opts.output and not opts.query_c then return output.write(io_.stdout, text) end
  local value = M.data(json_value == nil and result or json_value)
  if opts.query_c then
    local err
    value, err = opts.query_c:search(value)
    if value == nil then return nil, err end
  end
  local table_fn = rows
  if type(rows) == "table" then table_fn = function() return M.row(rows) end end
  return output.emit(io_.stdout, value, opts.output or "json", { query = opts.query_c ~= nil,
    color = opts.output == "jsonc" and output.color_enabled(), table = table_fn })
end

-- ------------------------------------------------------------------ plans (dry runs)

--- The --dry-run flag every writing verb has.
M.DRY_RUN = { "dry-run", nil, false, "show the plan (what would change) and change nothing; with -o json "
  .. "the plan as data" }

--- The --force flag of the verbs that refuse a revoked registry (rotate, identity assign,
-- setup, doctor --fix).
M.FORCE = { "force", nil, false, "act on a revoked registry anyway (its tag azcmk-revoked): re-opens the "
  .. "key path; `azcmk restore` is the ordinary way back" }

local MARK = { create = "+", recover = "+", deploy = "+", grant = "+", assign = "+", enable = "+",
  remove = "-", reuse = "=", check = "?" }

--- A plan (the actions of a playbook's result: plan.view) as lines, one per action:
-- "+ create  key  cmk1: create the RSA 2048-bit key ...", marked + (adds), - (removes),
-- ~ (changes), = (unchanged), ? (a check).
function M.plan_lines(verb, actions)
  local lines = {}
  for _, a in ipairs(actions or {}) do
    lines[#lines + 1] = string.format("  %s %-8s %-15s %s%s", MARK[a.action] or "~", a.action, a.step,
      one_line(M.words(a.description, verb)), a.irreversible and "  (IRREVERSIBLE)" or "")
  end
  return lines
end

--- Writes the result of a dry run: -o/--query the result as data (dryRun, changes, plan, ...;
-- -o table one row per action), else the plan as lines and what a real run would change.
function M.emit_plan(io_, opts, verb, r)
  r.plan = setmetatable(r.plan or {}, M.array_mt)
  local lines = { verb .. " would (dry run):" }
  for _, l in ipairs(M.plan_lines(verb, r.plan)) do lines[#lines + 1] = l end
  for _, w in ipairs(r.warnings or {}) do lines[#lines + 1] = "  warning: " .. one_line(M.words(w, verb)) end
  lines[#lines + 1] = string.format("(dry run: nothing was changed; %d of %d actions would change something)",
    r.changes or 0, #r.plan)
  return M.emit(io_, opts, r, nil, function() return M.plan_rows(r.plan) end,
    table.concat(lines, "\n") .. "\n")
end

--- -o table of a plan: one row per action.
function M.plan_rows(plan)
  local rows = json.array()
  for i, a in ipairs(plan or {}) do
    rows[i] = json.object({ Step = a.step, Action = a.action, Name = a.name,
      Description = one_line(M.words(a.description)) }, { "Step", "Action", "Name", "Description" })
  end
  return rows
end

--- Define a verb: spec = { verb, usage, flags, build = function(opts, pos, o) (adds the verb's
-- flags to the playbook options o; returns true, or nil, err to refuse), call = function(o) ->
-- result | nil, err; on_error = function(err, opts, io)?; render = function(result, opts, io) ->
-- common.emit's true | nil, err }; positional = NAME when the verb takes words; about = text
-- for --help.
function M.verb(spec)
  return function(argv, io_)
    io_ = io_ or { stdout = io.stdout, stderr = io.stderr }
    local opts, pos = M.parse(argv, io_, spec.verb, spec.usage, spec.flags, spec.positional, spec.about)
    if not opts then return pos end
    local o, err = M.base_options(opts, io_)
    if not o then return M.fail(io_, spec.verb, err) end
    if spec.build then
      local ok, berr = spec.build(opts, pos, o)
      if not ok then return M.fail(io_, spec.verb, berr) end
    end
    local result
    result, err = spec.call(o)
    if not result then
      if spec.on_error then spec.on_error(err, opts, io_) end
      return M.fail(io_, spec.verb, err)
    end
    local ok, werr
    if result.dry_run then ok, werr = M.emit_plan(io_, opts, spec.verb, result)
    else ok, werr = spec.render(result, opts, io_) end
    if not ok then return M.fail(io_, spec.verb, werr) end
    return M.EXIT_OK
  end
end

return M
