-- The status helper (azcmk.ngx.status) against a CMK registry in the emulator: /cmk/health is
-- 200 while the chain is healthy, 503 once the identity's access to the key is revoked
-- (access policy removed through ARM; the data plane answers 403), 200 again after the
-- access is restored. The refresh period is 1 s; each flip is awaited by polling (bounded).
local E = require("support.emulator")
local W = require("support.cmk_world")
local N = require("support.ngx_harness")

local function poll(srv, path, want, tries)
  local last
  for _ = 1, tries or 300 do
    last = srv:get(path)
    if last.status == want then return last end
    os.execute("sleep 0.05")
  end
  return last
end

describe("nginx embedding: CMK status and health #lua54", function()
  local env, srv, w
  setup(function()
    env = E.ensure()
    E.reset()
    E.control("POST", "config", { lro = { polls = 1, seconds = 0 } })
    w = W.world()
    srv = N.start({ workers = 2, env = env, init_worker = string.format([[
      require("azcmk.ngx.status").start{ registries = { %q }, period = 1, timeout_s = 10 }
    ]], w.rg .. "/" .. w.reg) })
  end)
  teardown(function() if srv then srv:stop() end end)

  it("serves the registry's CMK state as JSON", function()
    local r = poll(srv, "/cmk/status", 200)
    assert.are.equal(200, r.status, r.body)
    assert.are.equal("application/json", r.headers["content-type"])
    local reg = r.json.registries[1]
    assert.are.equal(w.reg, reg.name)
    assert.are.equal(w.rg, reg.resource_group)
    assert.is_true(reg.cmk)
    assert.are.equal(w.kid, reg.key_id)
    assert.are.equal(401, reg.data_plane.status)
    assert.is_true(reg.healthy)
    assert.matches("^ok", reg.reason)
    assert.is_number(r.json.age)
  end)

  it("health: 200, then 503 with the reason after revocation, then 200 after restoring", function()
    local h = poll(srv, "/cmk/health", 200)
    assert.are.equal(200, h.status, h.body)
    assert.is_true(h.json.healthy)

    W.policy(w.sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
    h = poll(srv, "/cmk/health", 503)
    assert.are.equal(503, h.status, h.body)
    assert.is_false(h.json.healthy)
    assert.matches("403", h.json.reason)
    assert.matches("cannot use its key", h.json.reason)
    local s = srv:get("/cmk/status")
    assert.are.equal(403, s.json.registries[1].data_plane.status)

    W.policy(w.sub, w.rg, w.vault, "add", w.uai.properties.principalId)
    h = poll(srv, "/cmk/health", 200)
    assert.are.equal(200, h.status, h.body)
    assert.is_true(h.json.healthy)
  end)

  it("a registry revoked on purpose (azcmk revoke's tag) is unhealthy, and says so", function()
    local id = W.reg_path(w.sub, w.rg, w.reg)
    local function tag(tags)
      local r = E.arm("PATCH", id, { tags = tags }, { api_version = W.ACR_API })
      assert.is_true(r.status >= 200 and r.status < 300, r.status .. " " .. tostring(r.body))
      W.wait(r)
    end
    tag({ ["azcmk-revoked"] = "2026-11-30T10:00:00Z by ops@example.com" })
    W.policy(w.sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
    local h = poll(srv, "/cmk/health", 503)
    assert.are.equal(503, h.status, h.body)
    assert.matches("revoked deliberately on 2026%-11%-30T10:00:00Z by ops@example.com", h.json.reason)
    assert.matches("azcmk restore", h.json.reason)
    local reg = srv:get("/cmk/status").json.registries[1]
    assert.are.equal("revoked", reg.state)
    assert.are.equal("ops@example.com", reg.revoked.by)
    assert.is_nil(reg.doctor)   -- a revocation explains itself
    tag({})
    W.policy(w.sub, w.rg, w.vault, "add", w.uai.properties.principalId)
    h = poll(srv, "/cmk/health", 200)
    assert.are.equal(200, h.status, h.body)
    assert.are.equal("active", srv:get("/cmk/status").json.registries[1].state)
  end)

  it("with probe = \"content\" reads an image as the gateway's identity and names the key version", function()
    local H = require("support.cmk_helper")
    H.p = H.pipeline()
    H.push_image(w.reg:lower() .. ".azurecr.io", "gw/app", "1")
    local srv3 = N.start({ workers = 1, env = env, init_worker = string.format([[
      require("azcmk.ngx.status").start{ registries = { %q }, period = 1, timeout_s = 10, probe = "content" }
    ]], w.rg .. "/" .. w.reg) })
    local ok, err = pcall(function()
      local h = poll(srv3, "/cmk/health", 200)
      assert.are.equal(200, h.status, h.body)
      local reg = srv3:get("/cmk/status").json.registries[1]
      assert.are.equal("usable", reg.content.verdict)
      assert.are.equal("gw/app", reg.content.repository)
      assert.are.equal(w.kid:match("[^/]+$"), reg.content.key_version)
      assert.matches("content probe: the registry read gw/app:1", reg.reason)
      W.policy(w.sub, w.rg, w.vault, "remove", w.uai.properties.principalId)
      h = poll(srv3, "/cmk/health", 503)
      assert.are.equal(503, h.status, h.body)
      reg = srv3:get("/cmk/status").json.registries[1]
      assert.are.equal("key_unusable", reg.content.verdict)
      W.policy(w.sub, w.rg, w.vault, "add", w.uai.properties.principalId)
    end)
    srv3:stop()
    assert(ok, err)
  end)

  it("a registry without a customer-managed key is unhealthy, with the reason", function()
    local sub = w.sub
    local name = W.uniq("plainreg")
    local r = E.arm("PUT", W.reg_path(sub, w.rg, name), { location = "westus", sku = { name = "Premium" } },
      { api_version = W.ACR_API })
    assert.is_true(r.status == 200 or r.status == 201, r.body)
    W.wait(r)
    local srv2 = N.start({ workers = 1, env = env, init_worker = string.format([[
      require("azcmk.ngx.status").start{ registries = { %q, %q }, period = 1 }
    ]], w.rg .. "/" .. w.reg, w.rg .. "/" .. name) })
    local ok, err = pcall(function()
      local h = poll(srv2, "/cmk/health", 503)
      assert.are.equal(503, h.status, h.body)
      assert.matches("not enabled", h.json.reason)
      assert.is_true(h.json.registries[1].healthy)
      assert.is_false(h.json.registries[2].healthy)
    end)
    srv2:stop()
    assert(ok, err)
  end)

  it("left no internal errors in the emulator", function()
    E.assert_no_internal_errors()
  end)
end)
