--- emu.router: routes by host kind + method + path pattern.
-- Patterns are slash-separated segments: literals, `{name}` (exactly one segment) and
-- `{*name}` (zero or more segments, captured joined by "/", without leading slash).
-- Literal segments compare case-insensitively when the route says `ci = true`
-- (the default for kind "arm": ARM paths ignore case). Routes without `{*...}` are tried
-- before routes with one; otherwise in registration order.
local M = {}

local routes = {}
local by_len, greedy_routes = {}, {}   -- the same routes: exact ones by segment count, greedy ones

local function split(path)
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = s end
  return segs
end

local function compile(pattern, ci)
  local segs = {}
  local greedy = false
  for i, s in ipairs(split(pattern)) do
    local name = s:match("^{%*([%w_]+)}$")
    if name then
      segs[i] = { star = name }
      greedy = true
    else
      name = s:match("^{([%w_]+)}$")
      if name then segs[i] = { param = name }
      else segs[i] = { lit = ci and s:lower() or s } end
    end
  end
  return segs, greedy
end

--- Registers a route. spec fields:
--   kind     host kind ("arm", "login", "vault", "acr", "msi", "any") or a list of kinds
--   method   "GET" | {"GET","HEAD"} | "*"
--   path     pattern, e.g. "/subscriptions/{sub}/resourcegroups/{rg}"
--   handler  function(req) -> status, body, headers
--   ci       case-insensitive literals (default: true for "arm")
--   any other field is kept on the route for the wrappers (e.g. emu.arm's type/action).
function M.add(spec)
  assert(type(spec.path) == "string" and type(spec.handler) == "function", "route needs path and handler")
  local kinds = spec.kind or "arm"
  if type(kinds) == "string" then kinds = { kinds } end
  local methods = spec.method or "GET"
  if type(methods) == "string" then methods = { methods } end
  local route = {}
  for k, v in pairs(spec) do route[k] = v end
  route.kinds = {}
  for _, k in ipairs(kinds) do route.kinds[k] = true end
  route.methods = {}
  for _, m in ipairs(methods) do route.methods[m:upper()] = true end
  local ci = spec.ci
  if ci == nil then ci = route.kinds.arm or false end
  route.segs, route.greedy = compile(spec.path, ci)
  route.ci = ci
  routes[#routes + 1] = route
  -- Stable order: exact-shape routes first.
  local exact, greedy = {}, {}
  for _, r in ipairs(routes) do
    if r.greedy then greedy[#greedy + 1] = r else exact[#exact + 1] = r end
  end
  routes = {}
  for _, r in ipairs(exact) do routes[#routes + 1] = r end
  for _, r in ipairs(greedy) do routes[#routes + 1] = r end -- (a new table: `exact` must stay exact)
  -- Exact-shape routes can only match paths of their length: index them by it.
  by_len, greedy_routes = {}, greedy
  for _, r in ipairs(exact) do
    local l = by_len[#r.segs] or {}
    l[#l + 1] = r
    by_len[#r.segs] = l
  end
  return route
end

local function match_segs(pat, segs, params, ci)
  local function go(pi, si)
    local p = pat[pi]
    if not p then return si > #segs end
    if p.star then
      -- Longest capture first, backing off until the rest matches.
      for j = #segs, si - 1, -1 do
        if go(pi + 1, j + 1) then
          params[p.star] = table.concat(segs, "/", si, j)
          return true
        end
      end
      return false
    end
    local s = segs[si]
    if not s then return false end
    if p.param then
      if go(pi + 1, si + 1) then params[p.param] = s return true end
      return false
    end
    if p.lit ~= (ci and s:lower() or s) then return false end
    return go(pi + 1, si + 1)
  end
  return go(1, 1)
end

-- An exact-shape route against segs (lsegs: the same, lower case): params or nil.
local function match_exact(pat, segs, lsegs, ci)
  local cmp = ci and lsegs or segs
  for i = 1, #pat do
    local lit = pat[i].lit
    if lit and lit ~= cmp[i] then return nil end
  end
  local params = {}
  for i = 1, #pat do
    local name = pat[i].param
    if name then params[name] = segs[i] end
  end
  return params
end

--- Finds the route for (kind, method, path). Returns route, params; or nil, "method" when the
-- path exists for another method (405), or nil, "path".
function M.match(kind, method, path)
  local segs = split(path)
  local lsegs = split(path:lower())
  local path_hit = false
  for _, r in ipairs(by_len[#segs] or {}) do
    if r.kinds[kind] or r.kinds.any then
      local params = match_exact(r.segs, segs, lsegs, r.ci)
      if params then
        if r.methods[method] or r.methods["*"] then return r, params end
        path_hit = true
      end
    end
  end
  for _, r in ipairs(greedy_routes) do
    if r.kinds[kind] or r.kinds.any then
      local params = {}
      if match_segs(r.segs, segs, params, r.ci) then
        if r.methods[method] or r.methods["*"] then return r, params end
        path_hit = true
      end
    end
  end
  return nil, path_hit and "method" or "path"
end

--- All routes (for docs and debugging).
function M.routes() return routes end

return M
