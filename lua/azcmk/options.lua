--- Option tables: every public function of azcmk takes one options table, and this module
-- checks it against a spec of the keys that function reads. A wrong type, a missing
-- required key or a key the function does not know raise an error (a programmer error: a
-- typo such as `versionles = true` must not silently change what a call does); an unknown
-- key names the closest known one ("did you mean versionless?").
--
--   options.check(o, { registry = "string", versionless = "boolean?" }, "azcmk.playbook.setup")
--
-- A spec maps a key to a type name ("string", "number", "boolean", "table", "function",
-- "any") with a trailing "?" when the key may be absent. Several specs can be merged with
-- options.merge (a function's own keys plus the keys every playbook or client call takes).
local M = {}

--- Edit distance between two strings, a swap of two neighbours counting as one edit (the
-- most common typo: "yse" for "yes").
function M.distance(a, b)
  local d = {}
  for i = 0, #a do d[i] = { [0] = i } end
  for j = 0, #b do d[0][j] = j end
  for i = 1, #a do
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:sub(i, i) == b:sub(j - 1, j - 1) and a:sub(i - 1, i - 1) == b:sub(j, j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[#a][#b]
end

--- The candidate closest to word (case-insensitive), when it is close enough to be a typo:
-- at most 2 edits, and fewer than half of the word's length. Ties go to the first in sorted
-- order, so the answer does not depend on table order.
function M.suggest(word, candidates)
  word = tostring(word):lower()
  local sorted = {}
  for _, c in ipairs(candidates) do sorted[#sorted + 1] = tostring(c) end
  table.sort(sorted)
  local best, best_d
  for _, c in ipairs(sorted) do
    local d = M.distance(word, c:lower())
    if d <= 2 and d < #word / 2 and (not best_d or d < best_d) then best, best_d = c, d end
  end
  return best
end

--- A new spec holding the keys of every given spec (later ones win).
function M.merge(...)
  local out = {}
  for i = 1, select("#", ...) do
    for k, v in pairs((select(i, ...)) or {}) do out[k] = v end
  end
  return out
end

local function keys_of(spec)
  local out = {}
  for k in pairs(spec) do out[#out + 1] = k end
  table.sort(out)
  return out
end

--- check(o, spec, where[, level]): returns o, or raises naming `where` and the key. level is
-- the error level as for error() seen from the caller of check (default 3: the caller of the
-- function that called check).
function M.check(o, spec, where, level)
  level = level or 3
  if type(o) ~= "table" then error(where .. ": options table expected, got " .. type(o), level) end
  for k, v in pairs(o) do
    if spec[k] == nil then
      local hint = type(k) == "string" and M.suggest(k, keys_of(spec))
      error(where .. ": unknown option '" .. tostring(k) .. "'"
        .. (hint and (" (did you mean " .. hint .. "?)") or "")
        .. "; known options: " .. table.concat(keys_of(spec), ", "), level)
    end
    local want = spec[k]
    local t = want:sub(-1) == "?" and want:sub(1, -2) or want
    if t ~= "any" and type(v) ~= t then
      error(where .. ": option " .. k .. " must be a " .. t .. ", not a " .. type(v), level)
    end
  end
  for k, want in pairs(spec) do
    if o[k] == nil and want:sub(-1) ~= "?" then
      error(where .. ": option " .. k .. " (" .. want .. ") is required", level)
    end
  end
  return o
end

return M
