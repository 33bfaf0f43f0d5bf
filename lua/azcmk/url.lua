--- URL helpers: percent-encoding, query strings, form bodies, parsing.
local M = {}

--- Percent-encode everything except RFC 3986 unreserved characters.
function M.encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function M.decode(s)
  s = s:gsub("%+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Encode a table as a query/form string with sorted keys (deterministic). Values may be
-- strings, numbers, booleans or lists of those.
function M.encode_query(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do out[#out + 1] = M.encode(k) .. "=" .. M.encode(tostring(x)) end
    elseif v ~= nil and v ~= false then
      out[#out + 1] = M.encode(k) .. "=" .. M.encode(tostring(v))
    end
  end
  return table.concat(out, "&")
end

--- Ordered form encoding: list of {name, value}.
function M.encode_form(pairs_list)
  local out = {}
  for _, p in ipairs(pairs_list) do
    if p[2] ~= nil then out[#out + 1] = M.encode(p[1]) .. "=" .. M.encode(tostring(p[2])) end
  end
  return table.concat(out, "&")
end

--- Parse "a=1&b=2" into a list of {name, value} (decoded).
function M.parse_query(q)
  local out = {}
  if not q or q == "" then return out end
  for part in q:gmatch("[^&]+") do
    local k, v = part:match("^([^=]*)=?(.*)$")
    out[#out + 1] = { M.decode(k), M.decode(v) }
  end
  return out
end

--- Split an absolute URL: { scheme, host (lower-case, no port), port (number|nil),
-- authority ("host[:port]" as given, lower-cased), path, query (raw, without "?") }.
function M.parse(u)
  if type(u) ~= "string" then return nil, "url must be a string" end
  -- one match: scheme, authority, path (to ? or #), query (to #); the fragment is dropped
  local scheme, authority, path, query = u:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)%??([^#]*)")
  if not scheme then return nil, "not an absolute URL: " .. u end
  if authority == "" or authority:find("@", 1, true) or authority:find("%s") then
    return nil, "bad host in URL: " .. u
  end
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^(%[[^%]]+%])(.*)$")
    if not host then return nil, "bad host in URL: " .. u end
    port = port:match("^:(%d+)$")
  else
    host, port = authority:match("^([^:]+):?(%d*)$")
    if not host then return nil, "bad host in URL: " .. u end
  end
  if port == "" then port = nil end
  return {
    scheme = scheme:lower(), host = host:lower(), port = port and tonumber(port),
    authority = authority:lower(), path = path ~= "" and path or "/", query = query,
  }
end

--- "scheme://authority" with default ports removed (challenge cache key, same-origin checks).
function M.origin(p)
  local port = p.port
  if (p.scheme == "https" and port == 443) or (p.scheme == "http" and port == 80) then port = nil end
  return p.scheme .. "://" .. p.host .. (port and (":" .. port) or "")
end

function M.build(p)
  local s = M.origin(p) .. (p.path or "/")
  if p.query and p.query ~= "" then s = s .. "?" .. p.query end
  return s
end

--- Query parameter value (first) from a raw query string.
function M.query_get(q, name)
  for _, kv in ipairs(M.parse_query(q)) do
    if kv[1]:lower() == name:lower() then return kv[2] end
  end
  return nil
end

--- Splits a comma-separated setting ("a:1:b:2, c:1:d:2", NO_PROXY lists) into trimmed,
-- non-empty items; a table is returned as it is.
function M.split_list(s)
  if type(s) == "table" then return s end
  local out = {}
  for item in tostring(s or ""):gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

return M
