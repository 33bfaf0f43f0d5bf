--- The `azcmk` command line: verb dispatch, help and version.
-- Each verb lives in its own module `azcmk.cli.<verb>` exporting `run(argv, io)`.
local M = {}

local VERBS = {
  { "setup", "create or reuse everything a CMK-encrypted registry needs" },
  { "show", "show a registry's encryption and the key version really in use" },
  { "rotate", "rotate to a new key version, another key, or another identity" },
  { "revoke", "remove the registry identity's access to the key (asks for --yes)" },
  { "restore", "give the registry identity its access back" },
  { "identity", "identity assign: re-attach a user-assigned identity or enable [system]" },
  { "recover", "recover a soft-deleted key or vault" },
  { "verify", "push and pull a tiny test artifact: can the registry really use its key?" },
  { "doctor", "find (and with --fix repair) what breaks a CMK registry" },
  { "audit", "every registry of the subscriptions, its encryption and key health" },
  { "deploy", "deploy an ARM template with parameters" },
  { "emulator", "emulator start|stop|status: the local Azure emulator" },
  { "run", "run SCRIPT.lua with azcmk on the path" },
}

local function usage(out)
  out:write("usage: azcmk <verb> [flags]\n\n",
    "Script the Azure Container Registry customer-managed-key life cycle.\n\nverbs:\n")
  for _, v in ipairs(VERBS) do out:write(string.format("  %-10s %s\n", v[1], v[2])) end
  out:write("\ncommon flags: -g/--resource-group, -n/--name, --subscription NAME_OR_ID,\n",
    "  -o/--output json|jsonc|table|tsv|yaml|none, --query JMESPATH, --verbose, --debug\n",
    "environment: AZCMK_LOG=off|error|warn|info|debug logs requests on stderr\n",
    "  azcmk <verb> --help   flags of one verb\n  azcmk --version\n")
end

local function unknown(verb)
  local names = {}
  for _, v in ipairs(VERBS) do names[#names + 1] = v[1] end
  return require("azcmk.cli.args").unknown_verb(verb, names)
end

M.EXIT_INTERRUPTED = 130   -- 128 + SIGINT, as shells report it

--- Is err the error the standalone interpreter raises on Ctrl-C (SIGINT)?
function M.interrupted(err)
  return type(err) == "string" and err:find("interrupted!", 1, true) ~= nil
end

local function dispatch(argv)
  local verb = argv[1]
  if verb == nil or verb == "--help" or verb == "-h" or verb == "help" then
    usage(io.stdout)
    return verb and 0 or 2
  end
  if verb == "--version" or verb == "version" then
    io.stdout:write("azcmk ", require("azcmk.pipeline").VERSION, "\n")
    return 0
  end
  local bad = unknown(verb)
  if bad then
    io.stderr:write("azcmk: ", bad, " -- next: run 'azcmk --help' for the list\n")
    return 2
  end
  local ok, mod = pcall(require, "azcmk.cli." .. verb)
  if not ok then
    if tostring(mod):find("module 'azcmk.cli." .. verb .. "' not found", 1, true) then
      io.stderr:write("azcmk: '", verb, "' is not available in this version yet\n")
      return 2
    end
    error(mod, 0)
  end
  local rest = {}
  for i = 2, #argv do rest[#rest + 1] = argv[i] end
  return mod.run(rest, { stdout = io.stdout, stderr = io.stderr }) or 0
end

--- Runs the command line; returns its exit status. Ctrl-C ends it with one line on stderr and
-- status 130 instead of a Lua traceback. Every playbook reads the state before it writes, so
-- running the same command again resumes where it stopped.
function M.main(argv)
  local ok, code = xpcall(dispatch, function(err)
    if M.interrupted(err) then return err end
    return debug.traceback(err, 2)
  end, argv or {})
  if ok then return code end
  if M.interrupted(code) then
    io.stderr:write("azcmk: interrupted (Ctrl-C) -- next: run the same command again; it reads "
      .. "what is there and resumes\n")
    return M.EXIT_INTERRUPTED
  end
  error(code, 0)
end

return M
