--- emu.clock: simulated time = real time + an offset kept in the shared dict, so every worker
-- sees the same clock. POST /_emulator/clock {"advance": S} moves it forward.
local M = {}

local meta = ngx.shared.emu_meta
local KEY = "clock:offset"

--- Simulated unix time in seconds (fractional).
function M.now()
  return ngx.now() + (meta:get(KEY) or 0)
end

--- Simulated unix time, whole seconds.
function M.time()
  return math.floor(M.now())
end

function M.offset()
  return meta:get(KEY) or 0
end

--- Moves simulated time forward by s seconds (negative values are refused by the caller).
function M.advance(s)
  return meta:incr(KEY, s, 0)
end

function M.reset()
  meta:set(KEY, 0)
end

--- ISO-8601 UTC with 7 fraction digits, as ARM writes it: 2026-11-22T04:30:00.1234567Z.
function M.iso(t)
  t = t or M.now()
  local s = math.floor(t)
  local frac = math.floor((t - s) * 1e7)
  return os.date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%07dZ", frac)
end

--- ISO-8601 UTC without fraction: 2026-11-22T04:30:00Z (Entra timestamps use this plus fraction).
function M.iso_short(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t or M.now()))
end

--- ARM's human-readable form, e.g. '11/22/2026 5:30:00 AM' (ExpiredAuthenticationToken message).
function M.us(t)
  local d = os.date("!*t", math.floor(t or M.now()))
  local h = d.hour % 12
  if h == 0 then h = 12 end
  return string.format("%d/%d/%d %d:%02d:%02d %s", d.month, d.day, d.year, h, d.min, d.sec,
    d.hour < 12 and "AM" or "PM")
end

return M
