--- emu.services.keyvault_policy: key rotation policies on the Key Vault data plane.
--   GET /keys/{name}/rotationpolicy   (getrotationpolicy) -> the policy, or the default one
--   PUT /keys/{name}/rotationpolicy   (setrotationpolicy) -> validated, stored, echoed
-- Rules (Key Vault's documented rotation-policy rules): at most two lifetime actions, one Rotate and one Notify;
-- triggers timeAfterCreate (Rotate only) or timeBeforeExpiry; ISO-8601 durations;
-- attributes.expiryTime >= P28D; rotation >= 7 days after creation and >= 7 days before
-- expiry; action type compared case-insensitively. Automatic rotation by the simulated clock
-- happens lazily in emu.keyvault.store.auto_rotate. Error texts are synthetic (BadParameter).
local json = require("emu.json")
local store = require("emu.keyvault.store")

local M = {}

local DAY = store.DAY

local function default_policy(id)
  return { id = id, lifetimeActions = json.array({ { trigger = { timeBeforeExpiry = "P30D" },
    action = { type = "Notify" } } }), attributes = {} }
end

--- Validates a KeyRotationPolicy body; returns the normalised policy (without id/timestamps).
-- bad(msg) raises.
function M.validate(b, bad)
  local out = { lifetimeActions = json.array({}), attributes = {} }
  local attrs = b.attributes
  if attrs ~= nil and attrs ~= json.null then
    -- synthetic (the text below)
    if type(attrs) ~= "table" or json.is_array(attrs) then bad("Property 'attributes' must be an object.") end
    if attrs.expiryTime ~= nil and attrs.expiryTime ~= json.null then
      local e = store.duration(attrs.expiryTime)
      if not e then
        -- synthetic (the text below)
        bad("The value '" .. tostring(attrs.expiryTime) .. "' of 'attributes.expiryTime' is not a valid ISO 8601 " ..
          "duration.")
      end
      if e < 28 * DAY then
        -- synthetic (the text below)
        bad("The expiry time of the key rotation policy ('" .. attrs.expiryTime .. "') must be at least 28 days " ..
          "(P28D).")
      end
      out.attributes.expiryTime = attrs.expiryTime
      out._expiry = e
    end
  end
  local las = b.lifetimeActions
  if las == nil or las == json.null then las = {} end
  if type(las) ~= "table" or (not json.is_array(las) and next(las) ~= nil) then
    bad("Property 'lifetimeActions' must be an array.") -- synthetic
  end
  if #las > 2 then
    -- synthetic (the text below)
    bad("A key rotation policy can have at most 2 lifetime actions (one Rotate and one Notify); found " .. #las .. ".")
  end
  local seen = {}
  for i, la in ipairs(las) do
    local at = "lifetimeActions[" .. (i - 1) .. "]"
    -- synthetic (the text below)
    if type(la) ~= "table" or json.is_array(la) then bad("Property '" .. at .. "' must be an object.") end
    local act, trig = la.action, la.trigger
    if type(act) ~= "table" or type(act.type) ~= "string" then
      bad("Property '" .. at .. ".action.type' is required.") -- synthetic
    end
    local typ = ({ rotate = "Rotate", notify = "Notify" })[act.type:lower()]
    if not typ then
      -- synthetic (the text below)
      bad("Invalid action type '" .. act.type .. "' in " .. at .. ". Allowed values are 'Rotate' and 'Notify'.")
    end
    -- synthetic (the text below)
    if seen[typ] then bad("A key rotation policy can have only one " .. typ .. " lifetime action.") end
    seen[typ] = true
    -- synthetic (the text below)
    if type(trig) ~= "table" or json.is_array(trig) then bad("Property '" .. at .. ".trigger' is required.") end
    local tac = trig.timeAfterCreate ~= json.null and trig.timeAfterCreate or nil
    local tbe = trig.timeBeforeExpiry ~= json.null and trig.timeBeforeExpiry or nil
    if (tac == nil) == (tbe == nil) then
      bad("The trigger of " .. at .. " must set exactly one of 'timeAfterCreate' and 'timeBeforeExpiry'.") -- synthetic
    end
    local t = {}
    if tac ~= nil then
      -- synthetic (the text below)
      if typ == "Notify" then bad("A Notify lifetime action must use the 'timeBeforeExpiry' trigger.") end
      local s = store.duration(tac)
      -- synthetic (the text below)
      if not s then bad("The value '" .. tostring(tac) .. "' of '" .. at .. ".trigger.timeAfterCreate' is not a " ..
        "valid ISO 8601 duration.") end
      if s < 7 * DAY then
        -- synthetic (the text below)
        bad("The rotation time of " .. at .. " ('" .. tac .. "') must be at least 7 days after creation (P7D).")
      end
      if out._expiry and s > out._expiry - 7 * DAY then
        -- synthetic (the text below)
        bad("The rotation time of " .. at .. " ('" .. tac .. "') must be at least 7 days before the expiry time ('" ..
          out.attributes.expiryTime .. "').")
      end
      t.timeAfterCreate = tac
    else
      local s = store.duration(tbe)
      -- synthetic (the text below)
      if not s then bad("The value '" .. tostring(tbe) .. "' of '" .. at .. ".trigger.timeBeforeExpiry' is not a " ..
        "valid ISO 8601 duration.") end
      if s < 7 * DAY then
        bad("The time before expiry of " .. at .. " ('" .. tbe .. "') must be at least 7 days (P7D).") -- synthetic
      end
      if typ == "Rotate" and not out._expiry then
        bad("A Rotate lifetime action with 'timeBeforeExpiry' needs 'attributes.expiryTime'.") -- synthetic
      end
      if out._expiry and s > out._expiry - 7 * DAY then
        -- synthetic (the text below)
        bad("The time before expiry of " .. at .. " ('" .. tbe .. "') must leave at least 7 days after creation " ..
          "within the expiry time ('" .. out.attributes.expiryTime .. "').")
      end
      t.timeBeforeExpiry = tbe
    end
    out.lifetimeActions[#out.lifetimeActions + 1] = { trigger = t, action = { type = typ } }
  end
  out._expiry = nil
  return out
end

function M.register(kv)
  local function policy_id(req, vault, k)
    return kv.base(req, vault) .. "/keys/" .. k.name .. "/rotationpolicy"
  end

  kv.route("GET", "/keys/{name}/rotationpolicy", "getrotationpolicy", function(req, vault)
    local k = kv.live_key(req, vault, req.params.name)
    if not k.policy then return 200, default_policy(policy_id(req, vault, k)) end
    local p = json.copy(k.policy)
    p.id = policy_id(req, vault, k)
    return 200, p
  end)

  kv.route("PUT", "/keys/{name}/rotationpolicy", "setrotationpolicy", function(req, vault)
    local name = req.params.name
    kv.live_key(req, vault, name)
    local b = kv.body(req, vault)
    local pol = M.validate(b, function(msg) kv.bad(msg, vault) end) -- synthetic
    local now = store.now()
    local k = store.update_key(vault.name, name, function(k)
      if not k or k.deleted then return k end
      local created = k.policy and k.policy.attributes and k.policy.attributes.created or now
      pol.attributes.created, pol.attributes.updated = created, now
      k.policy = pol
      return k
    end)
    if not k or k.deleted then kv.key_not_found(vault, name) end
    local p = json.copy(k.policy)
    p.id = policy_id(req, vault, k)
    return 200, p
  end)
end

return M
