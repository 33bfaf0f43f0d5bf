--- The CMK state of registries as Prometheus metrics (text exposition format 0.0.4): what
-- `azcmk audit -o prometheus` writes for a node exporter's textfile collector and what the
-- nginx status module serves (azcmk.ngx.status). One module formats for both.
--
-- A row (an audit row; the status module makes the same shape): subscription,
-- resource_group, name, cmk (bool), health ("ok" | "warn" | "fail"), key_age_seconds?,
-- rotation_due (bool)?, problems (list: the doctor's and audit's findings).
--
--   local w = metrics.writer()          -- samples kept per family (spill = true: temp files)
--   w:add(row, checked_at)              -- as rows come
--   w:finish(fh)                        -- every family: # HELP, # TYPE, its samples
--   metrics.text(rows, checked_at)      -- the same as one string
--
-- The exposition format wants every sample of a family together, so samples wait in their
-- family's buffer (a temp file each with spill: memory stays flat for any fleet size).
local M = {}

M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

local STATES = { "ok", "warn", "fail" }

-- name, help, value(row, checked_at) -> number or nil (no sample), extra labels(row) or nil
M.FAMILIES = {
  { "azcmk_registry_cmk_enabled", "1 when the registry encrypts with a customer-managed key, else 0.",
    function(r) return r.cmk and 1 or 0 end },
  { "azcmk_registry_cmk_state", "The registry's CMK health (a state set: 1 for the state it is in).",
    nil },
  { "azcmk_key_version_age_seconds", "Age of the key version the registry uses.",
    function(r) return r.cmk and tonumber(r.key_age_seconds) or nil end },
  { "azcmk_key_rotation_due", "1 when the key in use is due for rotation (a newer version not adopted, "
      .. "a year old, or expiring within 30 days), else 0.",
    function(r)
      if not r.cmk or r.rotation_due == nil then return nil end
      return r.rotation_due and 1 or 0
    end },
  { "azcmk_doctor_findings", "Problems found in the registry's CMK chain.",
    function(r) return type(r.problems) == "table" and #r.problems or 0 end },
  { "azcmk_registry_last_check_timestamp_seconds", "When the registry was last checked (Unix time).",
    function(_, at) return at end },
}

--- A label value escaped as the format wants (backslash, double quote, line feed).
function M.escape(v)
  local esc = { ["\\"] = "\\\\", ["\""] = "\\\"", ["\n"] = "\\n" }
  return (tostring(v == nil and "" or v):gsub("[\\\"\n]", esc))
end

local function labels(r, extra)
  return '{subscription="' .. M.escape(r.subscription) .. '",resource_group="' .. M.escape(r.resource_group)
    .. '",registry="' .. M.escape(r.name) .. '"' .. (extra or "") .. "}"
end

local function num(v)
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
  return string.format("%.17g", v)
end

local W = {}
W.__index = W

--- A writer. opts.spill: keep each family's samples in a temp file instead of memory.
function M.writer(opts)
  local w = setmetatable({ bufs = {} }, W)
  for i = 1, #M.FAMILIES do
    local f = opts and opts.spill and io.tmpfile() or nil
    w.bufs[i] = f or {}
  end
  return w
end

local function put(buf, line)
  if type(buf) == "table" then buf[#buf + 1] = line else buf:write(line) end
end

--- Adds one registry's samples. checked_at: Unix time of the check.
function W:add(r, checked_at)
  for i, fam in ipairs(M.FAMILIES) do
    if fam[3] then
      local v = fam[3](r, checked_at)
      if v then put(self.bufs[i], fam[1] .. labels(r) .. " " .. num(v) .. "\n") end
    else
      for _, s in ipairs(STATES) do
        local v = r.health == s and "1" or "0"
        put(self.bufs[i], fam[1] .. labels(r, ',state="' .. s .. '"') .. " " .. v .. "\n")
      end
    end
  end
end

--- Writes every family (help, type, samples) to fh (anything with :write) and frees the buffers.
function W:finish(fh)
  for i, fam in ipairs(M.FAMILIES) do
    fh:write("# HELP ", fam[1], " ", fam[2], "\n# TYPE ", fam[1], " gauge\n")
    local buf = self.bufs[i]
    if type(buf) == "table" then
      fh:write(table.concat(buf))
    else
      buf:seek("set")
      for chunk in function() return buf:read(65536) end do fh:write(chunk) end
      buf:close()
    end
    self.bufs[i] = nil
  end
end

--- The metrics of rows as one string.
function M.text(rows, checked_at)
  local w = M.writer()
  for _, r in ipairs(rows) do w:add(r, checked_at) end
  local out = {}
  w:finish({ write = function(_, ...) for _, s in ipairs({ ... }) do out[#out + 1] = s end end })
  return table.concat(out)
end

return M
