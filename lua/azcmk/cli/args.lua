--- Flag parsing for `azcmk` verbs, in the Azure CLI's style, on lua-argparse (Debian's
-- maintained parser: `--x v` and `--x=v`, `--`, short flags, and a did-you-mean for a
-- mistyped flag or verb). A verb declares its flags once; the parser gives back a table keyed
-- by flag name (`resource_group` for `-g/--resource-group`) or `nil, message` naming the bad
-- flag, with the suggestion on the same line.
local argparse = require("argparse")

local M = {}

-- A flag: { long, short|nil, METAVAR|false (false: takes no value), help, aliases = {...} }.
-- aliases are older or other names of the same flag (e.g. --vault for --vault-name): accepted,
-- listed in --help after the flag's help.

-- Flags every verb understands, named like the Azure CLI's.
M.COMMON = {
  { "resource-group", "g", "NAME", "resource group" },
  { "name", "n", "NAME", "registry name" },
  { "subscription", nil, "NAME_OR_ID", "subscription name or id (default: AZURE_SUBSCRIPTION_ID)" },
  { "output", "o", "FORMAT", "json, jsonc, table, tsv, yaml or none (default: readable text; "
    .. "docs/cli-output.md)" },
  { "query", nil, "JMESPATH", "JMESPath query on the JSON result (default output then json)" },
  { "verbose", nil, false, "one line per HTTP request on stderr (as AZCMK_LOG=info)" },
  { "debug", nil, false, "also headers and bodies, secrets redacted (as AZCMK_LOG=debug)" },
  { "help", "h", false, "show the flags of this verb" },
}

--- What --help says about the environment (printed by every verb's help).
M.ENVIRONMENT = {
  "environment:",
  "  AZURE_SUBSCRIPTION_ID  the subscription when --subscription is not given",
  "  AZCMK_LOG              off (default), error, warn, info or debug: request logging on stderr",
  "                         (--verbose = info, --debug = debug)",
  "  AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, ...  the credential (see the README)",
}

local function key(long) return (long:gsub("-", "_")) end

-- The verb's flags, then the common ones it does not redefine (deploy's -n names the
-- deployment, not a registry).
local function all_flags(flags)
  local list, own = {}, {}
  for _, f in ipairs(flags or {}) do list[#list + 1] = f; own[f[1]] = true end
  for _, f in ipairs(M.COMMON) do if not own[f[1]] then list[#list + 1] = f end end
  return list
end

local function names(f)
  local n = (f[2] and ("-" .. f[2] .. " ") or "") .. "--" .. f[1]
  for _, a in ipairs(f.aliases or {}) do n = n .. " --" .. a end
  return n
end

-- argparse's messages on one line, in the command line's words ("flag", not "option").
local function one_line(msg)
  msg = tostring(msg):gsub("^unknown option", "unknown flag"):gsub("^option", "flag")
  msg = msg:gsub("\nDid you mean", "; did you mean"):gsub("\n", " ")
  return msg
end

--- Parses argv against `flags` (lists as above) and the common ones. positional: nil (no
-- positional words accepted) or a name (any number of words, returned as the second value).
-- Returns opts, positional (a list) or nil, message.
function M.parse(argv, flags, positional)
  local p = argparse("azcmk"):add_help(false)
  for _, f in ipairs(all_flags(flags)) do
    local e = f[3] and p:option(names(f)):argname(f[3]) or p:flag(names(f))
    e:target(key(f[1]))
  end
  if positional then p:argument(positional):args("*"):target("_positional") end
  local ok, r = p:pparse(argv)
  if not ok then return nil, one_line(r) end
  local words = r._positional or {}
  r._positional = nil
  return r, words
end

--- Did-you-mean for a verb: nil when `verb` is one of `verbs`, else the message
-- ("unknown verb 'shwo'; did you mean 'show'?").
function M.unknown_verb(verb, verbs)
  local p = argparse("azcmk"):add_help(false):handle_options(false)
  for _, v in ipairs(verbs) do p:command(v) end
  local ok, msg = p:pparse({ verb })
  if ok then return nil end
  return (one_line(msg):gsub("^unknown command", "unknown verb"))
end

--- Help text for a verb: its usage line, a description, every flag and the environment.
function M.help(usage, flags, about)
  local lines = { "usage: " .. usage, "" }
  if about then lines[#lines + 1] = about; lines[#lines + 1] = "" end
  lines[#lines + 1] = "flags:"
  for _, f in ipairs(all_flags(flags)) do
    local n = (f[2] and ("-" .. f[2] .. ", ") or "    ") .. "--" .. f[1]
    if f[3] then n = n .. " " .. f[3] end
    local text = f[4]
    if f.aliases then text = text .. " (also --" .. table.concat(f.aliases, ", --") .. ")" end
    lines[#lines + 1] = string.format("  %-34s %s", n, text)
  end
  lines[#lines + 1] = ""
  for _, l in ipairs(M.ENVIRONMENT) do lines[#lines + 1] = l end
  return table.concat(lines, "\n") .. "\n"
end

return M
