--- azcmk.json: the JSON value model that `--query` (azcmk.jmespath) and `-o` (azcmk.cli.output)
-- share, with a decoder and encoders for it.
--
-- Values are plain Lua values: JSON null is json.null (lua-cjson's null), booleans, numbers and
-- strings are themselves, arrays and objects are tables. A table is an array when it carries
-- json.array_mt (json.array(t) marks one) or, unmarked, when it is a non-empty sequence; any
-- other table is an object, so an unmarked empty table is {} (as lua-cjson encodes it). Debian's
-- lua-cjson 2.1.0 cannot mark arrays, so json.decode here keeps [] apart from {} itself.
-- Objects may carry their key order (json.object(t, keys)); others list their keys sorted.
local cjson = require("cjson.safe")

local M = {}

M.null = cjson.null

local array_mt = { __name = "azcmk.json.array" }
M.array_mt = array_mt

local type, pairs, getmetatable, setmetatable = type, pairs, getmetatable, setmetatable
local byte, char, find, sub, format = string.byte, string.char, string.find, string.sub, string.format
local concat, sort, floor, huge = table.concat, table.sort, math.floor, math.huge
local math_type = rawget(math, "type") -- Lua 5.4 only (nil on LuaJIT)

--- Marks t (default: a new table) as an array; returns it.
function M.array(t)
  return setmetatable(t or {}, array_mt)
end

--- An object whose keys come out in the order of the list keys (where the table still
-- holds them). Returns t.
function M.object(t, keys)
  return setmetatable(t, { __keys = keys })
end

local function is_array(t)
  local mt = getmetatable(t)
  if mt == array_mt then return true end
  if mt ~= nil or t[1] == nil then return false end
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
  end
  return true
end

function M.is_array(v) return type(v) == "table" and is_array(v) end
function M.is_object(v) return type(v) == "table" and not is_array(v) end

--- The JSON type of v: "null", "boolean", "number", "string", "array" or "object"
-- (nil counts as null; functions and other Lua values as nil too, they have no JSON form).
function M.type(v)
  local t = type(v)
  if t == "table" then return is_array(v) and "array" or "object" end
  if t == "string" or t == "number" or t == "boolean" then return t end
  return "null"
end

--- The keys of an object: its recorded order if it has one, else sorted. Keys that are not
-- strings and fields holding functions (no JSON form) are left out.
function M.keys(t)
  local mt = getmetatable(t)
  local out = {}
  if mt and mt.__keys then
    for _, k in ipairs(mt.__keys) do
      if t[k] ~= nil then out[#out + 1] = k end
    end
    return out
  end
  for k, v in pairs(t) do
    if type(k) == "string" and type(v) ~= "function" then out[#out + 1] = k end
  end
  sort(out)
  return out
end

--- Deep equality of two JSON values (nil counts as null; 1 == 1.0; true is not 1; key order
-- does not matter).
local function equal(a, b)
  if a == nil then a = M.null end
  if b == nil then b = M.null end
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  local aa = is_array(a)
  if aa ~= is_array(b) then return false end
  if aa then
    if #a ~= #b then return false end
    for i = 1, #a do if not equal(a[i], b[i]) then return false end end
    return true
  end
  for k, v in pairs(a) do
    if type(k) == "string" and type(v) ~= "function" and not equal(v, b[k]) then return false end
  end
  for k, v in pairs(b) do
    if type(k) == "string" and type(v) ~= "function" and a[k] == nil then return false end
  end
  return true
end
M.equal = equal

-- ------------------------------------------------------------------ decode

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r",
  t = "\t" }

local function utf8_char(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64,
    0x80 + cp % 64)
end
M.utf8_char = utf8_char

local MAX_DEPTH = 512

--- Decodes JSON text s (RFC 8259; surrounding whitespace allowed). Arrays come back marked,
-- objects with their key order, numbers as tonumber reads them (integers stay integers on
-- Lua 5.4). Returns the value, or nil, message (with the byte offset).
function M.decode(s)
  if type(s) ~= "string" then return nil, "JSON text expected, got " .. type(s) end
  local pos = 1
  local function fail(msg) error({ json = msg .. " at byte " .. pos }, 0) end
  local function ws() pos = find(s, "[^ \t\r\n]", pos) or #s + 1 end

  local function str()
    local out, i = {}, pos + 1
    while true do
      local j = find(s, '["\\%z\1-\31]', i)
      if not j then pos = #s + 1 fail("unterminated string") end
      out[#out + 1] = sub(s, i, j - 1)
      local c = byte(s, j)
      if c == 34 then pos = j + 1 return concat(out) end
      if c ~= 92 then pos = j fail("control character in string") end
      local e = sub(s, j + 1, j + 1)
      if e == "u" then
        local cp = tonumber(sub(s, j + 2, j + 5):match("^%x%x%x%x$") or "", 16)
        if not cp then pos = j fail("bad \\u escape") end
        i = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = sub(s, i, i + 1) == "\\u"
            and tonumber(sub(s, i + 2, i + 5):match("^%x%x%x%x$") or "", 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            i = i + 6
          end
        end
        out[#out + 1] = utf8_char(cp)
      else
        local m = ESCAPES[e]
        if not m then pos = j fail("bad escape") end
        out[#out + 1] = m
        i = j + 2
      end
    end
  end

  local value
  local function members(depth)
    local t, keys = {}, {}
    pos = pos + 1
    ws()
    if byte(s, pos) == 125 then pos = pos + 1 return M.object(t, keys) end
    while true do
      if byte(s, pos) ~= 34 then fail("object key expected") end
      local k = str()
      ws()
      if byte(s, pos) ~= 58 then fail("':' expected") end
      pos = pos + 1
      if t[k] == nil then keys[#keys + 1] = k end
      t[k] = value(depth + 1)
      ws()
      local c = byte(s, pos)
      pos = pos + 1
      if c == 125 then return M.object(t, keys) end
      if c ~= 44 then pos = pos - 1 fail("',' or '}' expected") end
      ws()
    end
  end
  local function elements(depth)
    local t, n = setmetatable({}, array_mt), 0
    pos = pos + 1
    ws()
    if byte(s, pos) == 93 then pos = pos + 1 return t end
    while true do
      n = n + 1
      t[n] = value(depth + 1)
      ws()
      local c = byte(s, pos)
      pos = pos + 1
      if c == 93 then return t end
      if c ~= 44 then pos = pos - 1 fail("',' or ']' expected") end
    end
  end
  value = function(depth)
    if depth > MAX_DEPTH then fail("nested too deep") end
    ws()
    local c = byte(s, pos)
    if c == 123 then return members(depth)
    elseif c == 91 then return elements(depth)
    elseif c == 34 then return str()
    elseif c == 116 and sub(s, pos, pos + 3) == "true" then pos = pos + 4 return true
    elseif c == 102 and sub(s, pos, pos + 4) == "false" then pos = pos + 5 return false
    elseif c == 110 and sub(s, pos, pos + 3) == "null" then pos = pos + 4 return M.null
    end
    local a, b, int = find(s, "^-?(%d+)", pos)
    if not a or (#int > 1 and byte(int) == 48) then fail(c and "unexpected character" or "unexpected end") end
    local _, fb = find(s, "^%.%d+", b + 1)
    b = fb or b
    local _, eb = find(s, "^[eE][-+]?%d+", b + 1)
    b = eb or b
    local n = tonumber(sub(s, pos, b))
    pos = b + 1
    return n
  end

  local ok, v = pcall(function()
    local r = value(0)
    ws()
    if pos <= #s then fail("trailing characters") end
    return r
  end)
  if ok then return v end
  if type(v) == "table" and v.json then return nil, v.json end
  error(v, 0)
end

-- ------------------------------------------------------------------ encode

--- A number as Python's json module writes it: integers plainly; other floats in the
-- shortest form that reads back the same (repr), 1e+16 style past 16 digits.
-- Floats with an integral value below 1e16 are written as integers: lua-cjson decodes every
-- number as a float, so 2.0 most likely was 2 in the text.
function M.number(n)
  if n ~= n then return "NaN" end
  if n == huge then return "Infinity" elseif n == -huge then return "-Infinity" end
  if math_type and math_type(n) == "integer" then return format("%d", n) end
  if n % 1 == 0 and n > -1e16 and n < 1e16 then return format("%d", n) end
  local s
  for p = 0, 16 do
    s = format("%." .. p .. "e", n)
    if tonumber(s) == n then break end
  end
  local sign, int, frac, exp = s:match("^(-?)(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (int .. frac):gsub("0+$", "")
  if digits == "" then digits = "0" end
  local point = tonumber(exp) + 1      -- digits before the decimal point
  if point > -4 and point <= 16 then
    if point <= 0 then return sign .. "0." .. ("0"):rep(-point) .. digits end
    if point >= #digits then return sign .. digits .. ("0"):rep(point - #digits) .. ".0" end
    return sign .. sub(digits, 1, point) .. "." .. sub(digits, point + 1)
  end
  local e = point - 1
  local mant = #digits > 1 and (sub(digits, 1, 1) .. "." .. sub(digits, 2)) or digits
  return format("%s%se%s%02d", sign, mant, e < 0 and "-" or "+", e < 0 and -e or e)
end

local SHORT_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }
local function esc_control(c) return SHORT_ESC[c] or format("\\u%04x", byte(c)) end

-- Code points of a UTF-8 string as \uXXXX escapes (surrogate pairs above U+FFFF); bytes that
-- are not valid UTF-8 come out as the code point of the byte itself.
local function esc_unicode(seq)
  local out, i, n = {}, 1, #seq
  while i <= n do
    local c = byte(seq, i)
    local cp, len
    if c >= 0xF0 and c < 0xF5 and i + 3 <= n then
      cp, len = (c - 0xF0) * 262144 + (byte(seq, i + 1) - 0x80) * 4096 + (byte(seq, i + 2) - 0x80) * 64
        + byte(seq, i + 3) - 0x80, 4
    elseif c >= 0xE0 and c < 0xF0 and i + 2 <= n then
      cp, len = (c - 0xE0) * 4096 + (byte(seq, i + 1) - 0x80) * 64 + byte(seq, i + 2) - 0x80, 3
    elseif c >= 0xC2 and c < 0xE0 and i + 1 <= n then
      cp, len = (c - 0xC0) * 64 + byte(seq, i + 1) - 0x80, 2
    else
      cp, len = c, 1
    end
    if cp >= 0x10000 then
      cp = cp - 0x10000
      out[#out + 1] = format("\\u%04x\\u%04x", 0xD800 + floor(cp / 1024), 0xDC00 + cp % 1024)
    else
      out[#out + 1] = format("\\u%04x", cp)
    end
    i = i + len
  end
  return concat(out)
end

--- A JSON string literal for s, escaped as Python's json module does (ascii = true also
-- escapes every non-ASCII character, like its default ensure_ascii).
function M.quote(s, ascii)
  -- most strings (names, ids, states) need no escape at all
  if not find(s, ascii and '[%c"\\\128-\255]' or '[%c"\\]') then return '"' .. s .. '"' end
  s = s:gsub('[%c"\\]', esc_control)
  if ascii and find(s, "[\128-\255]") then s = s:gsub("[\128-\255]+", esc_unicode) end
  return '"' .. s .. '"'
end
local quote = M.quote

local function encoder(opts)
  local indent, sorted, ascii = opts.indent, opts.sort_keys, opts.ascii
  local item_sep = opts.indent and "," or (opts.compact and "," or ", ")
  local key_sep = (opts.compact and not opts.indent) and ":" or ": "
  local out, n = {}, 0
  local function put(s) n = n + 1 out[n] = s end
  local enc
  enc = function(v, depth)
    local t = type(v)
    if t == "string" then put(quote(v, ascii))
    elseif t == "number" then put(M.number(v))
    elseif t == "boolean" then put(v and "true" or "false")
    elseif t ~= "table" then put("null")
    else
      if depth > MAX_DEPTH then error("azcmk.json: nested too deep (or a cycle)", 0) end
      local nl = indent and ("\n" .. (" "):rep(indent * (depth + 1))) or ""
      if is_array(v) then
        if v[1] == nil then put("[]") return end
        put("[")
        for i = 1, #v do
          if i > 1 then put(item_sep) end
          put(nl)
          enc(v[i], depth + 1)
        end
        put(indent and ("\n" .. (" "):rep(indent * depth) .. "]") or "]")
      else
        local keys = M.keys(v)
        if sorted and getmetatable(v) then sort(keys) end
        if keys[1] == nil then put("{}") return end
        put("{")
        for i, k in ipairs(keys) do
          if i > 1 then put(item_sep) end
          put(nl)
          put(quote(k, ascii))
          put(key_sep)
          enc(v[k], depth + 1)
        end
        put(indent and ("\n" .. (" "):rep(indent * depth) .. "}") or "}")
      end
    end
  end
  return function(v)
    out, n = {}, 0
    enc(v, 0)
    return concat(out)
  end
end

local compact_enc = encoder({ compact = true, ascii = true })
local pretty_enc = encoder({ indent = 2, sort_keys = true })

--- Compact JSON as Python's json.dumps(v, separators=(",", ":")) writes it (keys in the
-- object's order, non-ASCII escaped): what JMESPath's to_string returns.
function M.encode(v) return compact_enc(v) end

--- Indented JSON as the Azure CLI writes it (json.dumps(indent=2, sort_keys=True,
-- ensure_ascii=False)), without a final newline.
function M.pretty(v) return pretty_enc(v) end

return M
