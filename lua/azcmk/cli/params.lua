--- The library's words in the command line's: the library names options (an error's `param`,
-- and between backticks in hints, doctor fixes and warnings), the command line names flags.
-- This is the one table that maps the two, and the one function that rewrites library text:
--
--   `registry`                     -> -n/--name
--   `enable_purge_protection = true` -> --enable-purge-protection
--   `key = other-key`              -> --key other-key
--   `rotate{registry = "r1", identity = "[system]"}` -> `azcmk rotate -n r1 --identity [system]`
--
-- Anything else between backticks (`az keyvault show ...`, an unknown name) stays as it is.
local M = {}

-- option -> { long flag, short flag? }
M.FLAGS = {
  registry = { "name", "n" }, resource_group = { "resource-group", "g" }, subscription = { "subscription" },
  vault = { "vault" }, key = { "key" }, key_id = { "key-encryption-key" }, identity = { "identity" },
  location = { "location", "l" }, access = { "access" }, versionless = { "versionless" },
  enable_purge_protection = { "enable-purge-protection" }, key_type = { "key-type" },
  key_size = { "key-size" }, sku = { "sku" }, yes = { "yes", "y" }, fix = { "fix" },
  dry_run = { "dry-run" }, force = { "force" }, new_version = { "new-version" }, disable = { "disable" },
  template_file = { "template-file", "f" }, parameters = { "parameters", "p" }, mode = { "mode" },
  probe = { "probe" }, concurrency = { "concurrency" }, output = { "output", "o" },
  repository = { "repository" },
}

-- verb -> option -> flag, where a verb names an option otherwise
M.VERB_FLAGS = { deploy = { name = { "name", "n" } }, audit = { name = { "name", "n" },
  subscriptions = { "subscription" } }, emulator = { port = { "port" } },
  recover = { vault = { "vault-name" } } }

-- option = false -> the flag that says so
M.FALSE_FLAGS = { versionless = "--versioned", new_version = "--keep-version" }

-- playbook -> command
M.COMMANDS = { identity_assign = "identity assign" }

local function flag_of(name, verb)
  local f = (M.VERB_FLAGS[verb] or {})[name] or M.FLAGS[name]
  return f
end

--- The flag of option `name` for `verb`, as help spells it ("-n/--name", "--vault"), or nil.
function M.flag(name, verb)
  local f = flag_of(name, verb)
  if not f then return nil end
  return (f[2] and ("-" .. f[2] .. "/") or "") .. "--" .. f[1]
end

-- "--vault kv1", "--versionless", "--versioned" (false), or nil for an unknown option
local function flag_value(name, value, verb, short)
  local f = flag_of(name, verb)
  if not f then return nil end
  local flag = (short and f[2]) and ("-" .. f[2]) or ("--" .. f[1])
  if value == "true" then return flag end
  if value == "false" then return M.FALSE_FLAGS[name] end
  if value == nil then return M.flag(name, verb) end
  return flag .. " " .. value
end

-- `v` of a `k = v` pair: a quoted string loses its quotes
local function unquote(v)
  v = v:match("^%s*(.-)%s*$")
  return v:match('^"(.*)"$') or v:match("^'(.*)'$") or v
end

-- verb{k = v, ...} -> azcmk verb --flag v ..., or nil when a key has no flag
local function command(verb, args)
  local parts = { "azcmk", M.COMMANDS[verb] or verb }
  local body = args:sub(2, -2)
  local i = 1
  while i <= #body do
    local k, rest = body:match("^%s*([%w_]+)%s*=%s*()", i)
    if not k then break end
    local v, after
    if body:sub(rest, rest) == '"' then
      local close = body:find('"', rest + 1, true)
      if not close then return nil end
      v, after = body:sub(rest, close), close + 1
    else
      local stop = body:find(",", rest, true) or (#body + 1)
      v, after = body:sub(rest, stop - 1), stop
    end
    local fv = flag_value(k, unquote(v), verb, true)
    if not fv then return nil end
    parts[#parts + 1] = fv
    i = (body:find(",", after, true) or #body) + 1
  end
  return table.concat(parts, " ")
end

local function rewrite(inner, verb)
  local name, args = inner:match("^([%w_]+)(%b{})$")
  if name then
    local c = command(name, args)
    return c and ("`" .. c .. "`") or nil
  end
  local k, v = inner:match("^([%w_]+)%s*=%s*(.-)%s*$")
  if k then return flag_value(k, unquote(v), verb) end
  if inner:match("^[%w_]+$") then return M.flag(inner, verb) end
  return nil
end

--- Library text -> command-line text (see the top of this file). verb: the running verb.
function M.text(s, verb)
  if type(s) ~= "string" then return s end
  return (s:gsub("`([^`]+)`", function(inner) return rewrite(inner, verb) end))
end

return M
