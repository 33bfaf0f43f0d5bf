-- JMESPath benchmark, the Lua side (bench/jmespath.sh runs it and the Python and JavaScript
-- implementations on the same data and queries).
--   lua bench/jmespath.lua write FILE [registries=1000]   write the audit result as JSON
--   lua bench/jmespath.lua run [registries=1000] [seconds=2]
-- The data is an audit result of N registries (every 10th with CMK, some failing), with the
-- fields `azcmk audit` gives each registry; it is built here, deterministically.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local json = require("azcmk.json")
local jmespath = require("azcmk.jmespath")

local QUERIES = {
  "registries[?health != 'ok'].{name: name, group: resource_group, health: health, "
    .. "problems: join('; ', problems)}",
  "sort_by(registries[?cmk], &key_age_days)[-5:].name",
  "length(registries[?cmk && !up_to_date])",
}

local function audit_result(n)
  local rows = json.array()
  local summary = { registries = n, listed = n, cmk = 0, ok = 0, warn = 0, fail = 0 }
  for i = 1, n do
    local sub = string.format("00000000-0000-4000-8000-%012d", i % 3)
    local rg = "bench-rg-" .. (i % 10 + 1)
    local name = string.format("benchreg%05d", i)
    local row = { subscription = sub, name = name, resource_group = rg, location = "westus",
      id = "/subscriptions/" .. sub .. "/resourceGroups/" .. rg
        .. "/providers/Microsoft.ContainerRegistry/registries/" .. name,
      sku = ({ "Basic", "Standard", "Premium" })[i % 3 + 1], login_server = name .. ".azurecr.io",
      health = "ok", problems = json.array(), data_plane = 401 }
    if i % 10 == 0 then
      row.cmk, row.encryption = true, "enabled"
      row.vault, row.key_name = "benchkv", "benchkey"
      row.key_id = "https://benchkv.vault.azure.net/keys/benchkey"
      row.versioned = i % 20 == 0
      row.key_version_in_use = string.format("%032x", i)
      row.newest_key_version = i % 30 == 0 and string.format("%032x", i + 1) or row.key_version_in_use
      row.up_to_date = row.newest_key_version == row.key_version_in_use
      row.identity, row.identity_health = "user", i % 70 == 0 and "deleted" or "ok"
      row.key_age_days = (i * 37) % 400
      row.key_version_created = string.format("2024-%02d-%02dT00:00:00Z", i % 12 + 1, i % 28 + 1)
      if not row.up_to_date then
        row.health = "warn"
        row.problems[#row.problems + 1] = "a newer key version exists"
      end
      if row.identity_health == "deleted" then
        row.health = "fail"
        row.problems[#row.problems + 1] = "the user-assigned identity was deleted"
      end
      summary.cmk = summary.cmk + 1
    else
      row.cmk, row.encryption = false, "disabled"
    end
    summary[row.health] = summary[row.health] + 1
    rows[i] = row
  end
  return { subscriptions = json.array(), registries = rows, summary = summary }
end

local mode = arg[1]
if mode == "write" then
  local f = assert(io.open(arg[2], "w"))
  f:write(json.encode(audit_result(tonumber(arg[3]) or 1000)))
  f:close()
  for _, q in ipairs(QUERIES) do print(q) end
  return
end

local n, seconds = tonumber(arg[2]) or 1000, tonumber(arg[3]) or 2
local data = audit_result(n)
for _, expr in ipairs(QUERIES) do
  local q = assert(jmespath.compile(expr))
  assert(q:search(data))
  local count, t0 = 0, os.clock()
  repeat
    for _ = 1, 10 do q:search(data) end
    count = count + 10
  until os.clock() - t0 >= seconds
  local per = (os.clock() - t0) / count
  -- compile cost: the parse every --query pays once
  local c0, compiles = os.clock(), 0
  repeat
    for _ = 1, 100 do jmespath.compile(expr) end
    compiles = compiles + 100
  until os.clock() - c0 >= seconds / 4
  local name = rawget(_G, "jit") and "LuaJIT" or "Lua 5.4"
  print(string.format("%-8s search %9.1f us  compile %6.1f us  %s", name, per * 1e6,
    (os.clock() - c0) / compiles * 1e6, expr))
end
