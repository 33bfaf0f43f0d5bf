--- emu.jsonc: the lenient JSON Resource Manager reads (its parser is Json.NET's): comments
-- (// and /* */), unquoted property names, single-quoted strings and trailing commas. The Azure
-- CLI relies on it: `az deployment group create` sends `{"properties": {..., template:{...}}}`
-- with the template file's text pasted in as it is (JSONC, comments included).
-- to_json(text) rewrites such text as strict JSON (nil, err when it is not even that);
-- decode(text) is json.decode with this as the fallback.
local json = require("emu.json")

local M = {}

local function err(pos, what) return nil, what .. " at position " .. pos end

-- A quoted string starting at i (quote q); returns its strict-JSON form and the next position.
local function string_at(s, i, q)
  local out, j = { '"' }, i + 1
  while j <= #s do
    local c = s:sub(j, j)
    if c == "\\" then
      local n = s:sub(j + 1, j + 1)
      if n == "'" then out[#out + 1] = "'" else out[#out + 1] = c .. n end
      j = j + 2
    elseif c == q then
      out[#out + 1] = '"'
      return table.concat(out), j + 1
    elseif c == '"' then -- only inside a single-quoted string
      out[#out + 1] = '\\"'
      j = j + 1
    else
      out[#out + 1] = c
      j = j + 1
    end
  end
  return nil, "unterminated string"
end

function M.to_json(s)
  if type(s) ~= "string" then return nil, "not text" end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c == '"' or c == "'" then
      local str, nxt = string_at(s, i, c)
      if not str then return err(i, nxt) end
      out[#out + 1] = str
      i = nxt
    elseif c == "/" and s:sub(i + 1, i + 1) == "/" then
      i = (s:find("\n", i, true) or n) + 1
    elseif c == "/" and s:sub(i + 1, i + 1) == "*" then
      local e = s:find("*/", i + 2, true)
      if not e then return err(i, "unterminated comment") end
      i = e + 2
    elseif c == "," then
      -- a trailing comma: the next significant character closes the object or array
      local j = i + 1
      while true do
        local k = s:find("[^%s]", j)
        if k and s:sub(k, k + 1) == "//" then j = (s:find("\n", k, true) or n) + 1
        elseif k and s:sub(k, k + 1) == "/*" then j = (select(2, s:find("*/", k + 2, true)) or n) + 1
        else
          if not (k and (s:sub(k, k) == "}" or s:sub(k, k) == "]")) then out[#out + 1] = "," end
          break
        end
      end
      i = i + 1
    elseif c:match("[%-%d]") then
      local num = s:match("^%-?%d*%.?%d*[eE][%+%-]?%d+", i) or s:match("^%-?%d*%.?%d*", i)
      out[#out + 1] = num
      i = i + math.max(#num, 1)
    elseif c:match("[%a_$]") then
      local word = s:match("^[%w_$]+", i)
      local after = s:find("[^%s]", i + #word)
      if after and s:sub(after, after) == ":" then
        out[#out + 1] = '"' .. word .. '"'
      elseif word == "true" or word == "false" or word == "null" then
        out[#out + 1] = word
      else
        return err(i, "unexpected '" .. word .. "'")
      end
      i = i + #word
    else
      local run = s:match("^[^\"'/,%a_$%d%-]+", i) or c
      out[#out + 1] = run
      i = i + #run
    end
  end
  return table.concat(out)
end

--- json.decode(text), or when that fails, the decode of its strict-JSON rewrite.
function M.decode(s)
  local v, e = json.decode(s)
  if v ~= nil then return v end
  local strict = M.to_json(s)
  if strict then
    local v2 = json.decode(strict)
    if v2 ~= nil then return v2 end
  end
  return nil, e
end

return M
