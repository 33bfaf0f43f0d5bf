--- `azcmk emulator start|stop|status`: the local Azure emulator (see docs/emulator.md).
local emulator = require("azcmk.emulator")
local params = require("azcmk.cli.params")

local M = {}

local USAGE = [[
usage: azcmk emulator start  [--port N] [--dir DIR] [--workers N] [--only azcmk|tools]
       azcmk emulator stop   [--dir DIR | --port N]
       azcmk emulator status [--dir DIR | --port N | --all]   (no selection: all of them)
       azcmk emulator env    [--dir DIR | --port N] [--only azcmk|tools]

start   generates a test CA and certificates in DIR, starts nginx on three loopback ports and
        prints `export` lines: eval "$(azcmk emulator start)"
          https  Entra ID, Resource Manager, Key Vault, Container Registry, Graph
          http   (https + 1) IMDS and App Service managed identity
          proxy  (https + 2) HTTPS proxy (CONNECT) for az, the SDKs, curl: emulated hosts only,
                 never the internet
        Without --port it picks free ports (the directory's previous ones when free) and says
        which on stderr; --port N takes N, N+1, N+2 or fails. DIR: --dir, else
        /tmp/azcmk-emulator (with --port N: /tmp/azcmk-emulator-N).
        The exports: azcmk's (AZCMK_CONNECT_TO, AZCMK_CA_FILE), the seeded owner principal
        (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_SUBSCRIPTION_ID),
        AZCMK_EMULATOR_DIR, and for every other tool HTTPS_PROXY/https_proxy, NO_PROXY/no_proxy,
        REQUESTS_CA_BUNDLE, SSL_CERT_FILE, CURL_CA_BUNDLE (system CAs + the emulator's) and
        NODE_EXTRA_CA_CERTS. --only azcmk leaves the proxy and CA lines out, --only tools
        azcmk's own.
stop    stops it (DIR from --dir, --port, or AZCMK_EMULATOR_DIR, else /tmp/azcmk-emulator)
status  says whether it runs
env     prints the export lines of a running emulator again
Needs nginx with the Lua and stream-js modules and the LuaJIT build of azcmk.core (run `make`
in a checkout). See docs/emulator.md.
]]

local function parse(argv)
  local o = {}
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local name, val = a:match("^%-%-([%w-]+)=(.*)$")
    name = name or a:match("^%-%-([%w-]+)$")
    if not name then
      o._positional = o._positional or {}
      o._positional[#o._positional + 1] = a
    elseif name == "all" or name == "help" or name == "quiet" then
      o[name] = true
    else
      if val == nil then
        i = i + 1
        val = argv[i]
        if val == nil then return nil, "flag --" .. name .. " needs a value" end
      end
      o[name] = val
    end
    i = i + 1
  end
  return o
end

function M.run(argv, io_)
  local out, err = io_.stdout, io_.stderr
  local sub = argv[1]
  local rest = {}
  for i = 2, #argv do rest[#rest + 1] = argv[i] end
  if sub == nil or sub == "--help" or sub == "-h" or sub == "help" then
    out:write(USAGE)
    return sub and 0 or 2
  end
  local o, perr = parse(rest)
  if not o then err:write("azcmk emulator: ", perr, "\n") return 2 end
  if o.help then out:write(USAGE) return 0 end
  for _, k in ipairs({ "port", "workers" }) do
    if o[k] and not tonumber(o[k]) then
      err:write("azcmk emulator: --", k, " must be a number\n")
      return 2
    end
  end
  if o.only and o.only ~= "azcmk" and o.only ~= "tools" then
    err:write("azcmk emulator: --only must be azcmk or tools\n")
    return 2
  end
  local sel = { dir = o.dir, port = tonumber(o.port) }
  if sub == "start" then
    local info, e = emulator.start({ port = tonumber(o.port), dir = o.dir, workers = tonumber(o.workers),
      only = o.only })
    if not info then err:write("azcmk emulator: ", params.text(tostring(e), "emulator"), "\n") return 1 end
    local p = emulator.ports(info.port)
    err:write(string.format("azcmk emulator: %s: https 127.0.0.1:%d, http 127.0.0.1:%d, " ..
      "proxy http://127.0.0.1:%d (pid %d, dir %s)\n", info.already and "already running" or "started",
      p.https, p.http, p.proxy, info.pid or 0, info.dir))
    out:write(info.env_lines)
    return 0
  elseif sub == "stop" then
    local ok, e = emulator.stop(sel)
    if not ok then err:write("azcmk emulator: ", tostring(e), "\n") return 1 end
    if e == "not running" then
      err:write("azcmk emulator: not running (", emulator.resolve_dir(sel), ")\n")
    else
      err:write("azcmk emulator: stopped (", emulator.resolve_dir(sel), ")\n")
    end
    return 0
  elseif sub == "status" then
    local list
    -- No selection at all (no --dir/--port, no AZCMK_EMULATOR_DIR): every registered emulator.
    local env_dir = os.getenv("AZCMK_EMULATOR_DIR")
    if o.all or (not sel.dir and not sel.port and (env_dir == nil or env_dir == "")) then
      list = emulator.list()
      if #list == 0 then out:write("no emulator registered\n") end
    else
      list = { emulator.status(sel) }
    end
    local any = false
    for _, st in ipairs(list) do
      if st.running then
        any = true
        out:write(string.format("running  port %d  pid %d  dir %s\n", st.port or 0, st.pid, st.dir))
      else
        out:write(string.format("stopped  dir %s\n", st.dir))
      end
    end
    return any and 0 or 3
  elseif sub == "env" then
    local st = emulator.status(sel)
    if not st.running then err:write("azcmk emulator: not running (", st.dir, ")\n") return 3 end
    out:write(emulator.env_lines(st.dir, o.only))
    return 0
  end
  err:write("azcmk emulator: unknown command '", tostring(sub), "' (start, stop, status, env)\n")
  return 2
end

return M
