--- Flag parsing for `azcmk` verbs, in the Azure CLI's style.
-- A verb declares its flags once; the parser gives back a table keyed by flag name
-- (`resource_group` for `-g/--resource-group`) or `nil, message` naming the bad flag.
local M = {}

-- Flags every verb understands, named like the Azure CLI's.
M.COMMON = {
  { "resource-group", "g", "NAME", "resource group" },
  { "name", "n", "NAME", "registry name" },
  { "subscription", nil, "ID", "subscription id (default: AZURE_SUBSCRIPTION_ID)" },
  { "output", "o", "FORMAT", "json or table (default: readable text)" },
  { "help", "h", false, "show the flags of this verb" },
}

local function key(long) return (long:gsub("-", "_")) end

--- Parses argv against `flags` (lists of {long, short, METAVAR|false, help}).
-- Flags with a METAVAR take a value (`--x v` or `--x=v`); others are booleans.
-- Returns opts, positional (a list) or nil, message.
function M.parse(argv, flags)
  local by_long, by_short = {}, {}
  for _, list in ipairs({ M.COMMON, flags or {} }) do
    for _, f in ipairs(list) do
      by_long[f[1]] = f
      if f[2] then by_short[f[2]] = f end
    end
  end
  local opts, positional = {}, {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local f, value
    if a == "--" then
      for j = i + 1, #argv do positional[#positional + 1] = argv[j] end
      break
    elseif a:sub(1, 2) == "--" then
      local name, v = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      value = v
      f = by_long[name]
      if not f then return nil, "unknown flag --" .. name end
    elseif a:sub(1, 1) == "-" and #a > 1 then
      f = by_short[a:sub(2)]
      if not f then return nil, "unknown flag " .. a end
    else
      positional[#positional + 1] = a
    end
    if f then
      if f[3] then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, "flag --" .. f[1] .. " needs a value (" .. f[3] .. ")" end
        end
        opts[key(f[1])] = value
      else
        if value ~= nil then return nil, "flag --" .. f[1] .. " takes no value" end
        opts[key(f[1])] = true
      end
    end
    i = i + 1
  end
  if opts.output and opts.output ~= "json" and opts.output ~= "table" then
    return nil, "--output must be json or table, not '" .. opts.output .. "'"
  end
  return opts, positional
end

--- Help text for a verb: its usage line and every flag.
function M.help(usage, flags)
  local lines = { "usage: " .. usage, "", "flags:" }
  for _, list in ipairs({ flags or {}, M.COMMON }) do
    for _, f in ipairs(list) do
      local names = (f[2] and ("-" .. f[2] .. ", ") or "    ") .. "--" .. f[1]
      if f[3] then names = names .. " " .. f[3] end
      lines[#lines + 1] = string.format("  %-34s %s", names, f[4])
    end
  end
  return table.concat(lines, "\n") .. "\n"
end

return M
