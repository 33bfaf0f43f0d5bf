--- Content handlers for the nginx the specs start (spec/support/ngx_harness.lua). Runs inside
-- nginx; answers JSON.
--   /fast                   {in_flight, done, worker, b_in, b_done}: touches no Azure
--   /slow                   an ARM GET (resource groups) through the worker's pipeline
--   /arm                    the same; {status, worker, fetches (this worker's token fetches so far),
--                           fetched (during this request)}
--   /transport?url=U&n=N&connect_to=R&env=0&method=M&body=B&timeout_ms=T&pause=S&proxy=P&no_proxy=L
--                           N requests through azcmk.transport.ngx directly (S seconds
--                           apart); the results and the transport's stats
--   /contract (POST {name, fx}) case `name` of the transport contract suite
--                           (support.transport_suite) with azcmk.transport.ngx: its results
--   /tokens?case=stale|wait the shared-dict lock (see M.tokens)
--   /batch?n=N              p:arm_batch of N ARM GETs (azcmk.transport.batch over cosockets)
--   /phase                  which transport the phase-aware one picks here, and what it
--                           picked in init_worker (stored there by the harness's init_worker)
local cjson = require("cjson.safe")

local ngx = rawget(_G, "ngx")

local M = {}

local function say(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local function test_dict() return ngx.shared.azcmk_test end

local function pipeline()
  return assert(require("azcmk.ngx").pipeline({ retry = { max_retries = 0 } }))
end
M.pipeline = pipeline

function M.fast()
  local d = test_dict()
  say({ in_flight = d:get("in_flight") or 0, done = d:get("done") or 0, worker = ngx.worker.id(),
    b_in = d:get("b_in") or 0, b_done = d:get("b_done") or 0 })
end

local function rg_list(p)
  return p:arm("GET", "/subscriptions/" .. p.subscription .. "/resourcegroups",
    { api_version = "2021-04-01" })
end

function M.slow()
  local d = test_dict()
  local p = pipeline()
  d:incr("in_flight", 1, 0)
  local res, err = rg_list(p)
  d:incr("done", 1, 0)
  say({ status = res and res.status, error = err and tostring(err), worker = ngx.worker.id() })
end

function M.arm()
  local p = pipeline()
  local before = p.tokens.fetches
  local res, err = rg_list(p)
  say({ status = res and res.status, error = err and tostring(err), worker = ngx.worker.id(),
    fetches = p.tokens.fetches, fetched = p.tokens.fetches - before, lock = p.tokens.lock_stats })
end

local function err_table(err)
  if not err then return nil end
  return { kind = err.kind, code = err.code, tls = err.tls, phase = err.phase, retryable = err.retryable,
    message = err.message, status = err.status }
end

function M.transport()
  local args = ngx.req.get_uri_args()
  local T = require("azcmk.transport.ngx")
  local opts = { timeout_ms = tonumber(args.timeout_ms) or 10000 }
  if args.connect_to then opts.connect_to = args.connect_to end
  if args.env == "0" then opts.env = {} end
  opts.https_proxy, opts.no_proxy = args.proxy, args.no_proxy
  local t = T.new(opts)
  local out = {}
  for i = 1, tonumber(args.n) or 1 do
    if i > 1 and args.pause then ngx.sleep(tonumber(args.pause)) end
    local res, err = t:request({ method = args.method or "GET", url = args.url, body = args.body })
    out[i] = { status = res and res.status, headers = res and res.headers, body = res and res.body,
      reused = res and res.info and res.info.reused, err = err_table(err) }
  end
  say({ results = out, stats = t.stats })
end

function M.contract()
  ngx.req.read_body()
  local q = cjson.decode(ngx.req.get_body_data() or "")
  say(require("support.transport_suite").run(require("azcmk.transport.ngx"), q.name, q.fx))
end

--- /tokens?case=stale|wait: the cross-worker lock, with "another worker" simulated by a lock
-- entry in the dict. stale: an entry inside its refresh window while the lock is held ->
-- served without a fetch; then, lock released -> refreshed. wait: no entry, lock held; a
-- timer stores the token 0.1 s later -> the waiter returns it without fetching.
function M.tokens()
  local case = ngx.var.arg_case
  local p = pipeline()
  local token_cache = require("azcmk.token_cache")
  local scope = p.cloud.arm_scope
  local key = token_cache.key(p.credential, scope, nil)
  local st = p.tokens.store
  local dict = ngx.shared.azcmk_tokens
  local lk = "lock:tok:" .. key
  local out = {}
  local first = assert(p:token(scope))
  local stats = p.tokens.lock_stats
  local f0 = p.tokens.fetches
  if case == "stale" then
    local e = st:get(key)
    e.refresh_at = ngx.time() - 1
    st:set(key, e)
    dict:set(lk, "another worker", 5)
    local s0 = stats.served_stale
    local tok = assert(p:token(scope))
    out.same_token = tok.token == first.token
    out.fetched_while_locked = p.tokens.fetches - f0
    out.served_stale = stats.served_stale - s0
    dict:delete(lk)
    local tok2 = assert(p:token(scope))
    out.fetched_after_unlock = p.tokens.fetches - f0
    out.fresh_entry = st:get(key).refresh_at > ngx.time()
    out.token_ok = type(tok2.token) == "string"
  elseif case == "wait" then
    local saved = st:get(key)
    st:delete(key)
    dict:set(lk, "another worker", 5)
    ngx.timer.at(0.1, function() st:set(key, saved) end)
    local w0 = stats.waited
    local tok = assert(p:token(scope))
    out.same_token = tok.token == first.token
    out.fetched = p.tokens.fetches - f0
    out.waited = stats.waited - w0
    dict:delete(lk)
  end
  say(out)
end

--- /batch?n=N: p:arm_batch of N resource-group GETs (the pipeline's batch scheduler over the
-- cosocket transport's batch); {statuses, in_flight_max (test dict "batch_peak")}.
-- a pipeline whose cosocket transport counts exchanges started / finished in the test dict
local function counting_pipeline()
  local T = require("azcmk.transport.ngx")
  local inner = T.new({})
  local d = test_dict()
  local w = { max_parallel = 16, name = "counting" }
  function w.request(_, r)
    d:incr("b_in", 1, 0)
    local res, err = inner:request(r)
    d:incr("b_done", 1, 0)
    return res, err
  end
  w.batch = getmetatable(inner).__index.batch
  return assert(require("azcmk.ngx").pipeline({ transport = w, retry = { max_retries = 0 } }, "counting"))
end

function M.batch()
  local p = counting_pipeline()
  local n = tonumber(ngx.var.arg_n) or 10
  local reqs = {}
  for i = 1, n do
    reqs[i] = { method = "GET", path = "/subscriptions/" .. p.subscription .. "/resourcegroups",
      api_version = "2021-04-01" }
  end
  local results, errs = p:arm_batch(reqs, { concurrency = n })
  local statuses = {}
  for i = 1, n do statuses[i] = results[i] and results[i].status or tostring(errs[i]) end
  say({ statuses = statuses })
end

function M.phase()
  local auto = require("azcmk.transport.ngx").auto()
  say({ request = auto:pick().name, init_worker = test_dict():get("init_worker_pick"),
    init_worker_error = test_dict():get("init_worker_error") })
end

--- For init_worker_by_lua: record what the phase-aware transport picks there, and what the
-- cosocket transport answers there (no I/O happens: it refuses before connecting).
function M.record_init_worker()
  local T = require("azcmk.transport.ngx")
  test_dict():set("init_worker_pick", T.auto():pick().name)
  local _, err = T.new():request({ method = "GET", url = "https://management.azure.com/" })
  test_dict():set("init_worker_error", err and err.code)
end

return M
