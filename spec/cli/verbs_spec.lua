-- The azcmk verbs as a user runs them: exit codes, one-line errors with the next step,
-- `-o json` (stdout only JSON), --help per verb, progress on stderr.
local H = require("support.cmk_helper")

local VERBS = { setup = { "--vault", "--access", "--versionless", "--enable-purge-protection", "--location" },
  show = { "--probe" }, rotate = { "--key-encryption-key", "--identity", "--key", "--vault",
    "--versionless", "--force" },
  revoke = { "--yes" }, restore = {},
  identity = { "--identity", "--force" }, recover = { "--vault", "--key" },
  deploy = { "--template-file", "--parameters" } }

local function one_line_error(r, pat)
  assert.are_not.equal(0, r.code)
  local lines = {}
  for l in r.stderr:gmatch("[^\n]+") do lines[#lines + 1] = l end
  assert.equal(1, #lines, "stderr should be one line:\n" .. r.stderr)
  assert.matches("^azcmk ", lines[1])
  if pat then assert.matches(pat, lines[1]) end
  return lines[1]
end

describe("azcmk command line", function()
  local c, seed

  setup(function() c, seed = H.start() end)

  teardown(function() H.done() end)

  it("--help of every verb lists its flags and the common ones", function()
    for verb, flags in pairs(VERBS) do
      local r = H.cli({ verb, "--help" })
      assert.equal(0, r.code, verb)
      assert.matches("usage: azcmk " .. verb, r.stdout)
      for _, f in ipairs(flags) do assert.truthy(r.stdout:find(f, 1, true), verb .. " " .. f) end
      for _, f in ipairs({ "--resource-group", "--name", "--subscription", "--output" }) do
        assert.truthy(r.stdout:find(f, 1, true), verb .. " " .. f)
      end
    end
    local r = H.cli({ "run", "--help" })
    assert.equal(0, r.code)
  end)

  it("usage errors: unknown flag, bad output format, no subscription - exit 2, one line", function()
    one_line_error(H.cli({ "show", "--bogus" }), "unknown flag '%-%-bogus'.*next:")
    one_line_error(H.cli({ "show", "-n", "x", "-o", "xml" }), "unknown output format")
    local r = H.cli({ "show", "-n", "someregistry" }, { AZURE_SUBSCRIPTION_ID = false })
    assert.equal(2, r.code)
    one_line_error(r, "no subscription.*next: .*AZURE_SUBSCRIPTION_ID")
  end)

  it("setup, twice (-o json: only JSON on stdout, progress on stderr), then show -o json", function()
    local rg, reg, kv = H.unique("rg-"), H.unique("cli"), H.unique("kv-")
    local r = H.cli({ "setup", "-g", rg, "-n", reg, "--vault", kv, "-l", "westus", "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    local j = assert(H.json(r.stdout), r.stdout)
    assert.is_true(j.changed)
    assert.equal(reg, j.registry.name)
    assert.truthy(r.stderr:find("creating Key Vault", 1, true))
    assert.truthy(r.stderr:find("irreversible", 1, true))
    local seq = H.seq()
    r = H.cli({ "setup", "-g", rg, "-n", reg, "--vault", kv, "-l", "westus", "-o", "json" })
    assert.equal(0, r.code)
    assert.is_false(H.json(r.stdout).changed)
    assert.equal(0, #H.writes(seq))
    -- readable default
    r = H.cli({ "setup", "-g", rg, "-n", reg, "--vault", kv })
    assert.equal(0, r.code)
    assert.matches("Nothing to change", r.stdout)
    -- show -o json = properties.encryption (+ an "azcmk" object)
    r = H.cli({ "show", "-n", reg, "-o", "json" })
    assert.equal(0, r.code)
    local shown = assert(H.json(r.stdout))
    local raw = assert(c.registries:get({ resource_group = rg, name = reg }))
    local extra = shown.azcmk
    shown.azcmk = nil
    assert.same(raw.properties.encryption, shown)
    assert.equal(extra.keyVersionInUse, extra.newestKeyVersion)
    r = H.cli({ "show", "-n", reg, "-o", "table" })
    assert.equal(0, r.code)
    assert.matches("^Registry%s+Status%s+KeyIdentifier%s+VersionedKeyIdentifier", r.stdout)
    assert.matches("\n" .. reg .. "%s+enabled%s+https://", r.stdout)
    r = H.cli({ "show", "-n", reg, "--probe" })
    assert.matches("data plane:%s+serving %(401%)", r.stdout)
  end)

  it("--subscription instead of AZURE_SUBSCRIPTION_ID; a name that is no subscription's is refused",
    function()
    local s = H.setup()
    local r = H.cli({ "show", "-n", s.registry.name, "--subscription", seed.subscription_id, "-o", "json" },
      { AZURE_SUBSCRIPTION_ID = false })
    assert.equal(0, r.code, r.stderr)
    assert.equal("enabled", H.json(r.stdout).status)
    one_line_error(H.cli({ "show", "-n", s.registry.name, "--subscription", "my-sub" }),
      "no subscription named 'my%-sub'")
  end)

  it("refusals before any write: exit 2, one line with the next step, no write", function()
    local seq = H.seq()
    local line = one_line_error(H.cli({ "setup", "-g", "rg", "-n", "my-registry", "--vault", "kv-1", "-l",
      "westus" }), "registry name")
    assert.matches("next:", line)
    one_line_error(H.cli({ "setup", "-g", "rg", "-n", "myregistry1", "--vault", "kv-1", "-l", "westus",
      "--sku", "Basic" }), "Premium")
    one_line_error(H.cli({ "setup", "-g", "rg", "-n", "myregistry1", "--vault", "kv-1", "-l", "westus",
      "--key-type", "EC" }), "RSA")
    one_line_error(H.cli({ "rotate", "-n", "myregistry1", "--key-encryption-key",
      "https://kv.vault.azure.cn/keys/k" }),
      "AzureChinaCloud")
    one_line_error(H.cli({ "rotate", "-n", "myregistry1", "--disable" }), "cannot be disabled")
    one_line_error(H.cli({ "recover" }), "no vault")
    assert.equal(0, #H.writes(seq), H.describe(H.writes(seq)))
    local r = H.cli({ "show", "-n", H.unique("none") })
    assert.equal(1, r.code)
    one_line_error(r, "RegistryNotFound.*next:")
  end)

  it("rotate, revoke (plan without --yes), revoke --yes, restore, identity assign, recover", function()
    local s = H.setup()
    local name = s.registry.name
    local r = H.cli({ "rotate", "-n", name, "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    local j = H.json(r.stdout)
    assert.is_true(j.verified)
    assert.are_not.equal(s.versioned_key_id, j.versioned_key_id)

    r = H.cli({ "revoke", "-n", name })
    assert.equal(2, r.code)
    assert.matches("revoke would:", r.stdout)
    one_line_error(r, "ConfirmationRequired.*next: re%-run with %-%-yes")
    r = H.cli({ "revoke", "-n", name, "-o", "json" })
    assert.equal(2, r.code)
    assert.is_false(H.json(r.stdout).applied)
    assert.equal(401, (H.data_plane(s.registry.login_server)))

    r = H.cli({ "revoke", "-n", name, "--yes", "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    assert.is_true(H.json(r.stdout).applied)
    assert.equal(403, (H.data_plane(s.registry.login_server)))
    r = H.cli({ "show", "-n", name, "--probe" })
    assert.matches("DENIED 403", r.stdout)
    assert.matches("state:%s+REVOKED on %S+ by %S+", r.stdout)
    -- recorded: rotate, identity assign, setup and doctor --fix refuse (exit 2, no write), --force is named
    local seq = H.seq()
    one_line_error(H.cli({ "rotate", "-n", name }),
      "RegistryRevoked.*%-n/%-%-name.*next: end the revocation with `azcmk restore %-n " .. name
        .. "`, or pass %-%-force")
    one_line_error(H.cli({ "identity", "assign", "-n", name, "--identity", "[system]" }), "RegistryRevoked")
    one_line_error(H.cli({ "doctor", "-n", name, "--fix", "--yes" }), "RegistryRevoked")
    assert.equal(0, #H.writes(seq), H.describe(H.writes(seq)))
    r = H.cli({ "doctor", "-n", name })
    assert.equal(1, r.code)
    assert.matches(": REVOKED %(0 failed", r.stdout)
    assert.matches("revoked deliberately on %S+ by %S+: run `azcmk restore %-n " .. name .. "` to undo",
      r.stdout)

    r = H.cli({ "restore", "-n", name })
    assert.equal(0, r.code)
    assert.matches("Restored", r.stdout)
    assert.equal(401, (H.data_plane(s.registry.login_server)))

    r = H.cli({ "identity", "assign", "-n", name, "--identity", "[system]", "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("system", H.json(r.stdout).identity.kind)
    one_line_error(H.cli({ "identity", "remove", "-n", name, "--identity", "[system]" }),
      "unknown identity command")
    r = H.cli({ "rotate", "-n", name, "--identity", "[system]", "--keep-version" })
    assert.equal(0, r.code, r.stderr)
    assert.matches("identity:%s+system", r.stdout)

    local key = s.key_id:match("/keys/([^/]+)")
    assert(c.keys:delete({ vault = s.vault.name, name = key }))
    r = H.cli({ "recover", "--vault", s.vault.name, "--key", key })
    assert.equal(0, r.code, r.stderr)
    assert.matches("Recovered", r.stdout)
    assert.equal(401, (H.data_plane(s.registry.login_server)))
  end)

  it("deploy the article's template with K=V parameters", function()
    local s = H.setup()
    local reg = H.unique("tplcli")
    local r = H.cli({ "deploy", "-g", s.registry.resource_group, "-f", "examples/cmk-template.json",
      "--parameters", "registry_name=" .. reg, "identity_name=cli-tpl-id", "vault_name=" .. s.vault.name,
      "kek_id=" .. s.versioned_key_id, "-o", "json" })
    assert.equal(0, r.code, r.stderr)
    assert.equal("Succeeded", H.json(r.stdout).provisioningState)
    r = H.cli({ "deploy", "-g", s.registry.resource_group, "-f", "examples/cmk-template.json",
      "--parameters", "registry_name=" .. reg, "identity_name=cli-tpl-id", "vault_name=" .. s.vault.name,
      "key_id=" .. s.versioned_key_id })
    assert.equal(2, r.code)
    one_line_error(r, "did you mean kek_id")
    -- the parameters file with the article's placeholders is refused up front; K=V words override it
    local seq = H.seq()
    r = H.cli({ "deploy", "-g", s.registry.resource_group, "-f", "examples/cmk-template.json",
      "-p", "@examples/cmk-template.parameters.json" })
    assert.equal(2, r.code)
    one_line_error(r, "InvalidKeyId")
    assert.equal(0, #H.writes(seq))
    r = H.cli({ "deploy", "-g", s.registry.resource_group, "-f", "examples/cmk-template.json", "-n",
      "from-file",
      "-p", "@examples/cmk-template.parameters.json", "registry_name=" .. H.unique("tplf"),
      "identity_name=cli-file-id", "vault_name=" .. s.vault.name, "kek_id=" .. s.versioned_key_id })
    assert.equal(0, r.code, r.stderr)
    assert.matches("Deployment from%-file: Succeeded", r.stdout)
  end)

  it("never prints a secret, even with AZCMK_LOG=debug", function()
    local s = H.setup()
    local r = H.cli({ "rotate", "-n", s.registry.name, "-o", "json" }, { AZCMK_LOG = "debug" })
    assert.equal(0, r.code, r.stderr)
    assert.truthy(H.json(r.stdout), "stdout stays pure JSON with debug logging on stderr")
    assert.truthy(r.stderr:find("azcmk http", 1, true), "debug lines expected on stderr")
    local all = r.stdout .. r.stderr
    assert.is_nil(all:find(seed.owner.client_secret, 1, true))
    assert.is_nil(all:find("eyJ[%w%-_]+%.eyJ"))
  end)

  it("run SCRIPT.lua: azcmk on the path, arguments, exit code", function()
    local f = os.tmpname()
    local h = assert(io.open(f, "w"))
    h:write('local azcmk = require("azcmk"); assert(azcmk.playbook.setup); print("args", ...); return 3\n')
    h:close()
    local r = H.cli({ "run", f, "a", "b" })
    os.remove(f)
    assert.equal(3, r.code)
    assert.matches("args\ta\tb", r.stdout)
    r = H.cli({ "run", "/nonexistent/x.lua" })
    assert.equal(2, r.code)
  end)
end)
