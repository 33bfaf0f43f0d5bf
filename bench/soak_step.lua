--- One step of the soak's CMK story (bench/soak.sh), in its own process so that the soak can
-- kill it: the playbook the `azcmk` verb runs, on the pipeline every face builds
-- (azcmk.compose: the environment's emulator, credential, AZCMK_OPERATION_ID), with shorter
-- waits than the defaults so that hundreds of runs fit in a bench: backoff from 50 ms,
-- server-sent waits capped at 0.2 s, 3 s per try (the soak's slow answers take 3.5 s).
--   lua5.4 bench/soak_step.lua VERB REGISTRY RESOURCE_GROUP VAULT
-- Exit 0: done; 1: the playbook failed (the error on stderr); 2: doctor found a problem.
-- Every reconcile line (azcmk.client.reconcile) goes to stderr: AZCMK_LOG=warn.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local compose = require("azcmk.compose")
local pb = require("azcmk.playbook")

local verb, registry, rg, vault = arg[1], arg[2], arg[3], arg[4]
local p = assert(compose.pipeline({
  retry = { base = 0.05, cap = 0.5, max_retry_after = 0.2, try_timeout_ms = 3000, max_retries = 4 },
  lro_interval = 0.05, log = "warn",
}))
local o = { pipeline = p, registry = registry, resource_group = rg, interval = 0.05 }
local r, err
if verb == "setup" then
  o.vault, o.location = vault, "westus"
  r, err = pb.setup(o)
elseif verb == "revoke" then
  o.yes = true
  r, err = pb.revoke(o)
elseif verb == "show" or verb == "rotate" or verb == "restore" or verb == "doctor" then
  r, err = pb[verb](o)
else
  io.stderr:write("soak_step: unknown verb " .. tostring(verb) .. "\n")
  os.exit(64)
end
if not r then
  io.stderr:write("soak_step " .. verb .. ": " .. tostring(err) .. "\n")
  os.exit(1)
end
for _, st in ipairs(r.steps or {}) do
  if tostring(st.action):find("earlier run", 1, true) then
    io.stderr:write("soak_step " .. verb .. ": " .. st.step .. " " .. st.action .. "\n")
  end
end
if verb == "doctor" and not r.healthy then
  io.stderr:write("soak_step doctor: not healthy\n")
  os.exit(2)
end
os.exit(0)
