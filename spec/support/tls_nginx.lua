--- A real local nginx over TLS for specs and benches, with its own test CA.
-- `local srv = require("support.tls_nginx").start()` generates (once per process) a CA and
-- a server certificate for `names` with the openssl CLI, writes an nginx.conf into a temp
-- directory and starts nginx there on free loopback ports; `srv:stop()` ends it and
-- removes the directory. Only 127.0.0.1 is ever listened on or connected to.
--
-- srv.port        TLS, HTTP/2 offered (ALPN h2 + http/1.1)
-- srv.port_h1     TLS, HTTP/1.1 only
-- srv.http_port   plain http
-- srv.stall_port  TLS whose handshake stalls (ssl_certificate_by_lua sleeps): connect timeouts
-- srv.ca_file     the test CA (PEM)
-- Locations: /hello (X-Conn = $connection, X-Conn-Requests), /echo (method, body, request line
-- as X-Request-Line, request headers as X-Echo-<name>), /headers (repeated and mixed-case),
-- /redirect (302), /interim (HTTP/1.1 only: a raw 103, then a 200 with folded, duplicate
-- and malformed headers), /many?n=N (HTTP/1.1 only: N repeated headers), /sleep?s=N
-- (X-Session-Reused = $ssl_session_reused),
-- /big?n=N, /status?code=N.
local M = {}
local sys = require("support.sys")
local sh, q, read, write = sys.sh, sys.q, sys.read, sys.write

local DEFAULT_NAMES = { "localhost", "management.azure.com", "myvault.vault.azure.net", "127.0.0.1" }
local MODULES = "/usr/lib/nginx/modules/"




local function mktemp_dir(prefix)
  local p = io.popen("mktemp -d /tmp/" .. prefix .. ".XXXXXX")
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

-- CA and server certificate, generated once per process per set of names while servers
-- use them; the last `stop` of a server using one removes its directory.
local pki_cache = {}

function M.pki(names)
  names = names or DEFAULT_NAMES
  local key = table.concat(names, ",")
  if pki_cache[key] then return pki_cache[key] end
  local dir = mktemp_dir("azcmk-pki")
  local san = {}
  for _, n in ipairs(names) do
    san[#san + 1] = (n:match("^[%d.]+$") or n:find(":", 1, true)) and ("IP:" .. n) or ("DNS:" .. n)
  end
  write(dir .. "/ext.cnf", "subjectAltName=" .. table.concat(san, ",") .. "\n" ..
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local cmd = "(" .. table.concat({
    "cd " .. q(dir),
    "openssl req -x509 " .. ec .. " -keyout ca.key -out ca.pem -days 3 -subj '/CN=azcmk test CA'" ..
      " -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'",
    "openssl req " .. ec .. " -keyout server.key -out server.csr -subj '/CN=" .. names[1] .. "'",
    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3" ..
      " -out server.pem -extfile ext.cnf",
  }, " && ") .. ") >/dev/null 2>&1"
  assert(sh(cmd), "openssl failed to make the test PKI in " .. dir)
  local pki = { dir = dir, ca_file = dir .. "/ca.pem", cert = dir .. "/server.pem",
                key = dir .. "/server.key", key_name = key, users = 0 }
  pki_cache[key] = pki
  return pki
end

local LOCATIONS = [[
    location = /hello {
      add_header X-Conn $connection always;
      add_header X-Conn-Requests $connection_requests always;
      return 200 "hello $arg_i";
    }
    location = /headers {
      add_header X-Multi one always;
      add_header X-Multi two always;
      add_header X-MiXeD-Case Yes always;
      add_header Set-Cookie a=1 always;
      add_header Set-Cookie b=2 always;
      return 200 "ok";
    }
    location = /redirect {
      return 302 https://$host:$server_port/hello;
    }
    location = /echo {
      content_by_lua_block {
        ngx.req.read_body()
        local body = ngx.req.get_body_data() or ""
        for k, v in pairs(ngx.req.get_headers()) do
          if type(v) == "table" then v = table.concat(v, ", ") end
          ngx.header["X-Echo-" .. k] = v == "" and "(empty)" or v
        end
        ngx.header["X-Method"] = ngx.req.get_method()
        ngx.header["X-Body-Length"] = #body
        ngx.header["X-Conn"] = ngx.var.connection
        ngx.header["X-Protocol"] = ngx.var.server_protocol
        ngx.header["X-Request-Line"] = ngx.var.request
        ngx.print(body)
      }
    }
    location = /interim {
      content_by_lua_block {
        local sock = assert(ngx.req.socket(true))
        sock:send("HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\nX-Interim: yes\r\n\r\n" ..
          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\nX-Folded: a\r\n  b\r\n" ..
          "x-dup: 1\r\nX-Dup: 2\r\nBad Header: ignored\r\nConnection: close\r\n\r\nok")
      }
    }
    location = /many {
      content_by_lua_block {
        local n = tonumber(ngx.var.arg_n) or 10
        local sock = assert(ngx.req.socket(true))
        local t = { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n" }
        for i = 1, n do t[#t + 1] = "X-Many: v" .. i .. "\r\n" end
        t[#t + 1] = "\r\nok"
        sock:send(table.concat(t))
      }
    }
    location = /sleep {
      content_by_lua_block {
        ngx.sleep(tonumber(ngx.var.arg_s) or 1)
        ngx.header["X-Session-Reused"] = ngx.var.ssl_session_reused
        ngx.say("slept")
      }
    }
    location = /big {
      content_by_lua_block { ngx.print(string.rep("x", tonumber(ngx.var.arg_n) or 1024)) }
    }
    location = /status {
      content_by_lua_block {
        ngx.status = tonumber(ngx.var.arg_code) or 200
        ngx.say("status ", ngx.status)
      }
    }
]]

local function conf(dir, pki, p)
  local t = {
    "load_module " .. MODULES .. "ndk_http_module.so;",
    "load_module " .. MODULES .. "ngx_http_lua_module.so;",
    "daemon on;", "master_process on;", "worker_processes 1;",
    "pid " .. dir .. "/nginx.pid;", "error_log " .. dir .. "/error.log warn;",
    "events { worker_connections 512; }",
    "http {",
    "  access_log off;",
    "  client_body_temp_path " .. dir .. "/tmp/body;",
    "  proxy_temp_path " .. dir .. "/tmp/proxy;",
    "  fastcgi_temp_path " .. dir .. "/tmp/fastcgi;",
    "  uwsgi_temp_path " .. dir .. "/tmp/uwsgi;",
    "  scgi_temp_path " .. dir .. "/tmp/scgi;",
    "  keepalive_requests 100000; keepalive_timeout 120s;",
    "  http2_max_requests 100000;",
    "  client_max_body_size 16m; client_body_buffer_size 16m;",
    "  ssl_certificate " .. pki.cert .. ";", "  ssl_certificate_key " .. pki.key .. ";",
    "  ssl_session_cache shared:SSL:1m;",
    "  server { listen 127.0.0.1:" .. p .. " ssl http2;", LOCATIONS, "  }",
    "  server { listen 127.0.0.1:" .. (p + 1) .. " ssl;", LOCATIONS, "  }",
    "  server { listen 127.0.0.1:" .. (p + 2) .. ";", LOCATIONS, "  }",
    "  server { listen 127.0.0.1:" .. (p + 3) .. " ssl;",
    "    ssl_certificate_by_lua_block { ngx.sleep(3) }",
    "    location / { return 200 'late'; }",
    "  }",
    "}",
  }
  return table.concat(t, "\n") .. "\n"
end

local Server = {}
Server.__index = Server

function Server:url(path, port)
  return "https://127.0.0.1:" .. (port or self.port) .. (path or "/")
end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  local pid = (read(self.dir .. "/nginx.pid") or ""):match("%d+")
  if pid then
    sh("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 250 do -- up to ~5 s
      if not sh("kill -0 " .. pid .. " 2>/dev/null") then break end
      sh("sleep 0.02")
    end
  end
  sh("rm -rf " .. q(self.dir))
  local pki = self.pki
  pki.users = pki.users - 1
  if pki.users <= 0 and pki_cache[pki.key_name] == pki then
    pki_cache[pki.key_name] = nil
    sh("rm -rf " .. q(pki.dir))
  end
end

--- Starts nginx. opts.names: certificate names (default: localhost, management.azure.com,
-- myvault.vault.azure.net, 127.0.0.1).
function M.start(opts)
  opts = opts or {}
  local pki = M.pki(opts.names)
  local dir = mktemp_dir("azcmk-nginx")
  assert(sh("mkdir -p " .. q(dir .. "/tmp") .. " " .. q(dir .. "/logs")))
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + #dir)
  for _ = 1, 20 do
    local p = math.random(20000, 59000)
    write(dir .. "/nginx.conf", conf(dir, pki, p))
    local cmd = "nginx -p " .. q(dir .. "/") .. " -c " .. q(dir .. "/nginx.conf") ..
      " -e " .. q(dir .. "/error.log") .. " >>" .. q(dir .. "/start.log") .. " 2>&1"
    if sh(cmd) then
      for _ = 1, 250 do -- the daemon writes its pid file just after forking
        if read(dir .. "/nginx.pid") then break end
        sh("sleep 0.02")
      end
      pki.users = pki.users + 1
      return setmetatable({
        dir = dir, ca_file = pki.ca_file, pki = pki,
        port = p, port_h1 = p + 1, http_port = p + 2, stall_port = p + 3,
      }, Server)
    end
    local log = read(dir .. "/start.log") or ""
    if not log:find("in use", 1, true) then
      sh("rm -rf " .. q(dir))
      if pki.users == 0 then
        pki_cache[pki.key_name] = nil
        sh("rm -rf " .. q(pki.dir))
      end
      error("nginx failed to start: " .. log)
    end
  end
  sh("rm -rf " .. q(dir))
  if pki.users == 0 then
    pki_cache[pki.key_name] = nil
    sh("rm -rf " .. q(pki.dir))
  end
  error("nginx: no free loopback port found")
end

return M
