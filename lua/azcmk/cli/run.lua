--- `azcmk run SCRIPT.lua [ARGS...]`: run a Lua script with azcmk on the path (the checkout's
-- lua/ and build/ when run from one; an installed rock otherwise). The script sees `arg`
-- like a normal Lua script; its exit code (os.exit) is the command's.
local M = {}

function M.run(argv, io_)
  io_ = io_ or { stdout = io.stdout, stderr = io.stderr }
  local script = argv[1]
  if script == nil or script == "--help" or script == "-h" then
    io_.stdout:write("usage: azcmk run SCRIPT.lua [ARGS...]\n\n"
      .. "Runs SCRIPT.lua with azcmk on the package path; "
      .. "the environment of `eval \"$(azcmk emulator start)\"` points it at the emulator.\n")
    return script and 0 or 2
  end
  local chunk, err = loadfile(script)
  if not chunk then
    io_.stderr:write("azcmk run: cannot load ", script, ": ", tostring(err),
      " -- next: check the path and syntax\n")
    return 2
  end
  local a = { [0] = script }
  for i = 2, #argv do a[i - 1] = argv[i] end
  _G.arg = a
  local unpack_ = rawget(table, "unpack") or rawget(_G, "unpack")
  local ok, res = xpcall(function() return chunk(unpack_(a)) end, function(e)
    if require("azcmk.cli").interrupted(e) then return e end
    return debug.traceback(e, 2)
  end)
  if not ok and require("azcmk.cli").interrupted(res) then error(res, 0) end  -- Ctrl-C: cli.main
  if not ok then
    io_.stderr:write("azcmk run: ", script, " failed: ", tostring(res), "\n")
    return 1
  end
  if type(res) == "number" then return res end
  return 0
end

return M
