--- Plan, then apply: how every writing playbook works (setup, rotate, revoke, restore,
-- identity assign, recover, deploy, doctor's repairs). It reads what exists (facts), decides
-- what to write - plan(facts) -> actions, plain data, or a refusal - and then carries the
-- actions out one by one - apply(actions). With dry_run = true it stops after the plan: the
-- result carries the plan and nothing was written.
--
-- An action is a table:
--   step         what it is about: "resource_group", "identity", "vault", "access", "key",
--                "registry", "deployment", ...
--   action       what it does: "create", "update", "grant", "remove", "assign", "enable",
--                "rotate", "recover", "deploy", "record" / "clear" (the revocation tag), ... or
--                "reuse" (writes nothing: kept so the plan shows the whole chain)
--   done         the step's action once applied ("created", "granted", ...; default `action`)
--   name, id     the resource it is about (name or label; id: its resource id or key URL,
--                built with azcmk.client.ids before the write when it can be known)
--   description  one line for people: what changes
--   reason       why (what the facts said: "it does not exist", "the identity has no access")
--   request      the write it sends ("PUT /subscriptions/.../vaults/kv1"), when known
--   irreversible true when it cannot be undone (purge protection, revocation)
--   detail, model, principal_id, ...   extra facts for the step it records
--   kind, args   for its playbook's apply: which handler, and what the handler needs
-- The action list is what a later step that must reconcile an ambiguous write (a timeout
-- after a PUT) re-reads: each action names the resource and the request it sends.
local M = {}

-- what an applied action records as its step's action
local DONE = { create = "created", update = "updated", grant = "granted", remove = "removed",
  assign = "assigned", enable = "enabled", rotate = "rotated", recover = "recovered", reuse = "reused",
  deploy = "succeeded", check = "checked", record = "recorded", clear = "cleared" }

-- the fields of an action that describe it (what a plan shows); kind and args are the playbook's
local PUBLIC = { "step", "action", "name", "id", "description", "reason", "request", "irreversible", "detail",
  "model",
  "principal_id", "keys", "note" }

-- What a handler returns when it recorded its own steps (a compound action: one repair of the
-- doctor may enable an identity, grant it and rotate).
M.RECORDED = setmetatable({}, { __tostring = function() return "azcmk.playbook.plan.RECORDED" end })

--- A new action (fields as above). Returns it.
function M.action(fields)
  local a = {}
  for k, v in pairs(fields) do a[k] = v end
  a.done = a.done or DONE[a.action] or a.action
  return a
end

--- Does the action write anything? ("reuse" and "check" - a read after the writes, such as
-- rotate's verification - do not.)
function M.writes(a) return a.action ~= "reuse" and a.action ~= "check" end

--- The number of actions that write.
function M.changes(actions)
  local n = 0
  for _, a in ipairs(actions) do if M.writes(a) then n = n + 1 end end
  return n
end

--- The plan as data for output (-o json, results): the public fields of every action.
function M.view(actions)
  local out = {}
  for i, a in ipairs(actions) do
    local v = { order = i, writes = M.writes(a) }
    for _, k in ipairs(PUBLIC) do v[k] = a[k] end
    out[i] = v
  end
  return out
end

-- the fields of the step an action records
local function step_fields(a, extra)
  local f = {}
  for _, k in ipairs({ "name", "id", "detail", "model", "principal_id" }) do f[k] = a[k] end
  for k, v in pairs(extra or {}) do f[k] = v end
  return f
end

--- apply(ctx, actions, handlers, state) -> true, or nil, err. Each action with a kind runs
-- handlers[action.kind](ctx, action, state), which returns the fields of its step (e.g. the
-- id of what it created; `action` = "reused" when it found the work already done) or nil,
-- err; then the step is recorded (ctx:step). An action without a kind (a "reuse") only
-- records its step. On a failure the error says which action failed (err.action = its
-- description) and the actions after it are not run: a second run re-reads, re-plans and
-- resumes.
function M.apply(ctx, actions, handlers, state)
  for _, a in ipairs(actions) do
    if not a.kind then
      ctx:step(a.step, a.done, step_fields(a))
    else
      local h = handlers[a.kind]
      if not h then error("azcmk.playbook.plan: no handler for action kind " .. tostring(a.kind), 2) end
      local fields, err = h(ctx, a, state)
      if not fields then
        if type(err) == "table" and err.action == nil then err.action = a.description end
        return nil, err
      end
      if fields ~= M.RECORDED then
        local f = step_fields(a, type(fields) == "table" and fields or nil)
        local done = f.action or a.done
        f.action = nil
        ctx:step(a.step, done, f)
      end
    end
  end
  return true
end

--- The result of a dry run: { dry_run = true, changed = false, changes = (how many actions
-- would write), plan, steps = {}, warnings } plus the verb's own fields (extra).
function M.dry_result(ctx, actions, extra)
  local r = { dry_run = true, changed = false, changes = M.changes(actions), plan = M.view(actions),
    steps = {}, warnings = ctx.warnings }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

return M
