--- `azcmk audit [--subscription NAME_OR_ID ...] [-g RG] [-n REGISTRY] [--concurrency N] [--no-probe]
-- [-o FORMAT] [--query JMESPATH]`: every registry of the subscriptions (default: all the caller
-- sees) with its encryption and key health; -g / -n keep only the registries of that resource
-- group / of that name (compared case-insensitively; the others are not inspected).
-- Streamed (each registry written as soon as it is judged, memory flat for any fleet): the
-- readable text (no -o), -o ndjson (one camelCase JSON object per registry, then one line with
-- the summary) and -o prometheus (azcmk.playbook.metrics, for a textfile collector). The other
-- formats (json, jsonc, table, tsv, yaml: azcmk.cli.output) and --query shape one document,
-- worst first, written at the end. On a terminal, a progress line on stderr.
-- Exit status: 0 every registry healthy, 1 a registry failed a check, a subscription could not
-- be listed, or -g / -n matched no registry (a line on stderr says what to check), 2 bad flags.
local common = require("azcmk.cli.common")
local json = require("azcmk.json")
local output = require("azcmk.cli.output")

local M = {}

local FLAGS = {
  { "concurrency", nil, "N", "requests in flight at once (default 16)" },
  { "no-probe", nil, false, "do not probe the data plane of CMK registries" },
  -- the formats audit writes besides azcmk.cli.output's: streamed, without --query
  outputs = { "ndjson", "prometheus" },
}

local USAGE = "azcmk audit [--subscription NAME_OR_ID ...] [-g RESOURCE_GROUP] [-n REGISTRY] "
  .. "[--concurrency N] [--no-probe] [-o FORMAT] [--query JMESPATH]"

local ABOUT = "FORMAT: json, jsonc, table, tsv, yaml, none, or ndjson (a JSON object per registry as it is "
  .. "judged, then the summary) or prometheus (metrics for a textfile collector). Without -o, a "
  .. "readable table, streamed."

local audit = require("azcmk.playbook.audit")

--- "no registry matched -g X -n Y ..." when a filter was given and nothing matched, else nil.
local function no_match(result)
  if not result.filter or result.summary.registries > 0 then return nil end
  return string.format("no registry matched %s in %d subscription(s) (%d registries listed)",
    audit.filter_text(result.filter), #result.subscriptions, result.summary.listed)
end

--- --subscription may repeat and may hold comma-separated ids or names: collect them all.
local function subscriptions(argv)
  local subs, rest = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local v = a:match("^%-%-subscription=(.*)$")
    if a == "--subscription" then v = argv[i + 1]; i = i + 1 end
    if v then
      for s in v:gmatch("[^,]+") do
        s = s:match("^%s*(.-)%s*$")
        if s ~= "" then subs[#subs + 1] = s end
      end
    else
      rest[#rest + 1] = a
    end
    i = i + 1
  end
  return subs, rest
end

local function cell(v)
  if v == nil then return "-" end
  if v == true then return "yes" elseif v == false then return "no" end
  return tostring(v)
end

local function key_cell(r)
  if not r.cmk then return "-" end
  return tostring(r.vault or "?") .. "/" .. tostring(r.key_name or "?")
end

local function version_cell(v) return v and tostring(v):sub(1, 8) or "-" end

-- the streamed table: fixed widths (rows are written before the widest is known)
local WIDTHS = { 8, 20, 24, 8, 3, 32, 9, 8, 9, 5, 20, 4, 6 }
local HEAD = { "SUBSCRIPTION", "RESOURCE GROUP", "REGISTRY", "SKU", "CMK", "KEY", "VERSIONED", "IN USE",
  "NEWEST", "AGE", "IDENTITY", "DATA", "HEALTH" }

local function fixed(cells)
  local parts = {}
  for i, c in ipairs(cells) do
    parts[i] = i < #cells and (c .. string.rep(" ", (WIDTHS[i] or 0) - #c)) or c
  end
  return table.concat(parts, "  ")
end

--- The readable table's heading line.
function M.head_text() return fixed(HEAD) .. "\n" end

--- One registry's lines of the readable table (its row, its problems, the next step).
function M.row_text(r)
  local lines = { fixed({ tostring(r.subscription):sub(1, 8), cell(r.resource_group), cell(r.name),
    cell(r.sku), r.cmk and "on" or "off", key_cell(r), r.cmk and cell(r.versioned) or "-",
    version_cell(r.key_version_in_use),
    r.cmk and ((r.up_to_date and "=" or "") .. version_cell(r.newest_key_version)) or "-",
    r.key_age_days and (r.key_age_days .. "d") or "-",
    r.cmk and (tostring(r.identity) .. ":" .. tostring(r.identity_health)) or "-", cell(r.data_plane),
    r.health }) }
  for _, pb in ipairs(r.problems) do lines[#lines + 1] = "  " .. r.name .. ": " .. pb end
  if r.health == "fail" and r.cmk then
    lines[#lines + 1] = "  " .. r.name .. ": next: azcmk doctor -n " .. r.name .. " -g "
      .. tostring(r.resource_group) .. " --subscription " .. tostring(r.subscription)
  end
  return table.concat(lines, "\n") .. "\n"
end

--- What follows the streamed rows: subscriptions that failed, no match, the summary.
function M.tail_text(result)
  local lines = {}
  for _, s in ipairs(result.subscriptions) do
    if s.error then
      lines[#lines + 1] = "subscription " .. s.id .. ": cannot list registries: "
        .. tostring(s.error.status) .. " " .. tostring(s.error.code) .. " "
        .. common.one_line(s.error.message)
    end
  end
  local none = no_match(result)
  if none then lines[#lines + 1] = none end
  local sm = result.summary
  lines[#lines + 1] = string.format("%d registries in %d subscription(s): %d with CMK; %d ok, %d warn, "
    .. "%d fail", sm.registries, #result.subscriptions, sm.cmk, sm.ok, sm.warn, sm.fail)
  return table.concat(lines, "\n") .. "\n"
end

--- The readable table of a whole result (its rows as they are ordered, then the tail).
function M.table_text(result)
  local parts = { M.head_text() }
  for _, r in ipairs(result.registries) do parts[#parts + 1] = M.row_text(r) end
  parts[#parts + 1] = M.tail_text(result)
  return table.concat(parts)
end

local ROW = { "Subscription", "ResourceGroup", "Registry", "Sku", "Cmk", "Key", "KeyVersionInUse",
  "NewestKeyVersion", "KeyAgeDays", "Identity", "DataPlane", "Health" }

--- -o table: one row per registry, worst first, columns in ROW's order.
function M.rows(result)
  local rows = {}
  for i, r in ipairs(result.registries) do
    rows[i] = json.object({ Subscription = r.subscription, ResourceGroup = r.resource_group,
      Registry = r.name, Sku = r.sku, Cmk = r.cmk, Key = r.cmk and key_cell(r) or nil,
      KeyVersionInUse = r.key_version_in_use,
      NewestKeyVersion = r.newest_key_version, KeyAgeDays = r.key_age_days,
      Identity = r.cmk and (tostring(r.identity) .. ":" .. tostring(r.identity_health)) or nil,
      DataPlane = r.data_plane, Health = r.health }, ROW)
  end
  return json.array(rows)
end

-- a row as JSON data: problems always a list
local function row_value(r)
  local c = {}
  for k, v in pairs(r) do c[k] = v end
  c.problems = setmetatable(r.problems, common.array_mt)
  return c
end

local function json_value(result)
  local rows = {}
  for i, r in ipairs(result.registries) do rows[i] = row_value(r) end
  return { subscriptions = setmetatable(result.subscriptions, common.array_mt),
    registries = setmetatable(rows, common.array_mt), summary = result.summary, filter = result.filter }
end

-- The progress line: redrawn in place on a terminal at most 10 times a second, then erased.
-- Returns show(event), clear().
local function progress_line(stderr, tty)
  local last, shown = 0, false
  local clock = require("azcmk.clock")
  return function(ev)
    if ev.message then stderr:write("  ", common.one_line(ev.message), "\n") return end
    if not tty then return end
    local t = clock.now()
    if t - last < 0.1 then return end
    last, shown = t, true
    stderr:write(string.format("\r\27[K  audit: %d registries judged of %d listed; "
      .. "%d of %d subscriptions listed", ev.registries, ev.listed, ev.subscriptions_done, ev.subscriptions))
  end, function() if shown then stderr:write("\r\27[K") end end
end

-- Where the rows go: { on_row = function(row) (streamed formats), keep = true (the rest: one
-- document at the end), finish = function(result) -> true | nil, err }. A streamed write that
-- fails stops the writing; finish returns its error.
local function sink(opts, io_)
  local failed
  local function put(text)
    if failed then return end
    local ok, err = output.write(io_.stdout, text)
    if not ok then failed = err end
  end
  local function done() if failed then return nil, failed end return true end
  local out = opts.output
  if not out and not opts.query_c then
    put(M.head_text())
    return { on_row = function(r) put(M.row_text(r)) end,
      finish = function(result) put(M.tail_text(result)); return done() end }
  elseif out == "ndjson" then
    return { on_row = function(r) put(json.encode(common.data(row_value(r))) .. "\n") end,
      finish = function(result)
        put(json.encode(common.data({ summary = result.summary, filter = result.filter,
          subscriptions = setmetatable(result.subscriptions, common.array_mt) })) .. "\n")
        return done()
      end }
  elseif out == "prometheus" then
    local w = require("azcmk.playbook.metrics").writer({ spill = true })
    return { on_row = function(r) w:add(r, os.time()) end,
      finish = function()
        w:finish({ write = function(_, ...) put(table.concat({ ... })) end })
        return done()
      end }
  end
  return { keep = true, finish = function(result)
    return common.emit(io_, opts, json_value(result), nil, function() return M.rows(result) end)
  end }
end

function M.run(argv, io_)
  io_ = io_ or { stdout = io.stdout, stderr = io.stderr }
  local subs, rest = subscriptions(argv)
  local opts, code = common.parse(rest, io_, "audit", USAGE, FLAGS, nil, ABOUT)
  if not opts then return code end
  if opts.query_c and (opts.output == "ndjson" or opts.output == "prometheus") then
    return common.fail(io_, "audit", require("azcmk.errors").input("--query shapes one JSON document; -o "
      .. opts.output .. " is written row by row", { code = "InvalidArgumentCombination", param = "query",
        hint = "drop --query, or use -o json with --query" }))
  end
  local conc
  if opts.concurrency then
    conc = tonumber(opts.concurrency)
    if not conc or conc < 1 or conc > 256 or conc ~= math.floor(conc) then
      io_.stderr:write("azcmk audit: --concurrency must be a whole number from 1 to 256\n")
      return common.EXIT_REFUSED
    end
  end
  local p, err = common.pipeline(opts, io_.stderr)
  if not p then return common.fail(io_, "audit", err) end
  for i, s in ipairs(subs) do
    subs[i], err = require("azcmk.cli.subscription").resolve(p, s)
    if not subs[i] then return common.fail(io_, "audit", err) end
  end
  local tty = io_.tty
  if tty == nil then tty = output.isatty(2) end
  local show, clear = progress_line(io_.stderr, tty)
  local to = sink(opts, io_)
  local result
  result, err = audit.audit({ pipeline = p, subscriptions = #subs > 0 and subs or nil,
    resource_group = opts.resource_group, name = opts.name, concurrency = conc, probe = not opts.no_probe,
    on_row = to.on_row, keep = to.keep, progress = show })
  clear()
  if not result then return common.fail(io_, "audit", err) end
  local ok, werr = to.finish(result)
  if not ok then return common.fail(io_, "audit", werr) end
  if result.filter then
    io_.stderr:write(string.format("  %d of %d registries in %d subscription(s) match %s\n",
      result.summary.registries, result.summary.listed, #result.subscriptions,
      audit.filter_text(result.filter)))
  end
  local bad = result.summary.fail > 0
  for _, s in ipairs(result.subscriptions) do if s.error then bad = true end end
  local none = no_match(result)
  if none then
    -- the user named a group / registry that is not there: a failure, not a healthy fleet
    io_.stderr:write(common.error_line("audit", { message = none, code = "NoMatchingRegistry",
      hint = "check the resource group and registry names (az acr list -o table) and --subscription"
        .. " (default: every subscription the caller sees)" }), "\n")
    bad = true
  end
  return bad and common.EXIT_FAILED or common.EXIT_OK
end

return M
