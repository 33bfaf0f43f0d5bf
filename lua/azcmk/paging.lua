--- nextLink paging as Lua iterators.
--   for item, err in paging.items(p, req) do
--     if not item then ... err ... break end
--     ...
--   end
-- On failure the iterator yields `false, err` once and then ends (a nil first value would
-- end a generic for before the body could see the error). nextLink must stay on the host of
-- the first request; a repeated nextLink ends the loop.
local errors = require("azcmk.errors")
local url = require("azcmk.url")

local M = {}

M.MAX_PAGES = 10000

local function check_next(link, orig)
  local p = url.parse(link)
  if not p or p.scheme ~= orig.scheme or p.host ~= orig.host or (p.port or 443) ~= (orig.port or 443) then
    return nil, errors.new("input", { code = "UntrustedNextLink",
      message = "nextLink points to another host than the first page; refusing to follow it" })
  end
  return true
end

--- Iterator over pages: yields res (with .json) per page, or false, err.
-- req: a pipeline request (method GET, url, query, api_version, ...). opts.max_pages.
function M.pages(p, req, opts)
  opts = opts or {}
  local max = opts.max_pages or M.MAX_PAGES
  local next_req = req
  local seen = {}
  local n = 0
  local orig
  local done = false
  local pending
  return function()
    if pending then local e = pending; pending = nil; done = true; return false, e end
    if done or not next_req then return nil end
    if n >= max then done = true; return nil end
    local res, err = p:send(next_req)
    n = n + 1
    if not res then done = true; return false, err end
    orig = orig or url.parse(res.url or next_req.url)
    local link = type(res.json) == "table" and (res.json.nextLink or res.json["@odata.nextLink"]) or nil
    if type(link) == "string" and link ~= "" then
      local ok, lerr = check_next(link, orig)
      if not ok then
        next_req = nil
        pending = lerr   -- deliver this page, then the error on the next call
        return res
      end
      if seen[link] then next_req = nil
      else
        seen[link] = true
        -- nextLink carries its own query (api-version, skip tokens): send it as is
        next_req = { method = "GET", url = link, headers = req.headers, scope = req.scope, auth = req.auth,
                     api_version = (url.query_get((url.parse(link) or {}).query or "", "api-version") == nil)
                                     and req.api_version or nil }
      end
    else
      next_req = nil
    end
    return res
  end
end

--- Iterator over items (the `value` arrays of every page): yields item, or false, err.
function M.items(p, req, opts)
  local pages = M.pages(p, req, opts)
  local list, i = nil, 0
  return function()
    while true do
      if list and i < #list then
        i = i + 1
        return list[i]
      end
      local res, err = pages()
      if res == nil then return nil end
      if res == false then return false, err end
      list = type(res.json) == "table" and type(res.json.value) == "table" and res.json.value or {}
      i = 0
    end
  end
end

return M
