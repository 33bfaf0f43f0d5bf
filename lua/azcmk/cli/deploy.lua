--- `azcmk deploy`: deploy an ARM template with parameters (az deployment group create).
local common = require("azcmk.cli.common")
local errors = require("azcmk.errors")
local cjson = require("cjson.safe")

local FLAGS = {
  { "name", "n", "DEPLOYMENT", "deployment name (default: the template file's name without .json)" },
  { "template-file", "f", "PATH", "the ARM template (e.g. examples/cmk-template.json)" },
  { "parameters", "p", "K=V", "a parameter (more may follow as K=V words), or @params.json" },
  { "location", "l", "REGION", "create the resource group in REGION when it does not exist" },
  { "mode", nil, "MODE", "Incremental (default) or Complete" },
  common.DRY_RUN,
}

local M = {}

local function add_param(params, s)
  if s:sub(1, 1) == "@" then
    local f = io.open(s:sub(2), "rb")
    if not f then return nil, errors.input("cannot read " .. s:sub(2), { code = "InvalidParameters",
      hint = "pass @FILE of a parameters JSON file, or K=V" }) end
    local j = cjson.decode(f:read("a"))
    f:close()
    if type(j) ~= "table" then return nil, errors.input(s:sub(2) .. " is not JSON",
      { code = "InvalidParameters",
      hint = "a parameters file is {\"parameters\": {\"name\": {\"value\": ...}}} or {\"name\": value}" }) end
    for k, v in pairs(j.parameters or j) do params[k] = v end
    return true
  end
  local k, v = s:match("^([^=]+)=(.*)$")
  if not k then
    return nil, errors.input("parameter '" .. s .. "' is not NAME=VALUE", { code = "InvalidParameters",
      hint = "pass --parameters name=value other=value" })
  end
  params[k] = v
  return true
end

M.run = common.verb({
  verb = "deploy",
  usage = "azcmk deploy -g RG -f TEMPLATE.json [-n DEPLOYMENT] [-p K=V [K=V ...] | -p @PARAMS.json] "
    .. "[-l REGION] [--dry-run]",
  flags = FLAGS,
  positional = "K=V",
  build = function(opts, pos, o)
    o.template_file = opts.template_file
    o.name = opts.name
    o.location, o.mode, o.dry_run = opts.location, opts.mode, opts.dry_run
    local params = {}
    if opts.parameters then
      local ok, err = add_param(params, opts.parameters)
      if not ok then return nil, err end
    end
    for _, w in ipairs(pos) do
      local ok, err = add_param(params, w)
      if not ok then return nil, err end
    end
    o.parameters = params
    if not o.resource_group then
      return nil, errors.input("no resource group given", { code = "MissingArgument",
        param = "resource_group",
        hint = "pass `resource_group`" })
    end
    return true
  end,
  call = function(o) return require("azcmk.playbook.deploy").deploy(o) end,
  render = function(r, opts, io_)
    return common.emit(io_, opts, { name = r.name, id = r.id, provisioningState = r.provisioning_state,
      outputs = r.outputs,
      steps = r.steps }, nil, { { "deployment", r.name }, { "state", r.provisioning_state } },
      "Deployment " .. r.name .. ": " .. tostring(r.provisioning_state) .. "\n" .. common.steps_text(r)
        .. "\n")
  end,
})

return M
