--- emu.bucket: token-bucket arithmetic, pure Lua (no nginx), used by emu.throttle.
-- A bucket is stored as one number, `full_at`: the (simulated) time at which it will be full
-- again. With capacity `cap` and `rate` tokens refilled per second, it holds
--   cap - max(0, full_at - now) * rate
-- tokens at `now`; a missing bucket (nil) is full. Taking `cost` tokens moves full_at forward by
-- cost / rate seconds, so refilling needs no timer and a bucket that nobody uses costs nothing.
local M = {}

local EPS = 1e-6 -- times are relative to the emulator's start (emu.throttle): errors stay far below

--- Tokens in the bucket at `now` (fractional).
function M.tokens(full_at, now, cap, rate)
  if not full_at or full_at <= now then return cap end
  return cap - (full_at - now) * rate
end

--- Whole tokens left: what Azure's x-ms-ratelimit-remaining-* headers show.
function M.remaining(full_at, now, cap, rate)
  return math.max(0, math.floor(M.tokens(full_at, now, cap, rate) + EPS))
end

--- Takes `cost` tokens when the bucket holds them: returns the new full_at; otherwise nil and
-- the seconds until it will hold them.
function M.take(full_at, now, cap, rate, cost)
  local start = (full_at and full_at > now) and full_at or now
  local debt = start - now + cost / rate -- seconds of refill the bucket lacks after taking
  if debt <= cap / rate + EPS then return start + cost / rate end
  return nil, debt - cap / rate
end

--- Whole seconds to announce in Retry-After for a wait of `wait` seconds (at least 1).
function M.retry_after(wait)
  return math.max(1, math.ceil(wait - EPS))
end

return M
