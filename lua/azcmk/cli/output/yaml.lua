--- `-o yaml` as the Azure CLI writes it (PyYAML's safe_dump(default_flow_style=False,
-- allow_unicode=True)): block style, keys sorted, lists under a key not indented, empty
-- lists and objects as [] and {}, lines folded at 80 columns.
-- The emitting is LibYAML's, through Debian's lua-yaml (lyaml's low-level emitter): PyYAML's
-- emitter is a port of LibYAML's, so quoting, escaping and folding come out the same. What
-- PyYAML adds on top is done here: which strings must be quoted because they would read back
-- as something else (true, 1.5, null, 2024-01-01, ...: PyYAML's YAML 1.1 implicit types),
-- how numbers are written, and the "..." that ends a document that is a bare plain scalar.
local json = require("azcmk.json")

local M = {}

local find, match = string.find, string.match

-- ------------------------------------------------------------------ PyYAML's implicit types

local BOOL = {}
for w in ("yes Yes YES no No NO true True TRUE false False FALSE on On ON off Off OFF"):gmatch("%S+") do
  BOOL[w] = true
end
local NULL = { ["~"] = true, null = true, Null = true, NULL = true, [""] = true }

-- digits with "_" and at least one ":[0-5]?[0-9]" group after them (sexagesimal)
local function sexagesimal(s, first)
  local head, rest = match(s, "^(" .. first .. "[%d_]*)(:.*)$")
  if not head then return false end
  for part in rest:gmatch(":([^:]*)") do
    if not find(part, "^[0-5]?%d$") then return false end
  end
  return not find(rest, "::") and not find(rest, ":$")
end

local function is_float(s)
  local body = match(s, "^(.-)[eE][-+]%d+$")
  local mant = body or s
  local unsigned = match(mant, "^[-+]?(.*)$")
  if find(unsigned, "^%d[%d_]*%.[%d_]*$") then return true end
  if find(mant, "^%.%d[%d_]*$") then return true end
  if body then return false end
  local int, frac = match(unsigned, "^(.-)(%.[%d_]*)$")
  if int and sexagesimal(int, "%d") and frac then return true end
  return find(s, "^[-+]?%.inf$") or find(s, "^[-+]?%.Inf$") or find(s, "^[-+]?%.INF$")
    or s == ".nan" or s == ".NaN" or s == ".NAN"
end

local function is_int(s)
  local u = match(s, "^[-+]?(.*)$")
  return find(u, "^0b[01_]+$") or find(u, "^0[0-7_]+$") or u == "0" or find(u, "^[1-9][%d_]*$")
    or find(u, "^0x[%x_]+$") or sexagesimal(u, "[1-9]")
end

local function is_timestamp(s)
  if find(s, "^%d%d%d%d%-%d%d%-%d%d$") then return true end
  local _, e = find(s, "^%d%d%d%d%-%d%d?%-%d%d?")
  if not e then return false end
  local i = e + 1
  local function eat(p)
    local _, x = find(s, "^" .. p, i)
    if x then i = x + 1 return true end
    return false
  end
  if not (eat("[Tt]") or eat("[ \t]+")) then return false end
  if not eat("%d%d?:%d%d:%d%d") then return false end
  eat("%.%d*")
  local before = i
  eat("[ \t]*")
  if not (eat("Z") or (eat("[-+]%d%d?") and (eat(":%d%d") or true))) then i = before end
  return i == #s + 1
end

--- Would PyYAML read the plain scalar s back as something other than a string?
function M.implicit(s)
  return BOOL[s] or NULL[s] or s == "<<" or s == "=" or is_float(s) or is_int(s) or is_timestamp(s)
    or false
end

-- ------------------------------------------------------------------ emitting

-- A float as PyYAML's represent_float writes it: repr(), with ".0" put before the exponent
-- when repr has no point (1e+16 -> 1.0e+16).
local function number(n)
  if n ~= n then return ".nan" end
  if n == math.huge then return ".inf" elseif n == -math.huge then return "-.inf" end
  local s = json.number(n):lower()
  if not find(s, ".", 1, true) and find(s, "e", 1, true) then s = s:gsub("e", ".0e", 1) end
  return s
end

local function events(v, out)
  local t = json.type(v)
  if t == "array" then
    out[#out + 1] = { type = "SEQUENCE_START", style = "BLOCK" }
    for i = 1, #v do events(v[i], out) end
    out[#out + 1] = { type = "SEQUENCE_END" }
  elseif t == "object" then
    out[#out + 1] = { type = "MAPPING_START", style = "BLOCK" }
    local keys = json.keys(v)
    table.sort(keys)
    for _, k in ipairs(keys) do
      events(k, out)
      events(v[k], out)
    end
    out[#out + 1] = { type = "MAPPING_END" }
  elseif t == "string" then
    local plain_ok = not M.implicit(v)
    -- no style: LibYAML picks plain, quoted or double-quoted as PyYAML's emitter does
    out[#out + 1] = { type = "SCALAR", value = v, plain_implicit = plain_ok, quoted_implicit = true }
  else
    local text = t == "null" and "null" or t == "boolean" and tostring(v) or number(v)
    out[#out + 1] = { type = "SCALAR", value = text, plain_implicit = true, quoted_implicit = true,
      style = "PLAIN" }
  end
end

--- The YAML text for value, or nil, message, code (YamlUnavailable: lua-yaml is missing;
-- YamlEmitFailed: LibYAML refused the value, e.g. a string that is not UTF-8).
function M.render(value)
  local ok, yaml = pcall(require, "yaml")
  if not ok or type(yaml) ~= "table" or not yaml.emitter then
    return nil, "-o yaml needs LibYAML's Lua binding, which is not installed", "YamlUnavailable"
  end
  local list = { { type = "STREAM_START", encoding = "UTF8" }, { type = "DOCUMENT_START", implicit = true } }
  events(value, list)
  list[#list + 1] = { type = "DOCUMENT_END", implicit = true }
  list[#list + 1] = { type = "STREAM_END" }
  local e = yaml.emitter()
  local text
  for _, ev in ipairs(list) do
    local fine, r = e.emit(ev)
    if not fine then return nil, "the YAML emitter refused the result: " .. tostring(r), "YamlEmitFailed" end
    text = r
  end
  -- PyYAML ends a document that is one plain scalar with "...", LibYAML does not.
  local t = json.type(value)
  if t ~= "array" and t ~= "object" and not find(text, "^['\"]") then text = text .. "...\n" end
  return text
end

return M
