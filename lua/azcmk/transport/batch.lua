--- The parallel batch as a transport: p:parallel(tasks), p:send_batch(reqs), p:arm_batch(reqs).
-- Each task runs in a coroutine of its own with a pipeline made from p (p:with) whose
-- transport is this module's cooperative one: its request() and sleep() hand control to the
-- scheduler below instead of doing I/O. So every request of a task takes the whole policy
-- chain (tokens or the Key Vault challenge, retries with backoff and Retry-After, logging,
-- structured errors). The scheduler hands each task's request to the real transport as the
-- task makes it and resumes the task as soon as its own answer arrives, when the transport has
-- a stream (submit / collect: the core's curl multi handle); otherwise (light threads on
-- cosockets, scripted transports) it sends the requests of all running tasks as one `batch`
-- and resumes the tasks when it has answered. A task that must wait (a retry's backoff
-- or Retry-After) is parked until its time while the others go on. At most `concurrency`
-- tasks run at once (default 16). Token requests of credentials go through their own
-- (blocking) path: they happen once per scope and are cached for the other tasks.
local clock = require("azcmk.clock")

local M = {}

local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

M.DEFAULT_CONCURRENCY = 16

local TAG = setmetatable({}, { __tostring = function() return "azcmk.transport.batch" end })

--- The cooperative transport (the contract, for code running as a task of M.run).
M.transport = { name = "batch" }

function M.transport.request(_, req) return coroutine.yield(TAG, "request", req) end

function M.transport.sleep(_, s) return coroutine.yield(TAG, "sleep", s) end

function M.transport:batch(reqs)
  local results, errs = {}, {}
  for i, r in ipairs(reqs) do
    local res, err = self:request(r)
    results[i], errs[i] = res or false, err
  end
  return results, errs
end

function M.transport.close() end

-- what reaches the real transport: the contract's request fields only
local function clean(req)
  return { method = req.method, url = req.url, headers = req.headers, body = req.body,
    timeout_ms = req.timeout_ms }
end

local function pack(...) return { n = select("#", ...), ... } end

-- the transports a run is streaming on now
local streaming = setmetatable({}, { __mode = "k" })

--- Run tasks (functions taking a pipeline) with bounded concurrency.
-- opts: concurrency (1-256, default 16), keep (false: what tasks return is dropped - a long
-- run of tasks that deliver their results themselves keeps no memory per task). Returns a
-- list: out[i] = { n = count, values... } (what task i returned). A task that raises makes
-- run raise (after nothing else is resumed). A task may append tasks to `tasks` while the
-- run goes on: they are run too.
function M.run(p, tasks, opts)
  opts = opts or {}
  if type(tasks) ~= "table" then error("azcmk.transport.batch: a list of tasks expected", 2) end
  local conc = math.floor(tonumber(opts.concurrency) or M.DEFAULT_CONCURRENCY)
  if conc < 1 then conc = 1 elseif conc > 256 then conc = 256 end
  local transport = p.transport
  local real_sleep = p.sleep or clock.sleep
  local now = clock.now
  local view = p:with({ transport = M.transport })
  local out = {}
  local keep = opts.keep ~= false
  local active = {}
  local next_i = 1

  -- resume a slot; record its result or what it waits for
  local function step(slot, ...)
    local r = pack(coroutine.resume(slot.co, ...))
    if not r[1] then error(r[2], 0) end
    if coroutine.status(slot.co) == "dead" then
      if keep then out[slot.i] = pack(unpack(r, 2, r.n)) end
      slot.done = true
      return
    end
    if r[2] ~= TAG then error("azcmk.transport.batch: a task yielded outside the pipeline", 0) end
    slot.kind, slot.arg = r[3], r[4]
    if slot.kind == "sleep" then slot.wake = now() + (tonumber(slot.arg) or 0) end
  end

  local function fill()
    while #active < conc and next_i <= #tasks do
      local i, f = next_i, tasks[next_i]
      next_i = next_i + 1
      if not keep then tasks[i] = false end   -- the closure (and what it holds) can go
      if type(f) ~= "function" then error("azcmk.transport.batch: task " .. i .. " is not a function", 0) end
      local slot = { i = i, co = coroutine.create(f) }
      step(slot, view)
      if not slot.done then active[#active + 1] = slot end
    end
  end

  local function prune()
    local live = {}
    for _, s in ipairs(active) do if not s.done then live[#live + 1] = s end end
    active = live
  end

  -- the first sleeper's wake-up time, or nil
  local function first_wake()
    local first
    for _, s in ipairs(active) do
      if s.kind == "sleep" and (not first or s.wake < first) then first = s.wake end
    end
    return first
  end

  -- every running task waits: sleep until the first sleeper is due
  local function sleep_until(first)
    local d = first and first - now()
    if d and d > 0 then real_sleep(d) end
  end

  local function wake_due()
    local t = now()
    for _, s in ipairs(active) do
      if s.kind == "sleep" and s.wake <= t then s.kind = nil; step(s) end
    end
    prune()
  end

  -- A transport with a stream (submit / collect: the core's): each request starts as its task
  -- asks and each task resumes as soon as its own answer arrives.
  local function run_streaming()
    local inflight, n_inflight = {}, 0
    while true do
      fill()
      if #active == 0 then break end
      wake_due()
      for _, s in ipairs(active) do
        if s.kind == "request" and not s.slot then
          s.slot = transport:submit(clean(s.arg))
          inflight[s.slot] = s
          n_inflight = n_inflight + 1
        end
      end
      local first = first_wake()
      if n_inflight > 0 then
        local wait = first and math.max(0, first - now()) or 1
        local done, running = transport:collect(math.min(wait, 1))
        for slot, r in pairs(done) do
          local s = inflight[slot]
          if s then
            inflight[slot], n_inflight = nil, n_inflight - 1
            s.kind, s.slot = nil, nil
            step(s, r[1] or nil, r[2])
          end
        end
        if next(done) == nil and running == 0 then
          error("azcmk.transport.batch: " .. n_inflight .. " request(s) in flight were lost "
            .. "(the transport was closed during the run)", 0)
        end
        prune()
      else
        sleep_until(first)
      end
    end
  end

  -- Otherwise the requests of the running tasks go out together, and the tasks resume when
  -- the whole batch has answered.
  local function run_batched()
    while true do
      fill()
      if #active == 0 then break end
      wake_due()
      local reqs, slots = {}, {}
      for _, s in ipairs(active) do
        if s.kind == "request" then reqs[#reqs + 1] = clean(s.arg); slots[#slots + 1] = s end
      end
      if #reqs > 0 then
        local results, errs
        if #reqs == 1 or type(transport.batch) ~= "function" then
          results, errs = {}, {}
          for k, r in ipairs(reqs) do
            local res, err = transport:request(r)
            results[k], errs[k] = res or false, err
          end
        else
          results, errs = transport:batch(reqs, { max_parallel = math.min(conc, #reqs) })
        end
        for k, s in ipairs(slots) do
          s.kind = nil
          step(s, results[k] or nil, errs[k])
        end
        prune()
      else
        sleep_until(first_wake())
      end
    end
  end

  -- one run at a time streams on a transport (a run started inside a task on the real pipeline
  -- would collect the other's answers): a nested one batches
  if type(transport.submit) == "function" and type(transport.collect) == "function"
    and not streaming[transport] then
    streaming[transport] = true
    local ok, err = pcall(run_streaming)
    streaming[transport] = nil
    if not ok then
      if transport.abandon then pcall(transport.abandon, transport) end   -- nobody will collect them
      error(err, 0)
    end
  else
    run_batched()
  end
  return out
end

--- Send requests (p:send tables) in parallel. Returns results, errs, raws by index:
-- results[i] = res or false, errs[i] = err or nil, raws[i] = the non-2xx response or nil.
function M.send_batch(p, reqs, opts)
  local tasks = {}
  for i, r in ipairs(reqs) do tasks[i] = function(v) return v:send(r) end end
  local out = M.run(p, tasks, opts)
  local results, errs, raws = {}, {}, {}
  for i = 1, #reqs do
    local o = out[i]
    results[i] = o[1] or false
    errs[i] = o[2]
    raws[i] = o[3]
  end
  return results, errs, raws
end

return M
