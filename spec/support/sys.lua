--- Small process and file helpers shared by the spec harnesses (tls_nginx, ngx_harness,
-- emulator): shell quoting, os.execute's success on Lua 5.4 and LuaJIT, whole-file I/O, and
-- whether a loopback TCP port is free.
local M = {}

--- A shell word: 'it'\''s'.
function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Runs cmd through the shell; true when it exited 0.
function M.sh(cmd)
  local ok, how, code = os.execute(cmd)
  if type(ok) == "number" then return ok == 0 end -- Lua 5.1 / LuaJIT without 5.2 compat
  return ok == true and how == "exit" and code == 0
end

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function M.write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- True when nothing listens on TCP port `port`.
function M.port_free(port)
  local p = io.popen("ss -Hltn 'sport = :" .. port .. "' 2>/dev/null")
  local out = p:read("*a")
  p:close()
  return not out:match("%S")
end

return M
