--- The JMESPath lexer: an expression string -> a list of tokens { type, value, pos } ending
-- with an "eof" token (pos: 0-based byte offset, for error messages).
-- Token types: unquoted_identifier, quoted_identifier, literal (raw 'strings' and `json`),
-- number, the punctuation below, and eof.
local json = require("azcmk.json")
local jerr = require("azcmk.jmespath.errors")

local M = {}

local byte, sub, find = string.byte, string.sub, string.find

local SIMPLE = {
  ["."] = "dot", ["*"] = "star", ["]"] = "rbracket", [","] = "comma", [":"] = "colon",
  ["@"] = "current", ["("] = "lparen", [")"] = "rparen", ["{"] = "lbrace", ["}"] = "rbrace",
}

-- c followed by `second` is the two-character token, else the one-character one.
local PAIRS = {
  ["|"] = { "|", "or", "pipe" }, ["&"] = { "&", "and", "expref" },
  ["<"] = { "=", "lte", "lt" }, [">"] = { "=", "gte", "gt" }, ["!"] = { "=", "ne", "not" },
}

--- The text up to the closing delimiter d (a backslash keeps the next character, so \d does
-- not close); i is the offset of the opening delimiter. Returns the raw text and the offset
-- after the closing delimiter.
local function until_delimiter(expr, i, d)
  local j = i + 1
  while true do
    local k = find(expr, "[\\" .. d .. "]", j)
    if not k then jerr.syntax(expr, i - 1, "unclosed " .. d .. " delimiter") end
    if sub(expr, k, k) == d then return sub(expr, i + 1, k - 1), k + 1 end
    if k == #expr then jerr.syntax(expr, i - 1, "unclosed " .. d .. " delimiter") end
    j = k + 2
  end
end

-- `...` holds JSON; during JEP-12's deprecation period text that is not JSON is read as a
-- JSON string (`foo` is "foo"), as the reference implementation still does.
local function literal(expr, i)
  local text, nxt = until_delimiter(expr, i, "`")
  text = text:gsub("\\`", "`")
  local v = json.decode(text)
  if v == nil then
    v = json.decode('"' .. text:gsub("^[ \t\r\n]+", "") .. '"')
    if v == nil then jerr.syntax(expr, i - 1, "invalid JSON literal `" .. text .. "`") end
  end
  return v, nxt
end

--- Tokenizes expr; raises a syntax error (azcmk.jmespath.errors) on text that is no token.
function M.tokenize(expr)
  if expr == "" then jerr.syntax(expr, 0, "the expression is empty") end
  local tokens, n = {}, 0
  local function push(t, v, pos) n = n + 1 tokens[n] = { type = t, value = v, pos = pos } end
  local i, len = 1, #expr
  while i <= len do
    local c = sub(expr, i, i)
    local pos = i - 1
    if SIMPLE[c] then
      push(SIMPLE[c], c, pos)
      i = i + 1
    elseif find(c, "^[%a_]") then
      local _, e = find(expr, "^[%w_]*", i + 1)
      push("unquoted_identifier", sub(expr, i, e), pos)
      i = e + 1
    elseif c == " " or c == "\t" or c == "\n" or c == "\r" then
      i = i + 1
    elseif c == "[" then
      local nx = sub(expr, i + 1, i + 1)
      if nx == "]" then push("flatten", "[]", pos) i = i + 2
      elseif nx == "?" then push("filter", "[?", pos) i = i + 2
      else push("lbracket", "[", pos) i = i + 1 end
    elseif c == "'" then
      local text, nxt = until_delimiter(expr, i, "'")
      push("literal", (text:gsub("\\'", "'")), pos)
      i = nxt
    elseif c == "`" then
      local v, nxt = literal(expr, i)
      push("literal", v, pos)
      i = nxt
    elseif c == '"' then
      local text, nxt = until_delimiter(expr, i, '"')
      local v, err = json.decode('"' .. text .. '"')
      if v == nil then jerr.syntax(expr, pos, "invalid quoted identifier (" .. err .. ")") end
      push("quoted_identifier", v, pos)
      i = nxt
    elseif find(c, "^[%d%-]") then
      local _, e = find(expr, "^%-?%d+", i)
      if not e then jerr.syntax(expr, pos, "'-' must be followed by digits") end
      push("number", tonumber(sub(expr, i, e)), pos)
      i = e + 1
    elseif PAIRS[c] then
      local p = PAIRS[c]
      if sub(expr, i + 1, i + 1) == p[1] then push(p[2], c .. p[1], pos) i = i + 2
      else push(p[3], c, pos) i = i + 1 end
    elseif c == "=" then
      if sub(expr, i + 1, i + 1) ~= "=" then jerr.syntax(expr, pos, "'=' is no operator (use '==')") end
      push("eq", "==", pos)
      i = i + 2
    else
      local b = byte(c)
      jerr.syntax(expr, pos, b >= 32 and b < 127 and ("unexpected character '" .. c .. "'")
        or string.format("unexpected byte 0x%02X", b))
    end
  end
  push("eof", "", len)
  return tokens
end

return M
