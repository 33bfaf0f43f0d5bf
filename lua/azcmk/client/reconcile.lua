--- Writes whose outcome may be unknown, settled by reading back (docs/read-back.md).
-- When a write fails in a way that may or may not have been applied (a connection dropped
-- after sending, a timeout, a 5xx: azcmk.repeatable.ambiguous), the service clients do not
-- guess: they read the state back and decide
--   applied      the read-back shows the write: go on with what was read;
--   not applied  the read-back shows nothing: the write is sent again (a few times at most);
--   unknown      the read-back failed: a structured error (code WriteOutcomeUnknown) that
--                names what to check.
-- A timeout is read back a few more times, a short wait apart, before it counts as not
-- applied: a server may still be working on a request its client gave up on.
local errors = require("azcmk.errors")
local repeatable = require("azcmk.repeatable")

local M = {}

M.SENDS = 3          -- tries of the write in all (the first and two after "not applied")
M.SETTLE = 2         -- seconds to wait before reading a timed-out write back again
M.SETTLE_READS = 3   -- how often, at most

local function note(p, what, outcome, err)
  if p.log then
    p.log:warn(string.format("reconcile %s: %s (after %s)", what, outcome,
      tostring(err and (err.code or err.status or err.kind) or "?")))
  end
end

--- The error of a write whose outcome could not be learnt.
function M.unknown(what, err, read_err, check)
  return errors.new("azure", { code = "WriteOutcomeUnknown", outcome = "unknown",
    message = what .. ": the request failed (" .. tostring(err and (err.code or err.status) or "?")
      .. ") and reading back failed too (" .. tostring(read_err and (read_err.code or read_err.status
      or read_err.message) or "?") .. "); it may or may not have been applied",
    hint = check .. "; then run the same command again (it finds what was done and does not repeat it)",
    cause = err, read_error = read_err, status = err and err.status, request_id = err and err.request_id })
end

--- write(p, o) -> result, nil, outcome ("sent" | "applied" | "resent") or nil, err.
-- o.what   what is written, for messages ("key version of cmk in kv1")
-- o.send   function() -> result | nil, err: the write
-- o.read   function() -> found | nil (absent), err: the read-back; found is returned as the
--          result of an applied write
-- o.check  what a user checks when the outcome stays unknown ("list the key's versions ...")
-- o.resend false: a write that is not applied is not sent again (nil, err with
--          outcome = "not_applied")
function M.write(p, o)
  local outcome = "sent"
  local sleep = p.sleep or function() end
  for n = 1, M.SENDS do
    local res, err = o.send()
    if res then return res, nil, outcome end
    if not repeatable.ambiguous(err) then return nil, err end
    local found, rerr = o.read()
    if err.kind == "timeout" then
      for _ = 1, M.SETTLE_READS do
        if found or rerr then break end
        sleep(M.SETTLE)
        found, rerr = o.read()
      end
    end
    if rerr then
      note(p, o.what, "unknown", err)
      return nil, M.unknown(o.what, err, rerr, o.check)
    end
    if found then
      note(p, o.what, "applied", err)
      return found, nil, "applied"
    end
    note(p, o.what, "not applied", err)
    err.outcome = "not_applied"
    if o.resend == false or n == M.SENDS then return nil, err end
    outcome = "resent"
  end
end

return M
