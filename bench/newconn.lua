--- bench/newconn.lua: HTTPS GETs that each open a new TLS connection (the server closes it), the
-- case of a job that talks to several hosts (login, ARM, each vault) once or twice each.
-- Usage: lua5.4 bench/newconn.lua URL CA_FILE|- REQUESTS   (- : the system's CAs; prints
-- "requests cpu_ms_per_request"; run by bench/newconn.sh).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local http = require "azcmk.http"

local url, ca, total = arg[1], arg[2], tonumber(arg[3]) or 200
local c = http.new({ ca_file = ca ~= "-" and ca or nil, http_version = "1.1", user_agent = "azcmk-bench" },
  {})
local req = { url = url, headers = { Connection = "close" } }
assert(c:request(req)) -- warm-up: loads the libraries' lazy state
local c0 = os.clock()
for _ = 1, total do
  local r, err = c:request(req)
  if not r or r.status ~= 200 then error("request failed: " .. tostring(err)) end
end
print(string.format("%d %.3f", total, (os.clock() - c0) * 1000 / total))
c:close()
