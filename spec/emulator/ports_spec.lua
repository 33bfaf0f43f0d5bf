-- The repository's own scripts start their emulators on free ports: a taken port that used to
-- be their fixed default (the suite's 18443.., the demo's 8443) no longer fails them; a port
-- given explicitly (AZCMK_TEST_PORT, AZCMK_DEMO_PORT) is still used.
local sys = require("support.sys")

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("*a")
  p:close()
  return tonumber(out:match("rc=(%d+)%s*$")), (out:gsub("rc=%d+%s*$", ""))
end

-- Holds the free ones among `ports` with one listener process; returns a release function.
local function hold(ports)
  local free = {}
  for _, p in ipairs(ports) do if sys.port_free(p) then free[#free + 1] = tostring(p) end end
  if #free == 0 then return function() end end
  local pidfile = os.tmpname()
  os.execute("python3 -c " .. sys.q("import socket,sys,os,time\nss=[]\nfor p in sys.argv[2:]:\n" ..
    "  s=socket.socket(); s.bind(('127.0.0.1',int(p))); s.listen(); ss.append(s)\n" ..
    "open(sys.argv[1],'w').write(str(os.getpid()))\ntime.sleep(300)\n") .. " " .. pidfile .. " " ..
    table.concat(free, " ") .. " >/dev/null 2>&1 &")
  for _ = 1, 200 do
    if sys.port_free(tonumber(free[#free])) then os.execute("sleep 0.02") else break end
  end
  return function()
    local pid = tonumber(sys.read(pidfile) or "")
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    os.remove(pidfile)
  end
end

describe("scripts on taken ports #slow", function()
  it("scripts/test.sh starts the suite's emulator on free ports when 18443.. is taken", function()
    local release = hold({ 18443, 18444, 18445, 18446 })
    local rc, out = sh("env -u AZCMK_TEST_PORT -u AZCMK_EMULATOR_DIR TEST_ONLY=none TEST_OUT=build/spec-ports-test " ..
      "scripts/test.sh")
    release()
    assert.equal(0, rc, out)
    assert.truthy(out:find("0 passed, 0 failed", 1, true), out)
    assert.falsy(out:find("emulator failed to start", 1, true), out)
  end)

  it("scripts/test.sh still takes AZCMK_TEST_PORT when it is given", function()
    local port = require("support.emulator").free_port()
    local rc, out = sh("env -u AZCMK_EMULATOR_DIR AZCMK_TEST_PORT=" .. port ..
      " TEST_ONLY=none TEST_OUT=build/spec-ports-test scripts/test.sh")
    assert.equal(0, rc, out)
    assert.truthy(out:find("https 127.0.0.1:" .. port .. ",", 1, true), out)
  end)

  it("scripts/demo.sh runs when 8443 is taken", function()
    local release = hold({ 8443, 8444, 8445 })
    local rc, out = sh("env -u AZCMK_DEMO_PORT -u AZCMK_EMULATOR_DIR scripts/demo.sh")
    release()
    assert.equal(0, rc, out)
    assert.truthy(out:find("start the local Azure emulator", 1, true), out)
    assert.falsy(out:find("Address already in use", 1, true), out)
  end)
end)
