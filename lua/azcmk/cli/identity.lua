--- `azcmk identity assign`: re-attach a user-assigned identity or enable [system].
local common = require("azcmk.cli.common")
local errors = require("azcmk.errors")

local FLAGS = {
  { "identities", nil, "IDENTITY", "name, resource id, client id, or [system]", aliases = { "identity" } },
  common.FORCE,
  common.DRY_RUN,
}

local M = {}

M.run = common.verb({
  verb = "identity",
  usage = "azcmk identity assign -n REGISTRY [-g RG] --identities NAME|ID|CLIENT_ID|[system] [--force] "
    .. "[--dry-run]",
  flags = FLAGS,
  positional = "assign",
  build = function(opts, pos, o)
    if pos[1] ~= "assign" then
      return nil, errors.input(pos[1] and ("unknown identity command '" .. pos[1] .. "'")
        or "which identity command? (assign)", { code = "UnknownCommand",
        hint = "use: azcmk identity assign -n REGISTRY --identity ..." })
    end
    o.registry = opts.name
    o.identity = opts.identities
    o.dry_run, o.force = opts.dry_run, opts.force
    if not o.identity then
      return nil, errors.input("no identity given", { code = "MissingArgument", param = "identity",
        hint = "pass `identity`: a name, a resource id, a client id, or [system]" })
    end
    return true
  end,
  call = function(o) return require("azcmk.playbook.identity").assign(o) end,
  render = function(r, opts, io_)
    local who = r.identity.kind == "system" and ("[system] (principal " .. tostring(r.identity.principal_id)
      .. ")")
      or tostring(r.identity.id)
    return common.emit(io_, opts, r, nil, { { "registry", r.registry.name }, { "identity", who }, { "changed",
      r.changed } },
      (r.changed and "Assigned " or "Already assigned: ") .. who .. " to registry " .. r.registry.name
        .. "\n")
  end,
})

return M
