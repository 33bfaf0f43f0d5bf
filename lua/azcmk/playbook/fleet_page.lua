--- The fleet page: one HTML page, one row per registry (state in colour, CMK, key age, the
-- first finding), for the nginx status module (azcmk.ngx.status.page). Plain HTML with
-- inline CSS: no script, no external asset, every value escaped. Rows: the shape of
-- azcmk.playbook.metrics (audit rows), worst first.
local M = {}

M.CONTENT_TYPE = "text/html; charset=utf-8"

local ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- Text made safe for HTML element content and attribute values.
function M.escape(v)
  return (tostring(v == nil and "" or v):gsub("[&<>\"']", ESC))
end

local RANK = { fail = 3, warn = 2, ok = 1 }

local STYLE = [[
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24}
h1{font-size:1.3em;margin:0 0 .3em}
p.meta{color:#57606a;margin:0 0 1em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.35em .6em;border-bottom:1px solid #d0d7de}
th{background:#f6f8fa}
td.state{font-weight:600;color:#fff;text-align:center;width:4.5em}
tr.ok td.state{background:#1a7f37}
tr.warn td.state{background:#bf8700}
tr.fail td.state{background:#cf222e}
td.num{text-align:right;font-variant-numeric:tabular-nums}
]]

local function age_text(s)
  s = tonumber(s)
  if not s then return "-" end
  if s < 86400 then return "&lt; 1 d" end
  return string.format("%d d", math.floor(s / 86400))
end

--- The page for rows. o: title, checked_at (Unix time), note (a line under the title).
function M.html(rows, o)
  o = o or {}
  local sorted = {}
  for i, r in ipairs(rows) do sorted[i] = r end
  table.sort(sorted, function(a, b)
    local ra, rb = RANK[a.health] or 0, RANK[b.health] or 0
    if ra ~= rb then return ra > rb end
    return tostring(a.name):lower() < tostring(b.name):lower()
  end)
  local counts = { ok = 0, warn = 0, fail = 0 }
  for _, r in ipairs(sorted) do if counts[r.health] then counts[r.health] = counts[r.health] + 1 end end
  local title = M.escape(o.title or "Registry encryption")
  local out = { "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
    "<title>", title, "</title><style>", STYLE, "</style></head><body>",
    "<h1>", title, "</h1><p class=\"meta\" id=\"summary\">",
    string.format("%d registries: %d ok, %d warn, %d fail", #sorted, counts.ok, counts.warn, counts.fail) }
  if o.checked_at then
    local at = os.date("!%Y-%m-%d %H:%M:%S UTC", math.floor(o.checked_at))
    out[#out + 1] = " &middot; checked " .. M.escape(at)
  end
  if o.note then out[#out + 1] = " &middot; " .. M.escape(o.note) end
  out[#out + 1] = "</p><table><thead><tr><th>State</th><th>Registry</th><th>Resource group</th>"
    .. "<th>Subscription</th><th>CMK</th><th>Key age</th><th>First finding</th></tr></thead><tbody>"
  for _, r in ipairs(sorted) do
    local h = RANK[r.health] and r.health or "fail"
    local first = type(r.problems) == "table" and r.problems[1] or nil
    out[#out + 1] = table.concat({ "<tr class=\"", h, "\" data-registry=\"", M.escape(r.name), "\">",
      "<td class=\"state\">", h, "</td><td>", M.escape(r.name), "</td><td>", M.escape(r.resource_group),
      "</td><td>", M.escape(r.subscription), "</td><td>", r.cmk and "on" or "off",
      "</td><td class=\"num\">",
      r.cmk and age_text(r.key_age_seconds) or "-", "</td><td>", first and M.escape(first) or "",
      "</td></tr>" })
  end
  out[#out + 1] = "</tbody></table></body></html>\n"
  return table.concat(out)
end

return M
