--- emu.json: JSON for the emulator. Decoding uses lua-cjson; encoding is done here, because
-- Debian's lua-cjson 2.1.0 has no array marker (an empty array would come out as {}) and
-- escapes "/". json.array(t) marks a table as an array (so [] stays []), json.null is JSON
-- null, decoded arrays carry the mark. decode never raises (nil, err); encode raises on
-- values JSON cannot hold (a programming error).
local cjson = require("cjson.safe")
cjson.decode_max_depth(64)

local M = { null = cjson.null }

local array_mt = { __name = "json.array" }
M.array_mt = array_mt

function M.array(t)
  return setmetatable(t or {}, array_mt)
end

function M.is_array(t)
  return getmetatable(t) == array_mt
end

-- ---------------------------------------------------------------- encode

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n",
  ["\r"] = "\\r", ["\t"] = "\\t" }
local function esc_char(c) return ESC[c] or string.format("\\u%04x", c:byte()) end

local function str(s)
  return '"' .. s:gsub('[%c"\\]', esc_char) .. '"'
end

local floor, huge = math.floor, math.huge
local concat = table.concat

local function num(n)
  if n ~= n or n == huge or n == -huge then error("json encode: cannot encode " .. tostring(n)) end
  if floor(n) == n and n > -2^53 and n < 2^53 then return string.format("%d", n) end
  return string.format("%.14g", n)
end

local enc
local EMPTY = '"\\u0000A"' -- how encode_store writes an empty array (decode turns it back)
local store_mode = false

local function is_seq(t)
  local n = #t
  if n == 0 then return false end
  local c = 0
  for _ in pairs(t) do c = c + 1 if c > n then return false end end
  return c == n
end

enc = function(v, depth)
  local tv = type(v)
  if tv == "string" then return str(v)
  elseif tv == "number" then return num(v)
  elseif tv == "boolean" then return v and "true" or "false"
  elseif v == nil or v == cjson.null then return "null"
  elseif tv == "table" then
    if depth > 64 then error("json encode: nested too deep") end
    local out = {}
    if getmetatable(v) == array_mt or is_seq(v) then
      if store_mode and v[1] == nil then return EMPTY end
      for i = 1, #v do out[i] = enc(v[i], depth + 1) end
      return "[" .. concat(out, ",") .. "]"
    end
    local n = 0
    for k, x in pairs(v) do
      local tk = type(k)
      if tk == "number" then k = num(k) elseif tk ~= "string" then
        error("json encode: bad key type " .. tk)
      end
      n = n + 1
      out[n] = str(k) .. ":" .. enc(x, depth + 1)
    end
    return "{" .. concat(out, ",") .. "}"
  end
  error("json encode: cannot encode a " .. tv)
end

-- Fast path: lua-cjson encodes (about 7x faster than enc above) once every marked empty array
-- has been swapped for a placeholder string, put back afterwards. cjson writes "/" as "\/":
-- answers get "/" back; stored text keeps it (only cjson reads it again).
-- Values cjson would write differently (integers from 1e14 up: "%.14g"; nesting deeper than
-- 64) or cannot write go to enc, which decides (and raises) as before.
local PLACEHOLDER = "\0\1emu:empty:array\1\0"
local PLACEHOLDER_JSON = '"\\u0000\\u0001emu:empty:array\\u0001\\u0000"'
local BIG = 1e14

local function swap_empty(t, depth, swapped, token)
  if depth > 64 then return false end
  for k, x in pairs(t) do
    local tx = type(x)
    if tx == "table" then
      if getmetatable(x) == array_mt and x[1] == nil then
        swapped[#swapped + 1] = t; swapped[#swapped + 1] = k; swapped[#swapped + 1] = x
        t[k] = token
      elseif not swap_empty(x, depth + 1, swapped, token) then
        return false
      end
    elseif tx == "number" and (x >= BIG or x <= -BIG) then
      return false
    end
  end
  return true
end

local function fast(v, token)
  if type(v) ~= "table" then return nil end
  local swapped = {}
  local ok = swap_empty(v, 0, swapped, token)
  local s = ok and cjson.encode(v) or nil   -- cjson.safe: nil on a value it cannot write
  for i = #swapped - 2, 1, -3 do swapped[i][swapped[i + 1]] = swapped[i + 2] end
  return s
end

-- s with every `from` replaced by `to`, no patterns (a find loop: far cheaper than gsub here).
local function replace(s, from, to)
  local i = s:find(from, 1, true)
  if not i then return s end
  local out, n, start = {}, 0, 1
  while i do
    n = n + 1; out[n] = s:sub(start, i - 1)
    n = n + 1; out[n] = to
    start = i + #from
    i = s:find(from, start, true)
  end
  out[n + 1] = s:sub(start)
  return concat(out)
end

function M.encode(v)
  if type(v) == "table" and getmetatable(v) == array_mt and v[1] == nil then return "[]" end
  local s = fast(v, PLACEHOLDER)
  if s then return replace(replace(s, "\\/", "/"), PLACEHOLDER_JSON, "[]") end
  return enc(v, 0)
end

--- Like encode, for the emulator's own storage: an empty array is written as the string
-- "\0A", so that decoding needs no scan for "[]" (decode turns it back into json.array{}).
function M.encode_store(v)
  if type(v) == "table" and getmetatable(v) == array_mt and v[1] == nil then return EMPTY end
  local s = fast(v, "\0A")   -- cjson writes it as EMPTY
  if s then return s end
  store_mode = true
  local ok, r = pcall(enc, v, 0)
  store_mode = false
  if not ok then error(r, 2) end
  return r
end

-- ---------------------------------------------------------------- decode

-- Marks decoded arrays. With no "[]" in the text, an empty table can only be {} and a
-- table with key 1 can only be an array (object keys are strings).
local EMPTY_STR = "\0A"
local function mark(t)
  if t[1] ~= nil then setmetatable(t, array_mt) end
  for k, x in pairs(t) do
    if type(x) == "table" then mark(x)
    elseif x == EMPTY_STR then t[k] = setmetatable({}, array_mt) end
  end
  return t
end

-- Slow path for texts holding empty arrays: a small recursive-descent decoder.
local function slow_decode(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function err(m) error({ msg = m .. " at character " .. pos }) end
  local function string_()
    local out, i = {}, pos + 1
    while true do
      local j = s:find('["\\]', i)
      if not j then err("unterminated string") end
      out[#out + 1] = s:sub(i, j - 1)
      if s:sub(j, j) == '"' then pos = j + 1 break end
      local c = s:sub(j + 1, j + 1)
      if c == "u" then
        local hex = s:sub(j + 2, j + 5)
        if not hex:match("^%x%x%x%x$") then err("bad \\u escape") end
        local cp = tonumber(hex, 16)
        local nxt = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF and s:sub(nxt, nxt + 1) == "\\u" then
          local lo = tonumber(s:sub(nxt + 2, nxt + 5), 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
            nxt = nxt + 6
          end
        end
        if cp < 0x80 then out[#out + 1] = string.char(cp)
        elseif cp < 0x800 then out[#out + 1] = string.char(0xC0 + floor(cp / 64), 0x80 + cp % 64)
        elseif cp < 0x10000 then
          out[#out + 1] = string.char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
        else
          out[#out + 1] = string.char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
            0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
        end
        i = nxt
      else
        local m = ({ ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" })[c]
        if not m then err("bad escape") end
        out[#out + 1] = m
        i = j + 2
      end
    end
    return concat(out)
  end
  value = function(depth)
    if depth > 64 then err("too deep") end
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      pos = pos + 1
      local t = {}
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then err("expected key") end
        local k = string_()
        ws()
        if s:sub(pos, pos) ~= ":" then err("expected ':'") end
        pos = pos + 1
        t[k] = value(depth + 1)
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then err("expected ',' or '}'") end
      end
    elseif c == "[" then
      pos = pos + 1
      local t = setmetatable({}, array_mt)
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        t[#t + 1] = value(depth + 1)
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then err("expected ',' or ']'") end
      end
    elseif c == '"' then return string_()
    elseif s:find("^true", pos) then pos = pos + 4 return true
    elseif s:find("^false", pos) then pos = pos + 5 return false
    elseif s:find("^null", pos) then pos = pos + 4 return cjson.null
    else
      local n = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not n or n == "" or not tonumber(n) then err("unexpected character") end
      pos = pos + #n
      return tonumber(n)
    end
  end
  local ok, v = pcall(function()
    local r = value(0)
    ws()
    if pos <= #s then err("trailing garbage") end
    return r
  end)
  if not ok then return nil, type(v) == "table" and v.msg or tostring(v) end
  return v
end

-- Whether s may hold an empty array ("[" then only whitespace then "]"). Plain finds: a
-- pattern scan of every position cost as much as the decode itself.
local function has_empty_array(s)
  if s:find("[]", 1, true) then return true end
  local i = s:find("[", 1, true)
  while i do
    local j = s:find("[^ \t\r\n]", i + 1)
    if j and j > i + 1 and s:byte(j) == 93 then return true end
    i = s:find("[", i + 1, true)
  end
  return false
end

--- Decodes s; returns value or nil, err. Decoded arrays keep the array mark.
function M.decode(s)
  if type(s) ~= "string" then return nil, "no body" end
  local v, err = cjson.decode(s)
  if v == nil then return nil, err end
  if type(v) ~= "table" then return v end
  if has_empty_array(s) then
    local w, err2 = slow_decode(s)
    if type(w) ~= "table" then return w, err2 end
    return mark(w)
  end
  return mark(v)
end

--- Deep copy of a JSON-shaped value (arrays stay arrays).
function M.copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = M.copy(x) end
  return setmetatable(out, getmetatable(v))
end

return M
