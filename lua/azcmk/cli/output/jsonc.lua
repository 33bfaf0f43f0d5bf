--- `-o jsonc`: the indented JSON of `-o json` in the Azure CLI's terminal colours. az (knack)
-- runs its JSON through Pygments' JsonLexer and TerminalFormatter; this writes the same
-- bytes: keys bright blue, strings yellow, numbers and true/false/null blue, whitespace
-- "gray", each coloured piece of a line wrapped in its colour code and a reset.
local M = {}

local RESET = "\27[39;49;00m"
local GRAY, KEY, STRING, NUMBER = "\27[37m", "\27[94m", "\27[33m", "\27[34m"

local find, sub = string.find, string.sub

-- A coloured token, line by line (Pygments colours every line of a token on its own, an
-- empty one too).
local function paint(out, color, text)
  local i = 1
  while true do
    local nl = find(text, "\n", i, true)
    out[#out + 1] = color .. sub(text, i, (nl or 0) - 1) .. RESET
    if not nl then return end
    out[#out + 1] = "\n"
    i = nl + 1
    if i > #text then return end
  end
end

--- Colours json_text (what azcmk.json.pretty writes, without the final newline); returns the
-- coloured text with its final newline.
function M.colour(json_text)
  local out, i, n = {}, 1, #json_text
  while i <= n do
    local c = sub(json_text, i, i)
    local _, e
    if c == '"' then
      local j = i + 1
      repeat                       -- to the closing quote, over escapes
        e = find(json_text, '["\\]', j)
        j = e + 2
      until sub(json_text, e, e) == '"'
      -- a key is a string followed (after blanks) by ':'
      local is_key = find(json_text, "^[ \t\r\n]*:", e + 1) ~= nil
      paint(out, is_key and KEY or STRING, sub(json_text, i, e))
    elseif find(c, "^[ \t\r\n]") then
      _, e = find(json_text, "^[ \t\r\n]+", i)
      paint(out, GRAY, sub(json_text, i, e))
    elseif find(c, "^[%-%d]") then
      _, e = find(json_text, "^[%-%d.eE+]+", i)
      paint(out, NUMBER, sub(json_text, i, e))
    elseif find(c, "^[tfn]") then
      _, e = find(json_text, "^%a+", i)
      paint(out, NUMBER, sub(json_text, i, e))
    else
      _, e = find(json_text, "^[][{},:]+", i)
      e = e or i
      out[#out + 1] = sub(json_text, i, e)
    end
    i = e + 1
  end
  paint(out, GRAY, "\n")
  return table.concat(out)
end

return M
