--- Starts a real nginx (Debian's nginx + libnginx-mod-http-lua) that embeds azcmk, for the
-- specs in spec/ngx/ and bench/openresty.sh. Only loopback.
--
--   local N = require("support.ngx_harness")
--   local srv = N.start{ workers = 1, env = E.ensure(), http = "...", server = "...",
--                        init_worker = "...", trusted = "/path/ca.pem" }
--   local res = srv:get("/fast")   -- { status, headers, body, json }
--   srv:stop()
--
-- The configuration: ndk + lua modules, `env` lines for the AZURE_* / AZCMK_* names given in
-- opts.env (nginx is started with them in its environment), lua_shared_dict azcmk_tokens,
-- azcmk_status and azcmk_test, lua_ssl_trusted_certificate = the system bundle + the
-- emulator's CA (or opts.trusted), the checkout's lua/ and build/jit on the Lua paths, and
-- locations from spec/support/ngx_app.lua (see there) plus opts.server.
local cjson = require("cjson.safe")

local M = {}
local sys = require("support.sys")
local sh, q, read, write, port_free = sys.sh, sys.q, sys.read, sys.write, sys.port_free

local MODULES = "/usr/lib/nginx/modules/"
M.SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"




local function cwd()
  local p = io.popen("pwd")
  local d = p:read("*l")
  p:close()
  return d
end


function M.free_port()
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  for _ = 1, 50 do
    local port = math.random(12000, 17999)  -- below the ephemeral range (32768-)
    if port_free(port) then return port end
  end
  error("no free port")
end

M.ENV_NAMES = { "AZCMK_CONNECT_TO", "AZCMK_CA_FILE", "AZURE_TENANT_ID", "AZURE_CLIENT_ID",
  "AZURE_CLIENT_SECRET",  "AZURE_SUBSCRIPTION_ID", "AZCMK_STATUS_REGISTRIES", "AZCMK_LOG" }

local TEMPLATE = [[
${USER}
worker_processes ${WORKERS};
pid ${DIR}/nginx.pid;
error_log ${DIR}/error.log ${LOG_LEVEL};
load_module ${MODULES}ndk_http_module.so;
load_module ${MODULES}ngx_http_lua_module.so;
${ENV}
${MAIN}
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${DIR}/tmp;
  proxy_temp_path ${DIR}/tmp;
  fastcgi_temp_path ${DIR}/tmp;
  uwsgi_temp_path ${DIR}/tmp;
  scgi_temp_path ${DIR}/tmp;
  lua_package_path "${ROOT}/lua/?.lua;${ROOT}/lua/?/init.lua;${ROOT}/spec/?.lua;${LUA_PATH};;";
  lua_package_cpath "${ROOT}/build/jit/?.so;;";
  lua_shared_dict azcmk_tokens 1m;
  lua_shared_dict azcmk_status 1m;
  lua_shared_dict azcmk_test 1m;
  lua_ssl_trusted_certificate ${TRUSTED};
  lua_ssl_verify_depth 5;
  lua_socket_log_errors off;
  resolver 127.0.0.1 ipv6=off;
  resolver_timeout 2s;
  ${HTTP}
  init_worker_by_lua_block {
    ${INIT_WORKER}
  }
  server {
    listen 127.0.0.1:${PORT} reuseport;
    location = /ping { return 200 "pong\n"; }
    location = /fast { content_by_lua_block { require("support.ngx_app").fast() } }
    location = /slow { content_by_lua_block { require("support.ngx_app").slow() } }
    location = /arm { content_by_lua_block { require("support.ngx_app").arm() } }
    location = /transport { content_by_lua_block { require("support.ngx_app").transport() } }
    location = /phase { content_by_lua_block { require("support.ngx_app").phase() } }
    location = /contract { content_by_lua_block { require("support.ngx_app").contract() } }
    location = /tokens { content_by_lua_block { require("support.ngx_app").tokens() } }
    location = /batch { content_by_lua_block { require("support.ngx_app").batch() } }
    location = /cmk/status { content_by_lua_block { require("azcmk.ngx.status").serve() } }
    location = /cmk/health { content_by_lua_block { require("azcmk.ngx.status").health() } }
    ${SERVER}
  }
}
]]

function M.is_root()
  local p = io.popen("id -u")
  local u = p:read("*l")
  p:close()
  return u == "0"
end

local S = {}
S.__index = S

--- opts: workers (1), env (emulator env table), http (extra http-block text), server (extra
-- server-block text), main (main-context text, e.g. thread_pool), lua_path (extra
-- lua_package_path entries), init_worker (Lua), trusted (CA bundle file; default system + AZCMK_CA_FILE),
-- log_level ("warn").
function M.start(opts)
  for _ = 1, 3 do
    local ok, srv = pcall(M.start_once, opts)
    if ok then return srv end
    if not tostring(srv):find("Address already in use", 1, true) then error(srv, 0) end
  end
  return M.start_once(opts)
end

function M.start_once(opts)
  opts = opts or {}
  local root = cwd()
  local port = M.free_port()
  local dir = root .. "/build/spec-nginx-" .. port
  assert(sh("mkdir -p " .. q(dir .. "/tmp")))
  local env = opts.env or {}
  local trusted = opts.trusted
  if not trusted then
    trusted = dir .. "/trusted.pem"
    write(trusted, (read(M.SYSTEM_CA) or "") .. "\n" .. (env.AZCMK_CA_FILE and read(env.AZCMK_CA_FILE) or ""))
  end
  local env_lines, env_prefix = {}, {}
  for _, k in ipairs(M.ENV_NAMES) do
    env_lines[#env_lines + 1] = "env " .. k .. ";"
    if env[k] then env_prefix[#env_prefix + 1] = k .. "=" .. q(env[k]) end
  end
  local vars = { WORKERS = tostring(opts.workers or 1), DIR = dir, MODULES = MODULES, ROOT = root,
    ENV = table.concat(env_lines, "\n"), TRUSTED = trusted, PORT = tostring(port), HTTP = opts.http or "",
    SERVER = opts.server or "", USER = M.is_root() and "user root;" or "",
    INIT_WORKER = opts.init_worker or "", MAIN = opts.main or "", LUA_PATH = opts.lua_path or "",
    LOG_LEVEL = opts.log_level or "warn" }
  local conf = TEMPLATE:gsub("%${([%w_]+)}", function(k) return vars[k] end)
  write(dir .. "/nginx.conf", conf)
  local cmd = "env -i PATH=/usr/sbin:/usr/bin:/bin " .. table.concat(env_prefix, " ") ..
    " nginx -p " .. q(dir) .. " -c " .. q(dir .. "/nginx.conf") .. " -e " .. q(dir .. "/error.log") ..
    " >" .. q(dir .. "/start.log") .. " 2>&1"
  if not sh(cmd) then error("nginx did not start: " .. tostring(read(dir .. "/start.log"))) end
  local srv = setmetatable({ port = port, dir = dir, base = "http://127.0.0.1:" .. port }, S)
  srv.client = require("azcmk.http").new({ timeout_ms = 60000 }, {})
  for _ = 1, 200 do
    local r = srv.client:request({ url = srv.base .. "/ping" })
    if r and r.status == 200 then return srv end
    sh("sleep 0.02")
  end
  srv:stop()
  error("nginx did not answer on " .. port .. ": " .. tostring(read(dir .. "/error.log")))
end

function S:get(path, opts)
  opts = opts or {}
  local res, err, code = self.client:request({ method = opts.method or "GET", url = self.base .. path,
    body = opts.body, headers = opts.headers, timeout_ms = opts.timeout_ms })
  if not res then error("GET " .. path .. ": " .. tostring(err) .. " " .. tostring(code)) end
  res.json = cjson.decode(res.body or "")
  return res
end

--- Parallel GETs (libcurl multi): list of results.
function S:batch(paths, max_parallel)
  local reqs = {}
  for i, p in ipairs(paths) do reqs[i] = { method = "GET", url = self.base .. p } end
  local out = self.client:batch(reqs, { max_parallel = max_parallel or 16 })
  for _, r in ipairs(out) do if r.body then r.json = cjson.decode(r.body) end end
  return out
end

function S:error_log() return read(self.dir .. "/error.log") or "" end

function S:stop()
  local pid = read(self.dir .. "/nginx.pid")
  pid = pid and pid:match("%d+")
  if pid then
    -- graceful first; fast shutdown when a worker lingers (e.g. open keep-alive clients)
    for _, sig in ipairs({ "QUIT", "TERM", "KILL" }) do
      sh("kill -" .. sig .. " " .. pid .. " 2>/dev/null")
      local gone = false
      for _ = 1, 60 do
        if not sh("kill -0 " .. pid .. " 2>/dev/null") then gone = true break end
        sh("sleep 0.05")
      end
      if gone then break end
    end
  end
  if self.client then self.client:close() end
  -- the directory (config, error.log) stays when AZCMK_KEEP_NGINX is set, for debugging
  if not os.getenv("AZCMK_KEEP_NGINX") then sh("rm -rf " .. q(self.dir)) end
end

return M
