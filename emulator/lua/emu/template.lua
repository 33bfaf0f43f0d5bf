--- emu.template: a small ARM template evaluator — what the CMK templates use.
--   t = template.new(tmpl, params, ctx)   validates parameters (InvalidTemplate errors as
--                                           {code=, message=}); ctx: {sub, rg, rg_location,
--                                           tenant_id, deployment, lookup = fn(id) -> resource|nil}
--   t:eval(value)                          evaluates "[...]" expressions in any JSON value
--                                           (object keys too); '[[' escapes a literal '['
-- Functions: parameters, variables, resourceGroup, subscription, resourceId (with optional
-- subscription id and resource group), reference (the referenced resource's properties; 'Full'
-- gives the whole resource), concat, uniqueString, toLower, toUpper, string, format, if (only
-- the branch taken is evaluated), equals, not, empty, length, json, null, int, bool,
-- copyIndex ([loop name,] [offset]) inside resource and property copy loops (t.copy_at).
-- Function names are case-insensitive (the docs write resourceID). Errors raise
-- {template_error = {code=, message=}} tables (see template.error_of).
local json = require("emu.json")

local M = {}

local Template = {}
Template.__index = Template

local function terr(msg, code)
  error({ template_error = { code = code or "InvalidTemplate", message = msg } }, 0)
end

--- The {code, message} of a template error raised by this module, or nil.
function M.error_of(e)
  return type(e) == "table" and e.template_error or nil
end

local function ci_get(t, name)
  if type(t) ~= "table" then return nil end
  if t[name] ~= nil then return t[name] end
  local l = name:lower()
  for k, v in pairs(t) do
    if type(k) == "string" and k:lower() == l then return v end
  end
  return nil
end
M.ci_get = ci_get

-- ---------------------------------------------------------------- tokenizer / parser

local function tokenize(s, expr)
  local toks, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == "'" then
      local buf, j = {}, i + 1
      while true do
        if j > n then terr("The template language expression '" .. expr .. "' is not valid: the string " .. -- synthetic
          "literal is not terminated. Please see https://aka.ms/arm-functions for usage details.") end
        local d = s:sub(j, j)
        if d == "'" then
          if s:sub(j + 1, j + 1) == "'" then buf[#buf + 1] = "'" j = j + 2
          else j = j + 1 break end
        else buf[#buf + 1] = d j = j + 1 end
      end
      toks[#toks + 1] = { t = "str", v = table.concat(buf) }
      i = j
    elseif c:match("[%a_]") then
      local w = s:match("^[%w_%$]+", i)
      toks[#toks + 1] = { t = "id", v = w }
      i = i + #w
    elseif c:match("[%d%-]") then
      local num = s:match("^%-?%d+%.?%d*", i)
      -- synthetic (the text below)
      if not num or num == "-" then terr("The template language expression '" .. expr .. "' is not valid. " ..
        "Please see https://aka.ms/arm-functions for usage details.") end
      toks[#toks + 1] = { t = "num", v = tonumber(num) }
      i = i + #num
    elseif c:match("[%(%),%.%[%]]") then
      toks[#toks + 1] = { t = c }
      i = i + 1
    else
      terr("The template language expression '" .. expr .. "' is not valid: the character '" .. c .. -- synthetic
        "' is not expected. Please see https://aka.ms/arm-functions for usage details.")
    end
  end
  return toks
end

local function parse(s)
  local toks = tokenize(s, s)
  local pos = 1
  local function peek() return toks[pos] end
  local function take(tt)
    local k = toks[pos]
    if not k or (tt and k.t ~= tt) then
      -- synthetic (the text below)
      terr("The template language expression '" .. s .. "' is not valid: expected '" .. (tt or "a value") ..
        "'. Please see https://aka.ms/arm-functions for usage details.")
    end
    pos = pos + 1
    return k
  end
  local expr
  local function primary()
    local k = take()
    local node
    if k.t == "str" then node = { k = "lit", v = k.v }
    elseif k.t == "num" then node = { k = "lit", v = k.v }
    elseif k.t == "id" then
      local lw = k.v:lower()
      if lw == "true" or lw == "false" then
        node = { k = "lit", v = lw == "true" }
      else
        take("(")
        local args = {}
        if peek() and peek().t ~= ")" then
          repeat
            args[#args + 1] = expr()
            local nx = peek()
            if nx and nx.t == "," then pos = pos + 1 else break end
          until false
        end
        take(")")
        node = { k = "call", name = k.v, args = args }
      end
    else
      terr("The template language expression '" .. s .. "' is not valid. Please see " .. -- synthetic
        "https://aka.ms/arm-functions for usage details.")
    end
    -- property access and indexing
    while peek() and (peek().t == "." or peek().t == "[") do
      if take().t == "." then
        node = { k = "prop", obj = node, name = take("id").v }
      else
        local ix = expr()
        take("]")
        node = { k = "index", obj = node, ix = ix }
      end
    end
    return node
  end
  expr = primary
  local root = expr()
  if pos <= #toks then
    terr("The template language expression '" .. s .. "' is not valid: unexpected text after the " .. -- synthetic
      "expression. Please see https://aka.ms/arm-functions for usage details.")
  end
  return root
end

-- ---------------------------------------------------------------- functions

-- A placeholder returned by reference() while dependencies are collected.
local PENDING = setmetatable({}, { __name = "template.pending" })

local function str(v, fname)
  if v == PENDING then return "" end
  if type(v) == "string" then return v end
  if type(v) == "number" then return (v == math.floor(v)) and string.format("%d", v) or tostring(v) end
  if type(v) == "boolean" then return v and "True" or "False" end
  if type(v) == "table" then return json.encode(v) end
  terr("The template function '" .. fname .. "' expects string arguments. Please see " .. -- synthetic
    "https://aka.ms/arm-functions for usage details.")
end

local B32 = "abcdefghijklmnopqrstuvwxyz234567"

--- uniqueString: 13 base-32 characters of a hash of the arguments (deterministic; not
-- Azure's exact MurmurHash64, but stable and the same shape).
local function unique_string(args)
  local h = ngx.md5(table.concat(args, "-"))
  local out = {}
  for i = 1, 13 do
    local byte = tonumber(h:sub(i * 2 - 1, i * 2), 16)
    local x = byte % 32 + 1
    out[i] = B32:sub(x, x)
  end
  return table.concat(out)
end

function Template:resource_id(args)
  local a = {}
  for i, v in ipairs(args) do a[i] = str(v, "resourceId") end
  local sub, rg = self.ctx.sub, self.ctx.rg
  local ti
  for i = 1, math.min(3, #a) do
    if a[i]:find("/", 1, true) then ti = i break end
  end
  if not ti then
    terr("Unable to evaluate template language function 'resourceId': the type is missing or invalid. " .. -- synthetic
      "Please see https://aka.ms/arm-resource-functions/#resourceid for usage details.")
  end
  if ti == 2 then rg = a[1] elseif ti == 3 then sub, rg = a[1], a[2] end
  local typ = a[ti]
  local ns, rest = typ:match("^([^/]+)/(.+)$")
  local segs = {}
  for s in rest:gmatch("[^/]+") do segs[#segs + 1] = s end
  local names = {}
  for i = ti + 1, #a do
    for s in a[i]:gmatch("[^/]+") do names[#names + 1] = s end
  end
  if #names ~= #segs then
    terr("Unable to evaluate template language function 'resourceId': function requires exactly one " .. -- synthetic
      "multi-segmented argument which must be resource type including resource provider namespace. Current " ..
      "function arguments '" .. table.concat(a, ",") .. "'. Please see " ..
      "https://aka.ms/arm-resource-functions/#resourceid for usage details.")
  end
  local out = "/subscriptions/" .. sub .. "/resourceGroups/" .. rg .. "/providers/" .. ns
  for i, s in ipairs(segs) do out = out .. "/" .. s .. "/" .. names[i] end
  return out
end

local FUNCS = {}

FUNCS.parameters = function(self, args)
  local name = str(args[1], "parameters")
  local p = self.params[name:lower()]
  if p == nil then
    terr("Unable to evaluate template language function 'parameters': the template parameter '" .. name .. -- synthetic
      "' is not found. Please see https://aka.ms/arm-create-parameter-file for usage details.")
  end
  return json.copy(p)
end

FUNCS.variables = function(self, args)
  local name = str(args[1], "variables")
  local key = name:lower()
  if self.var_values[key] == nil then
    local raw
    for k, v in pairs(self.variables) do if k:lower() == key then raw = v end end
    if raw == nil then
      terr("Unable to evaluate template language function 'variables': the template variable '" .. name .. -- synthetic
        "' is not found. Please see https://aka.ms/arm-functions-deployment#variables for usage details.")
    end
    if self.var_busy[key] then terr("The template variable '" .. name .. "' refers to itself.") end -- synthetic
    self.var_busy[key] = true
    self.var_values[key] = self:eval(raw)
    self.var_busy[key] = nil
  end
  return json.copy(self.var_values[key])
end

FUNCS.resourcegroup = function(self)
  local c = self.ctx
  return { id = "/subscriptions/" .. c.sub .. "/resourceGroups/" .. c.rg, name = c.rg, type =
    "Microsoft.Resources/resourceGroups", location = c.rg_location, properties = { provisioningState = "Succeeded" } }
end

FUNCS.subscription = function(self)
  local c = self.ctx
  return { id = "/subscriptions/" .. c.sub, subscriptionId = c.sub, tenantId = c.tenant_id,
    displayName = c.subscription_name }
end

FUNCS.resourceid = function(self, args) return self:resource_id(args) end

FUNCS.reference = function(self, args)
  local target = str(args[1], "reference")
  local full = args[3] ~= nil and str(args[3], "reference"):lower() == "full"
  local id = target
  if not target:match("^/subscriptions/") then
    -- a resource of this template by name
    local hit = self.by_name and self.by_name[target:lower()]
    if hit then id = hit else
      -- synthetic (the text below)
      terr("The template reference '" .. target .. "' is not valid: could not find template resource or " ..
        "resource copy with this name. Please see https://aka.ms/arm-function-reference for usage details.")
    end
  end
  if self.collect then
    self.refs[#self.refs + 1] = id
    return PENDING
  end
  local res = self.ctx.lookup(id)
  if not res then
    terr("The Resource '" .. id .. "' was not found. Please see https://aka.ms/arm-function-reference " .. -- synthetic
      "for usage details.", "ResourceNotFound")
  end
  if full then return json.copy(res) end
  return json.copy(res.properties or {})
end

FUNCS.concat = function(_, args)
  if type(args[1]) == "table" and args[1] ~= PENDING then
    local out = json.array({})
    for _, a in ipairs(args) do
      if type(a) == "table" then for _, x in ipairs(a) do out[#out + 1] = x end end
    end
    return out
  end
  local parts = {}
  for i, a in ipairs(args) do parts[i] = str(a, "concat") end
  return table.concat(parts)
end

FUNCS.uniquestring = function(_, args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = str(a, "uniqueString") end
  return unique_string(parts)
end

FUNCS.tolower = function(_, args) return str(args[1], "toLower"):lower() end
FUNCS.toupper = function(_, args) return str(args[1], "toUpper"):upper() end
FUNCS.string = function(_, args) return str(args[1], "string") end
FUNCS.format = function(_, args)
  local f = str(args[1], "format")
  return (f:gsub("{(%d+)}", function(d)
    local v = args[tonumber(d) + 2]
    return v ~= nil and str(v, "format") or ""
  end))
end
FUNCS.deployment = function(self)
  return { name = self.ctx.deployment, properties = { mode = "Incremental" } }
end
FUNCS.length = function(_, args)
  local v = args[1]
  if v == PENDING then return 0 end
  if type(v) == "string" then return #v end
  if type(v) == "table" and v ~= json.null then
    if json.is_array(v) then return #v end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n
  end
  terr("The template function 'length' expects its parameter to be an array, an object or a string. " .. -- synthetic
    "Please see https://aka.ms/arm-functions for usage details.")
end
FUNCS.json = function(_, args)
  local text = str(args[1], "json")
  if text:match("^%s*null%s*$") then return json.null end
  local v = json.decode(text)
  if v == nil then
    -- synthetic (the text below)
    terr("The template function 'json' expects its parameter to be a valid JSON string. Please see " ..
      "https://aka.ms/arm-functions for usage details.")
  end
  return v
end
FUNCS.null = function() return json.null end
FUNCS.equals = function(_, args)
  local a, b = args[1], args[2]
  if type(a) == "table" and type(b) == "table" then return json.encode(a) == json.encode(b) end
  return a == b
end
FUNCS["not"] = function(_, args) return args[1] ~= true end
FUNCS.empty = function(_, args)
  local v = args[1]
  if v == nil or v == json.null or v == "" then return true end
  return type(v) == "table" and next(v) == nil
end
FUNCS.int = function(_, args) return math.floor(tonumber(str(args[1], "int")) or 0) end
FUNCS.bool = function(_, args)
  local v = args[1]
  if type(v) == "boolean" then return v end
  return str(v, "bool"):lower() == "true" or v == 1
end
FUNCS.copyindex = function(self, args)
  local loop, offset = nil, 0
  if type(args[1]) == "string" then loop, offset = args[1]:lower(), tonumber(args[2]) or 0
  elseif args[1] ~= nil then offset = tonumber(args[1]) or 0 end
  local at = self.copy_at or {}
  local i = loop and at[loop] or at[""]
  if i == nil then
    -- synthetic (the text below)
    terr("The template function 'copyIndex' is not expected at this location" .. (loop and " for the copy loop '" ..
      loop .. "'" or "") .. ". Please see https://aka.ms/arm-resource-iteration for usage details.")
  end
  return i + offset
end

-- if(condition, a, b): only the branch taken is evaluated (ARM short-circuits it).
local function call_if(self, node)
  if #node.args ~= 3 then
    terr("The template function 'if' expects exactly three parameters. Please see " .. -- synthetic
      "https://aka.ms/arm-functions for usage details.")
  end
  local cond = self:run(node.args[1])
  if cond == PENDING then cond = true end
  if type(cond) ~= "boolean" then
    terr("The template function 'if' expects its first parameter to be a boolean. Please see " .. -- synthetic
      "https://aka.ms/arm-functions for usage details.")
  end
  return self:run(node.args[cond and 2 or 3])
end

--- Runs fn with copyIndex() answering `index` for `loop` (and for the innermost copy, "").
function Template:with_copy(loop, index, fn, ...)
  local prev = self.copy_at
  local at = {}
  for k, v in pairs(prev or {}) do at[k] = v end
  at[""], at[loop:lower()] = index, index
  self.copy_at = at
  local ok, v = pcall(fn, ...)
  self.copy_at = prev
  if not ok then error(v, 0) end
  return v
end

function Template:call(node)
  if node.name:lower() == "if" then return call_if(self, node) end
  local fn = FUNCS[node.name:lower()]
  if not fn then
    -- synthetic (the text below)
    terr("The template function '" .. node.name .. "' is not valid. Please see https://aka.ms/arm-functions " ..
      "for usage details.")
  end
  local args = {}
  for i, a in ipairs(node.args) do args[i] = self:run(a) end
  return fn(self, args)
end

function Template:run(node)
  if node.k == "lit" then return node.v
  elseif node.k == "call" then return self:call(node)
  elseif node.k == "prop" then
    local o = self:run(node.obj)
    if o == PENDING then return PENDING end
    local v = ci_get(o, node.name)
    if v == nil then
      -- synthetic (the text below)
      terr("The language expression property '" .. node.name .. "' doesn't exist, available properties are '" ..
        (type(o) == "table" and (function()
          local ks = {}
          for k in pairs(o) do ks[#ks + 1] = tostring(k) end
          table.sort(ks)
          return table.concat(ks, ", ")
        end)() or "") .. "'.")
    end
    return v
  elseif node.k == "index" then
    local o, ix = self:run(node.obj), self:run(node.ix)
    if o == PENDING then return PENDING end
    if type(o) ~= "table" then terr("The language expression cannot be indexed.") end -- synthetic
    local v = type(ix) == "number" and o[ix + 1] or ci_get(o, tostring(ix))
    if v == nil then terr("The language expression index '" .. tostring(ix) .. "' is out of range.") end -- synthetic
    return v
  end
  terr("The template language expression is not valid.") -- synthetic
end

--- Evaluates one string: an expression when it is "[...]" (not "[["), else itself.
function Template:eval_string(s)
  if s:sub(1, 2) == "[[" then return s:sub(2) end
  if s:sub(1, 1) ~= "[" or s:sub(-1) ~= "]" then return s end
  local inner = s:sub(2, -2)
  local v = self:run(parse(inner))
  if v == PENDING then return "" end
  return v
end

--- Evaluates expressions anywhere in a JSON value (object keys too).
function Template:eval(v)
  if type(v) == "string" then return self:eval_string(v) end
  if type(v) ~= "table" or v == json.null then return v end
  local out = {}
  if json.is_array(v) then
    for i, x in ipairs(v) do out[i] = self:eval(x) end
    return json.array(out)
  end
  for k, x in pairs(v) do
    if type(k) == "string" and k:lower() == "copy" and json.is_array(x) then
      self:property_copies(x, out)
    else
      local key = type(k) == "string" and self:eval_string(k) or k
      if type(key) ~= "string" then key = str(key, "key") end
      out[key] = self:eval(x)
    end
  end
  return out
end

--- A property copy loop: "copy": [{"name": "disks", "count": 2, "input": {...}}] sets
-- out.disks to the inputs evaluated with copyIndex('disks') = 0, 1, ...
function Template:property_copies(loops, out)
  for _, c in ipairs(loops) do
    local name, count = self:eval(ci_get(c, "name")), self:eval(ci_get(c, "count"))
    local input = ci_get(c, "input")
    if type(name) ~= "string" or type(count) ~= "number" or count < 0 or count ~= math.floor(count) or input == nil then
      -- synthetic (the text below)
      terr("The template 'copy' property is not valid: it needs 'name', a whole non-negative 'count' and " ..
        "'input'. Please see https://aka.ms/arm-property-iteration for usage details.")
    end
    local arr = json.array({})
    for i = 0, count - 1 do arr[#arr + 1] = self:with_copy(name, i, self.eval, self, input) end
    out[name] = arr
  end
end

--- Ids referenced by reference() anywhere in v (without resolving them).
function Template:references(v)
  self.collect, self.refs = true, {}
  local ok, err = pcall(self.eval, self, v)
  self.collect = false
  if not ok then error(err, 0) end
  return self.refs
end

-- ---------------------------------------------------------------- parameters

local TYPES = { string = "string", securestring = "string", int = "number", bool = "boolean",
  object = "table", secureobject = "table", array = "table" }

local function jtype(v)
  if type(v) == "string" then return "String" elseif type(v) == "number" then
    return v == math.floor(v) and "Integer" or "Float"
  elseif type(v) == "boolean" then return "Boolean"
  elseif type(v) == "table" then return json.is_array(v) and "Array" or "Object" end
  return "Null"
end

--- A template context. tmpl: the template object; params: the deployment's {name = {value = v}}.
function M.new(tmpl, params, ctx)
  if type(tmpl) ~= "table" or json.is_array(tmpl) then
    terr("The template is not valid: it must be a JSON object.") -- synthetic
  end
  local self = setmetatable({ ctx = ctx, params = {}, variables = {}, var_values = {}, var_busy = {} }, Template)
  local decl = ci_get(tmpl, "parameters") or {}
  local vars = ci_get(tmpl, "variables") or {}
  -- synthetic (the text below)
  if type(decl) ~= "table" or type(vars) ~= "table" then terr("The template parameters or variables are not valid.") end
  self.variables = vars
  params = params or {}
  if type(params) ~= "table" or json.is_array(params) then
    -- synthetic (the text below)
    terr("The deployment parameters are not valid: they must be a JSON object.", "InvalidDeploymentParameters")
  end
  local names = {}
  for k in pairs(decl) do names[#names + 1] = k end
  table.sort(names)
  -- parameters given but not declared
  local extra = {}
  for k in pairs(params) do
    local found = false
    for _, d in ipairs(names) do if d:lower() == k:lower() then found = true end end
    if not found then extra[#extra + 1] = k end
  end
  if #extra > 0 then
    table.sort(extra)
    -- synthetic (the text below)
    terr("Deployment template validation failed: 'The template parameters '" .. table.concat(extra, ", ") ..
      "' in the parameters file are not valid; they are not present in the original template and can therefore " ..
      "not be provided at deployment time. The only supported parameters for this template are '" ..
      table.concat(names, ", ") .. "'. Please see https://aka.ms/arm-pass-parameter-values for usage details.'.")
  end
  for _, name in ipairs(names) do
    local d = decl[name]
    local given = ci_get(params, name)
    local v
    if given ~= nil then
      if type(given) ~= "table" or json.is_array(given) or ci_get(given, "value") == nil then
        if type(given) == "table" and ci_get(given, "reference") ~= nil then
          -- synthetic (the text below)
          terr("Key Vault parameter references are not supported by the emulator (parameter '" .. name .. "').")
        end
        -- synthetic (the text below)
        terr("Deployment template validation failed: 'The value for the template parameter '" .. name .. "' is " ..
          "not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.'.")
      end
      v = ci_get(given, "value")
      -- a null value is "not given": the default applies when there is one (else null stays)
      local dv = type(d) == "table" and ci_get(d, "defaultValue")
      if v == json.null and dv ~= nil then v = { __default = dv } end
    else
      local dv = type(d) == "table" and ci_get(d, "defaultValue")
      if dv == nil then
        -- synthetic (the text below)
        terr("Deployment template validation failed: 'The value for the template parameter '" .. name .. "' at " ..
          "line '1' and column '1' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage " ..
          "details.'.")
      end
      v = { __default = dv }
    end
    self.params[name:lower()] = v
    self.param_types = self.param_types or {}
    self.param_types[name:lower()] = type(d) == "table" and ci_get(d, "type") or "String"
  end
  -- defaults may use expressions (parameters of the same template, resourceGroup() ...)
  for _, name in ipairs(names) do
    local key = name:lower()
    local v = self.params[key]
    if type(v) == "table" and v.__default ~= nil then
      self.params[key] = self:eval(v.__default)
      v = self.params[key]
    end
    local want = tostring(self.param_types[key]):lower()
    local lua_t = TYPES[want]
    if lua_t and type(v) ~= lua_t and v ~= json.null then
      -- synthetic (the text below)
      terr("Deployment template validation failed: 'Template parameter JToken type is not valid. Expected '" ..
        tostring(self.param_types[key]) .. "'. Actual '" .. jtype(v) .. "'. Please see " ..
        "https://aka.ms/arm-create-parameter-file for usage details.'.")
    end
    local allowed = type(decl[name]) == "table" and ci_get(decl[name], "allowedValues")
    if type(allowed) == "table" then
      local ok = false
      for _, a in ipairs(allowed) do if a == v then ok = true end end
      if not ok then
        -- synthetic (the text below)
        terr("Deployment template validation failed: 'The provided value '" .. str(v, "allowedValues") .. "' for " ..
          "the template parameter '" .. name .. "' is not valid. Please see https://aka.ms/arm-deploy for usage " ..
          "details.'.")
      end
    end
  end
  return self
end

--- The parameters as the deployment shows them: {name = {type = "String", value = v}}.
function Template:shown_parameters(decl_params)
  local out = {}
  for name in pairs(decl_params or {}) do
    local key = name:lower()
    out[name] = { type = self.param_types[key], value = self.params[key] }
  end
  return out
end

return M
