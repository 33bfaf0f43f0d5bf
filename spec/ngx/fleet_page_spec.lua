-- The status module in fleet mode against the emulator: /metrics serves Prometheus text for
-- every registry of the subscription, and /cmk/fleet a page that a real browser (Debian's
-- headless Chromium, installed by scripts/deps.sh) renders with one row per registry: a
-- healthy CMK registry green, one whose identity lost its key access red with the finding.
-- The screenshot stays in build/fleet-page.png as the test's artifact.
local E = require("support.emulator")
local W = require("support.cmk_world")
local N = require("support.ngx_harness")

local function sh(cmd)
  local f = assert(io.popen(cmd .. " 2>/dev/null"))
  local out = f:read("a")
  f:close()
  return out
end

local function chromium()
  for _, c in ipairs({ "chromium", "chromium-browser" }) do
    if sh("command -v " .. c) ~= "" then return c end
  end
  return nil
end

local function poll(srv, path, pred)
  local last
  for _ = 1, 400 do
    last = srv:get(path)
    if last.status == 200 and pred(last.body) then return last end
    os.execute("sleep 0.05")
  end
  return last
end

describe("nginx embedding: fleet metrics and page #lua54", function()
  local env, srv, ok_w, bad_w, sub
  setup(function()
    env = E.ensure()
    E.reset()
    E.control("POST", "config", { lro = { polls = 1, seconds = 0 } })
    sub = E.seed().subscription_id
    ok_w = W.world()
    bad_w = W.world()
    W.policy(sub, bad_w.rg, bad_w.vault, "remove", bad_w.uai.properties.principalId)
    srv = N.start({ workers = 1, env = env, init_worker = string.format([[
      require("azcmk.ngx.status").start{ fleet = true, subscriptions = { %q }, period = 2, timeout_s = 20,
        title = "Fleet <test>" }
    ]], sub), server = [[
      location = /metrics { content_by_lua_block { require("azcmk.ngx.status").metrics() } }
      location = /cmk/fleet { content_by_lua_block { require("azcmk.ngx.status").page() } }
    ]] })
  end)
  teardown(function()
    if srv then srv:stop() end
    E.assert_no_internal_errors()
    E.reset()
  end)

  it("serves Prometheus metrics per registry", function()
    local r = poll(srv, "/metrics", function(b) return b:find(bad_w.reg, 1, true) ~= nil end)
    assert.equal(200, r.status, r.body)
    assert.equal("text/plain; version=0.0.4; charset=utf-8", r.headers["content-type"])
    local function lbl(w)
      local l = ('subscription="%s",resource_group="%s",registry="%s"'):format(sub, w.rg, w.reg)
      return (l:gsub("%p", "%%%0"))
    end
    assert.matches("azcmk_registry_cmk_state{" .. lbl(ok_w) .. ',state="ok"} 1', r.body)
    assert.matches("azcmk_registry_cmk_state{" .. lbl(bad_w) .. ',state="fail"} 1', r.body)
    assert.matches("azcmk_doctor_findings{" .. lbl(bad_w) .. "} [1-9]", r.body)
    assert.matches("azcmk_key_version_age_seconds{" .. lbl(ok_w) .. "} %d+", r.body)
    assert.matches("azcmk_registry_last_check_timestamp_seconds{" .. lbl(ok_w) .. "} %d+", r.body)
  end)

  it("a browser shows a row per registry, coloured by state, with the first finding", function()
    local browser = chromium()
    assert.truthy(browser, "no chromium: run scripts/deps.sh (it installs Debian's chromium)")
    local r = poll(srv, "/cmk/fleet", function(b) return b:find(bad_w.reg, 1, true) ~= nil end)
    assert.equal(200, r.status, r.body)
    assert.equal("text/html; charset=utf-8", r.headers["content-type"])
    local url = srv.base .. "/cmk/fleet"
    local flags = "--headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="
      .. srv.dir .. "/chromium"
    local dom = sh(browser .. " " .. flags .. " --dump-dom " .. url)
    -- the title was escaped, not taken as markup
    assert.matches("<title>Fleet &lt;test&gt;</title>", dom, 1, true)
    local ok_row = dom:match('<tr class="(%a+)" data%-registry="' .. ok_w.reg .. '">(.-)</tr>')
    local bad_class, bad_row = dom:match('<tr class="(%a+)" data%-registry="' .. bad_w.reg .. '">(.-)</tr>')
    assert.equal("ok", ok_row, dom)
    assert.equal("fail", bad_class)
    assert.matches("data plane refuses", bad_row)
    assert.matches('<td class="num">&lt; 1 d</td>', bad_row, 1, true)
    -- the page's first rows are the failures
    assert.is_true(dom:find('class="fail"', 1, true) < dom:find('class="ok"', 1, true))
    os.execute("mkdir -p build")
    local png = "build/fleet-page.png"
    os.remove(png)
    sh(browser .. " " .. flags .. " --window-size=1280,720 --screenshot=" .. png .. " " .. url)
    local f = assert(io.open(png, "rb"), "no screenshot at " .. png)
    local head = f:read(8)
    local size = f:seek("end")
    f:close()
    assert.equal("\137PNG\r\n\26\n", head)
    assert.is_true(size > 5000, "screenshot of " .. size .. " bytes")
  end)
end)
