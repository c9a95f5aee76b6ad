-- Helpers for busted specs of rule files. A spec loads a rule through the daemon's own
-- sandbox (saas.sandbox + saas.contract, the files the daemon embeds) under the daemon's own
-- limits (saas.core: the C instruction hook and counting allocator), and calls its handlers
-- through the same contract.call, with a fake ctx:
--
--   local t = require("saas.testing")
--   local rule = t.load_rule("rules/seats-pro.lua")
--   local ctx, fake = t.ctx({ now = "2026-01-10T00:00:00Z", store = { ["in_use:sub-1"] = "7" } })
--   local sub = t.subscription({ id = "sub-1", planId = "pro", quantity = 10 })
--   local res = t.call(rule, "change_quantity", sub, t.change_quantity(sub, 5), ctx)
--   assert.rejected(res, "seats in use")
--   assert.activated(t.call(rule, "provision", sub, ctx))   -- provision(sub, ctx): no payload
--
-- Results are the normalised tables the daemon maps to struct rule_result:
--   { outcome = "ok" | "default" | "error" | "cpu_limit" | "memory_limit" | "invalid_result"
--               | "bad_input", action, accept, message, reason, redirect, bill, error }
local core = require("saas.core")
local sandbox = require("saas.sandbox")
local contract = require("saas.contract")
local ctxmod = require("saas.ctx")
local cjson = require("cjson")

local M = {}

-- ctx -> its fake, so t.call can keep or drop a call's ctx.meter/ctx.timer effects (weak keys)
local fakes = setmetatable({}, { __mode = "k" })

-- The daemon's defaults (engine_options): 2000 ms per call, 32 MiB per state.
M.limits = { cpu_ms = 2000, memory = 32 * 1024 * 1024 }

local function read(path)
  local f, err = io.open(path, "rb")
  if not f then
    error("cannot read rule file: " .. tostring(err), 3)
  end
  local s = f:read("a")
  f:close()
  return s
end

local function run(limits, fn, ...)
  return core.run(limits or M.limits, fn, ...)
end

-- Load a rule file as the daemon does. Returns ok, problems ("file:line: message" strings).
function M.check_rule(path, limits)
  local source = read(path)
  local ok, handlers, problems = run(limits, sandbox.load_rule, source, "@" .. path,
    contract.check_handlers)
  if not ok then
    return false, { tostring(problems) } -- handlers = kind, problems = message
  end
  if not handlers then
    return false, problems
  end
  return true, {}
end

-- Load a rule file as the daemon does; raises with every problem when it is invalid.
-- Returns { handlers = ..., path = ..., sha256 = hex of the text that was loaded }.
function M.load_rule(path, limits)
  local source = read(path)
  local ok, handlers, problems = run(limits, sandbox.load_rule, source, "@" .. path,
    contract.check_handlers)
  if not ok then
    error(path .. ": " .. tostring(handlers) .. ": " .. tostring(problems), 2)
  end
  if not handlers then
    error(table.concat(problems, "\n"), 2)
  end
  return { handlers = handlers, path = path, sha256 = core.crypto.sha256(source) }
end

-- Handlers whose payload is not their middle argument: provision(sub, ctx, landing).
local function takes_payload(handler)
  local spec = contract.HANDLERS[handler]
  return spec == nil or spec.kind ~= "provision"
end

-- provision's landing argument (t.landing) is told from a ctx by its own fields.
local function is_landing(t)
  return type(t) == "table" and (rawget(t, "buyer") ~= nil or rawget(t, "fields") ~= nil)
end

-- Call a handler the way engine_call does: sub and arg are encoded to the contract's JSON,
-- decoded again (nulls dropped, frozen), passed with ctx; the answer is schema-checked.
-- Arguments follow the handler's own signature: t.call(rule, "change_plan", sub, change, ctx)
-- and t.call(rule, "provision", sub, ctx, landing?) (also t.call(rule, "provision", sub,
-- landing, ctx) and the older t.call(rule, "provision", sub, nil, ctx)). limits, optional,
-- comes last.
function M.call(rule, handler, sub, arg, ctx, limits)
  if not takes_payload(handler) and arg ~= nil and not is_landing(arg) then
    if is_landing(ctx) then -- (sub, ctx, landing, limits?)
      arg, ctx = ctx, arg
    else -- (sub, ctx, limits?)
      arg, ctx, limits = nil, arg, ctx
    end
  end
  local sub_json = type(sub) == "string" and sub or cjson.encode(sandbox.plain(sub))
  local arg_json = arg
  if type(arg) == "table" then
    arg_json = cjson.encode(sandbox.plain(arg))
  end
  local fake = fakes[ctx]
  if fake then
    fake.pending = {}
  end
  local ok, res, msg = run(limits, contract.call, rule.handlers, handler, sub_json, arg_json, ctx)
  if fake then -- like the daemon: effects count only when the call succeeded
    local effects = fake.pending
    fake.pending = nil
    if ok and (res.outcome == "ok" or res.outcome == "default") then
      fake.commit(effects, sub)
    end
  end
  if ok then
    return res
  end
  local kind, err = res, msg
  if kind == "error" and type(err) == "table" then
    return { outcome = err.saas_invalid and "invalid_result" or "bad_input", error = err.msg }
  end
  return { outcome = kind, error = tostring(err) }
end

---------------------------------------------------------------------------------------------
-- Fake capabilities
---------------------------------------------------------------------------------------------

-- The store fake behaves like ctx.store in the daemon: string values (numbers are stored as
-- their tostring), reads see earlier writes.
local function fake_store(initial)
  local data = {}
  for k, v in pairs(initial or {}) do data[k] = tostring(v) end
  local store = {
    get = function(key)
      assert(type(key) == "string" and #key > 0 and #key <= 200, "bad argument #1 to 'get' (key)")
      return data[key]
    end,
    put = function(key, value)
      assert(type(key) == "string" and #key > 0 and #key <= 200, "bad argument #1 to 'put' (key)")
      assert(type(value) == "string" or type(value) == "number",
        "bad argument #2 to 'put' (value must be a string or a number)")
      data[key] = tostring(value)
      return true
    end,
    delete = function(key)
      data[key] = nil
      return true
    end,
  }
  return store, data
end

local function host_of(url)
  local scheme, host = tostring(url):match("^(%a+)://([^/:?#]+)")
  if not scheme or (scheme ~= "http" and scheme ~= "https") then
    return nil
  end
  return host:lower()
end

local function allowed(allow, host)
  for _, pat in ipairs(allow) do
    pat = pat:lower():gsub(":%d+$", "")
    if pat == host or (pat:sub(1, 2) == "*." and host:sub(-(#pat - 1)) == pat:sub(2)) then
      return true
    end
  end
  return false
end

-- routes: { ["GET https://isv.example/x"] = response | function(req) | "error text" }
-- A response is { status = 200, body = "...", headers = { name = value } }. Unrouted requests
-- answer nil, "no fake route for ...". Every request is recorded in calls.
local function fake_http(routes, allow)
  local calls = {}
  local http = {
    request = function(req)
      assert(type(req) == "table", "bad argument #1 to 'request' (table expected)")
      assert(type(req.url) == "string", "bad argument #1 to 'request' (request needs a url)")
      local method = req.method or "GET"
      calls[#calls + 1] = { method = method, url = req.url, headers = req.headers, body = req.body }
      local host = host_of(req.url)
      if not host then
        return nil, "only http and https URLs are allowed"
      end
      if allow and not allowed(allow, host) then
        return nil, "host not allowed: " .. host .. " (add it to rules.http_allow)"
      end
      local answer = routes[method .. " " .. req.url]
      if type(answer) == "function" then
        local r, err = answer(req)
        if not r then
          return nil, err
        end
        answer = r
      end
      if answer == nil then
        return nil, "no fake route for " .. method .. " " .. req.url
      elseif type(answer) == "string" then
        return nil, answer
      end
      local headers = {}
      for k, v in pairs(answer.headers or {}) do headers[k:lower()] = v end
      return {
        status = answer.status or 200,
        body = answer.body or "",
        header = function(name) return headers[name:lower()] end,
      }
    end,
  }
  return http, calls
end

local function fake_log(lines)
  local function at(level)
    return function(msg, fields)
      assert(type(msg) == "string", "bad argument #1 to '" .. level .. "' (string expected)")
      lines[#lines + 1] = { level = level, msg = msg, fields = fields }
    end
  end
  return { debug = at("debug"), info = at("info"), warn = at("warn"), error = at("error") }
end

-- ctx.meter / ctx.timer effects, as the daemon applies them: only those of calls that succeeded
-- (t.call keeps or drops them), timers per subscription and name (setting a name again
-- replaces it). fake.meter: { {sub, dimension, quantity}, ... }; fake.timers: sub id -> name ->
-- { at, data }.
local function fake_effects(fake)
  fake.meter, fake.timers, fake.notifications = {}, {}, {}
  local function effect(kind, a, b, c)
    if not fake.pending then -- outside t.call there is no call to fail: applied at once
      fake.commit({ { kind = kind, a = a, b = b, c = c } })
      return
    end
    local list = fake.pending
    list[#list + 1] = { kind = kind, a = a, b = b, c = c }
  end
  function fake.commit(effects, sub)
    local id = type(sub) == "table" and sub.id or "?"
    for _, e in ipairs(effects or {}) do
      if e.kind == "meter" then
        fake.meter[#fake.meter + 1] = { sub = id, dimension = e.a, quantity = tonumber(e.b) }
      elseif e.kind == "notify" then -- checked and encoded by ctx.notify, as in the daemon
        fake.notifications[#fake.notifications + 1] = { type = e.a, data = cjson.decode(e.b) }
      else
        local mine = fake.timers[id] or {}
        fake.timers[id] = mine
        mine[e.a] = e.kind == "timer"
          and { at = math.tointeger(tonumber(e.b)), data = e.c and cjson.decode(e.c) } or nil
      end
    end
  end
  return effect
end

-- The usage fake.meter holds for dimension (and sub, when given), summed.
function M.metered(fake, dimension, sub)
  local n = 0
  for _, m in ipairs(fake.meter) do
    if m.dimension == dimension and (sub == nil or m.sub == sub.id) then n = n + m.quantity end
  end
  return n
end

-- A ctx like the daemon's, with fakes. opts: now (epoch or ISO string), store (initial
-- key/values), http (routes), http_allow (host patterns; nil = allow all). Returns ctx and
-- fake = { store = <the data table>, http = { calls = {...} }, log = { lines }, meter, timers,
-- notifications = { {type, data}, ... } (committed ctx.notify calls, in order),
-- now(), advance(seconds, rule, sub) }.
-- The fake clock: fake.advance(seconds, rule, sub) moves ctx.now() forward and fires sub's due
-- timers in time order through rule's timer handler (as the daemon would: at most once; a
-- failed one stays and fires again on the next advance). Returns the results, each with the
-- timer's name and time: { {name, at, result}, ... }.
function M.ctx(opts)
  opts = opts or {}
  local now = opts.now or "2026-01-01T00:00:00Z"
  if type(now) == "string" then
    now = assert(ctxmod.parse_time(now))
  end
  local store, data = fake_store(opts.store)
  local http, calls = fake_http(opts.http or {}, opts.http_allow)
  local lines = {}
  local fake = { store = data, http = { calls = calls }, log = lines }
  local ctx = ctxmod.new({
    log = fake_log(lines),
    now = function() return now end,
    store = store,
    http = http,
    crypto = core.crypto, -- the real C binding
    effect = fake_effects(fake),
  })
  fakes[ctx] = fake
  fake.now = function() return now end
  fake.advance = function(seconds, rule, sub)
    local target = now + seconds
    local fired = {}
    while #fired < 1000 do -- a handler that keeps setting due timers cannot hang the spec
      local due, due_name
      for name, t in pairs(sub and fake.timers[sub.id] or {}) do
        if t.at <= target and (due == nil or t.at < due.at or (t.at == due.at and name < due_name)) then
          due, due_name = t, name
        end
      end
      if not due then break end
      now = math.max(now, due.at)
      fake.timers[sub.id][due_name] = nil -- fired at most once: gone before the handler runs
      local res = M.call(rule, "timer", sub, { name = due_name, data = due.data }, ctx)
      if not (res.outcome == "ok" or res.outcome == "default") and fake.timers[sub.id][due_name] == nil then
        fake.timers[sub.id][due_name] = { at = target + 1, data = due.data } -- retried later
      end
      fired[#fired + 1] = { name = due_name, at = due.at, result = res }
    end
    now = target
    return fired
  end
  return ctx, fake
end

-- The payload of the timer handler, for t.call(rule, "timer", sub, t.timer(name, data), ctx).
function M.timer(name, data)
  return { name = name, data = data }
end

---------------------------------------------------------------------------------------------
-- Builders (contract §3.2 subscription, §5.4 webhook payload)
---------------------------------------------------------------------------------------------

local counter = 0
local function guid()
  counter = counter + 1
  return string.format("00000000-0000-4000-8000-%012d", counter)
end

local function merge(base, over)
  for k, v in pairs(over or {}) do base[k] = v end
  return base
end

function M.subscription(over)
  return merge({
    id = guid(),
    name = "Contoso subscription",
    publisherId = "contoso",
    offerId = "offer1",
    planId = "basic",
    quantity = 5,
    saasSubscriptionStatus = "Subscribed",
    beneficiary = { emailId = "user@customer.example", objectId = guid(), tenantId = guid() },
    purchaser = { emailId = "buyer@customer.example", objectId = guid(), tenantId = guid() },
    term = { termUnit = "P1M", startDate = "2026-01-01T00:00:00Z", endDate = "2026-01-31T00:00:00Z" },
    autoRenew = true,
    isTest = false,
    isFreeTrial = false,
    allowedCustomerOperations = { "Read", "Update", "Delete" },
    sandboxType = "None",
    sessionMode = "None",
    created = "2026-01-01T00:00:00Z",
    lastModified = "0001-01-01T00:00:00",
  }, over)
end

-- A webhook payload for sub: action "ChangePlan", "Suspend", ... over: extra/overridden fields.
function M.event(action, sub, over)
  sub = sub or M.subscription()
  local notify_only = { Renew = true, Suspend = true, Unsubscribe = true, Subscribe = true }
  return merge({
    id = guid(),
    activityId = guid(),
    subscriptionId = sub.id,
    publisherId = sub.publisherId,
    offerId = sub.offerId,
    planId = sub.planId,
    quantity = sub.quantity,
    timeStamp = "2026-01-10T09:15:27.1234567Z",
    action = action,
    status = notify_only[action] and "Succeeded" or "InProgress",
    operationRequestSource = "Azure",
    subscription = sub,
    purchaseToken = cjson.null,
  }, over)
end

function M.change_plan(sub, plan_id, over)
  return M.event("ChangePlan", sub, merge({ planId = plan_id }, over))
end

function M.change_quantity(sub, quantity, over)
  return M.event("ChangeQuantity", sub, merge({ quantity = quantity }, over))
end

-- What provision's third argument holds after a buyer confirmed on the landing page:
-- { buyer = { oid, tid, name, email, tenant_matches }, fields = { name = answer } }.
-- over.buyer / over.fields are merged into the defaults (the purchaser of t.subscription(sub)).
function M.landing(sub, over)
  over = over or {}
  local purchaser = sub and sub.purchaser or {}
  local buyer = merge({
    oid = purchaser.objectId or guid(),
    tid = purchaser.tenantId or guid(),
    name = "Alex Buyer",
    email = purchaser.emailId or "buyer@customer.example",
    tenant_matches = true,
  }, over.buyer)
  return { buyer = buyer, fields = merge({}, over.fields) }
end

-- A usage report as the usage handler gets it (POST /admin/usage).
function M.usage(dimension, quantity, over)
  return merge({ dimension = dimension, quantity = quantity, time = "2026-01-10T09:15:00Z" }, over)
end

---------------------------------------------------------------------------------------------
-- Assertions: assert.accepted(res), assert.rejected(res, reason_pattern?),
-- assert.activated(res), assert.pending(res, message_pattern?), assert.refused(res, pattern?)
-- (provision reject), assert.billed(res, quantity) (usage), assert.rule_failed(res, outcome?,
-- error_pattern?)
---------------------------------------------------------------------------------------------

local function describe_result(res)
  if type(res) ~= "table" then
    return tostring(res)
  end
  local parts = {}
  for _, k in ipairs({ "outcome", "action", "accept", "message", "reason", "redirect", "bill", "error" }) do
    if res[k] ~= nil then parts[#parts + 1] = k .. "=" .. tostring(res[k]) end
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end
M.describe = describe_result

local function decided(res)
  return type(res) == "table" and (res.outcome == "ok" or res.outcome == "default")
end

local function matches(s, pattern)
  return pattern == nil or (type(s) == "string" and s:find(pattern) ~= nil)
end

local CHECKS = {
  accepted = function(res) return decided(res) and res.accept == true end,
  rejected = function(res, pattern)
    return decided(res) and res.accept == false and matches(res.reason, pattern)
  end,
  activated = function(res) return decided(res) and res.action == "activate" end,
  pending = function(res, pattern)
    return decided(res) and res.action == "pending" and matches(res.message, pattern)
  end,
  refused = function(res, pattern)
    return decided(res) and res.action == "reject" and matches(res.message, pattern)
  end,
  billed = function(res, quantity)
    return decided(res) and type(res.bill) == "number" and math.abs(res.bill - quantity) < 1e-9
  end,
  rule_failed = function(res, outcome, pattern)
    return type(res) == "table" and not decided(res) and (outcome == nil or res.outcome == outcome)
      and matches(res.error, pattern)
  end,
}

function M.register_assertions()
  local ok_say, say = pcall(require, "say")
  local ok_assert, luassert = pcall(require, "luassert")
  if not (ok_say and ok_assert) then
    return
  end
  for name, check in pairs(CHECKS) do
    local key = "assertion.saas_" .. name
    say:set(key .. ".positive", "Expected the rule result to be " .. name .. ":\n%s")
    say:set(key .. ".negative", "Expected the rule result not to be " .. name .. ":\n%s")
    luassert:register("assertion", name, function(_, args)
      local res = args[1]
      local pass = check(res, args[2], args[3])
      args[1] = describe_result(res)
      args.n = 1
      return pass
    end, key .. ".positive", key .. ".negative")
  end
end
M.register_assertions()

return M
