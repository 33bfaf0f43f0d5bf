--- Time and sleeping, injectable everywhere (specs pass their own now/sleep).
local M = {}

-- The C core, loaded on first use (false when it cannot be loaded): its clock has sub-second
-- resolution and its sleep spawns no process. Looked up once, not on every call.
local core
local function core_fn(name)
  if core == nil then
    local ok, c = pcall(require, "azcmk.core")
    core = ok and type(c) == "table" and c or false
  end
  return core and type(core[name]) == "function" and core[name] or nil
end

--- Seconds since the epoch (fractional when the core is there).
function M.now()
  local f = core_fn("now")
  if f then return f() end
  return os.time()
end

--- Sleep `s` seconds (fractions allowed). Uses the core's sleep when it has one, else
-- the `sleep` program.
function M.sleep(s)
  if not s or s <= 0 then return end
  local f = core_fn("sleep")
  if f then return f(s) end
  os.execute(string.format("sleep %.3f", s))
end

--- Monotonic-ish milliseconds for measuring durations (CPU-independent when the core
-- offers a clock; falls back to os.time()).
function M.ms()
  local f = core_fn("now_ms")
  if f then return f() end
  return os.time() * 1000
end

--- Unix seconds from an HTTP date (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT",
-- RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994").
local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8, sep = 9,
                 oct = 10, nov = 11, dec = 12 }

local function days_from_civil(y, m, d)
  -- Howard Hinnant's algorithm, valid for the proleptic Gregorian calendar
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

function M.timegm(y, mo, d, h, mi, s)
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

function M.parse_http_date(s)
  if type(s) ~= "string" then return nil end
  local d, mon, y, h, mi,
    sec = s:match("^%a+,%s+(%d%d?)%s+(%a%a%a)%s+(%d%d%d%d)%s+(%d%d):(%d%d):(%d%d)%s+GMT%s*$")
  if not d then
    d, mon, y, h, mi, sec = s:match("^%a+,%s+(%d%d?)%-(%a%a%a)%-(%d%d)%s+(%d%d):(%d%d):(%d%d)%s+GMT%s*$")
    if y then y = tonumber(y); y = y + (y < 70 and 2000 or 1900) end
  end
  if not d then
    mon, d, h, mi, sec, y = s:match("^%a+%s+(%a%a%a)%s+(%d%d?)%s+(%d%d):(%d%d):(%d%d)%s+(%d%d%d%d)%s*$")
  end
  if not d then return nil end
  local m = MONTHS[mon:lower()]
  if not m then return nil end
  return M.timegm(tonumber(y), m, tonumber(d), tonumber(h), tonumber(mi), tonumber(sec))
end

return M
