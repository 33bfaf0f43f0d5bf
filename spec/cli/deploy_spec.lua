-- azcmk deploy: a failed deployment's error carries its operations' own codes and messages (read
-- through the deployments client) and a next step; the README's example works.
local H = require("support.cmk_helper")

describe("azcmk deploy", function()
  local s, names

  setup(function() s, names = H.start_with_registry() end)
  teardown(function() H.done() end)

  local function deploy(registry_name)
    return H.cli({ "deploy", "-g", names.resource_group, "-f", "examples/cmk-template.json", "-p",
      "registry_name=" .. registry_name, "identity_name=" .. H.unique("id"), "vault_name=" .. names.vault,
      "kek_id=" .. s.versioned_key_id, "-n", H.unique("dep") })
  end

  it("a failed deployment: one line with each failed operation's code and message, a next step", function()
    local r = deploy("r2")
    assert.equal(1, r.code, r.stderr)
    local last = r.stderr:match("([^\n]+)\n$")
    assert.matches("^azcmk deploy: deployment dep%w+ failed: Microsoft%.ContainerRegistry/registries/r2: "
      .. "InvalidResourceName Resource name 'r2' is invalid", last)
    assert.matches("%[DeploymentFailed", last)
    assert.matches("%-%- next: fix what the operations name %(often a parameter: %-p/%-%-parameters%) and "
      .. "run the same deploy again", last)
  end)

  it("the failed operations as data (playbook): resource, code, message", function()
    local r = deploy("r2")
    assert.equal(1, r.code)
    local dep = r.stderr:match("deployment (dep%w+) failed")
    local ctx = assert(require("azcmk.playbook.common").context(H.opts()))
    local failed = require("azcmk.playbook.deploy").failed_operations(ctx, names.resource_group, dep)
    assert.equal(1, #failed)
    assert.same({ resource = "Microsoft.ContainerRegistry/registries/r2", code = "InvalidResourceName" },
      { resource = failed[1].resource, code = failed[1].code })
    assert.matches("between 5 and 50 characters", failed[1].message)
  end)

  it("with a valid registry name the template deploys", function()
    local r = deploy(H.unique("reg"))
    assert.equal(0, r.code, r.stderr)
    assert.matches("Succeeded", r.stdout)
  end)
end)
