-- Builds the ctx table a handler receives, from capability providers. The daemon passes the
-- C bindings (src/bind/*.c); saas.testing passes fakes (and the real crypto). Either way the
-- rule sees the same read-only shape:
--
--   ctx.log.debug|info|warn|error(msg, fields?)  structured log line (fields: string -> string)
--   ctx.now()                   current time, integer seconds since the epoch (UTC)
--   ctx.parse_time(iso)         "2024-05-02T09:15:27.123Z" / "2024-05-02" -> epoch seconds, or nil, err
--   ctx.days_between(a, b)      whole days from epoch a to epoch b
--   ctx.store.get(key)          -> string or nil; reads see this call's own writes
--   ctx.store.put(key, value)   value: string or number; committed with the decision
--   ctx.store.delete(key)
--   ctx.http.request{ method, url, headers = {name = value}, body, timeout_ms }
--   ctx.http.get(url, headers?) / ctx.http.post(url, body, headers?)
--                               -> { status, body, header = function(name) } or nil, err
--                                  (hosts outside the allow-list, timeouts, refused connections)
--   ctx.meter(dimension, quantity)  usage (> 0) added to this hour's bucket of the subscription,
--                               committed with the decision, only if the call succeeds
--   ctx.timer.after(seconds, name, data?) / ctx.timer.at(iso_or_epoch, name, data?)
--                               a durable timer of the subscription: the offer's timer(sub,
--                               name, data, ctx) handler runs once after that time; setting a
--                               name again replaces it. ctx.timer.cancel(name). Committed with
--                               the decision, only if the call succeeds.
--   ctx.json.encode(v) / ctx.json.decode(s) -> value or nil, err; ctx.json.null
--   ctx.crypto.sha256(s) / hmac(key, s) -> hex; base64_encode/decode, base64url_encode/decode,
--   ctx.crypto.uuid()
--   ctx.notify(event_type, fields?)  an ISV-defined event ("crm.seats_requested", fields: a table
--                               encoded as its JSON data) for the configured sinks; committed with
--                               the decision, only if the call succeeds
local sandbox = require("saas.sandbox")
local cjson = require("cjson")

local M = {}

local function days_from_civil(y, m, d)
  -- Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

-- ISO 8601 date or date-time (UTC, "Z" or offset) -> integer epoch seconds.
function M.parse_time(s)
  if type(s) ~= "string" then
    return nil, "not a string"
  end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then
    return nil, "not an ISO 8601 date: " .. s
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 then
    return nil, "date out of range: " .. s
  end
  local h, mi, sec, offset = 0, 0, 0, 0
  if rest ~= "" then
    local hh, mm, ss, tail = rest:match("^[T ](%d%d):(%d%d):(%d%d)%.?%d*(.*)$")
    if not hh then
      return nil, "not an ISO 8601 time: " .. s
    end
    h, mi, sec = tonumber(hh), tonumber(mm), tonumber(ss)
    if tail ~= "" and tail ~= "Z" then
      local sign, oh, om = tail:match("^([+-])(%d%d):?(%d%d)$")
      if not sign then
        return nil, "bad time zone: " .. s
      end
      offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1)
    end
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset
end

function M.days_between(a, b)
  return (b - a) // 86400
end

local json = {
  null = cjson.null,
  encode = function(v)
    local ok, s = pcall(cjson.encode, sandbox.plain(v))
    if not ok then
      return nil, s
    end
    return s
  end,
  decode = function(s)
    if type(s) ~= "string" then
      return nil, "expected a JSON string, got " .. type(s)
    end
    local ok, v = pcall(cjson.decode, s)
    if not ok then
      return nil, v
    end
    return v
  end,
}

local ID = "^[%w%._%-]+$"

local function check_name(fname, name, what)
  if type(name) ~= "string" or #name < 1 or #name > 64 or not name:find(ID) then
    error(string.format("bad argument to '%s' (%s must be 1..64 characters of [A-Za-z0-9._-])", fname, what), 3)
  end
end

-- ctx.meter and ctx.timer: validated here, handed to caps.effect(kind, ...) as strings.
local function effects(effect, now)
  local function need()
    if not effect then
      error("ctx.meter/ctx.timer are not available here", 3)
    end
  end
  local function set(fname, at, name, data)
    need()
    check_name(fname, name, "the timer name")
    local data_json
    if data ~= nil then
      local ok, s = pcall(cjson.encode, sandbox.plain(data))
      if not ok then
        error("bad argument #3 to '" .. fname .. "' (data must be JSON-encodable: " .. tostring(s) .. ")", 3)
      end
      if #s > 16384 then
        error("bad argument #3 to '" .. fname .. "' (data larger than 16 KiB as JSON)", 3)
      end
      data_json = s
    end
    effect("timer", name, string.format("%d", at), data_json)
    return true
  end
  local meter = function(dimension, quantity)
    need()
    check_name("meter", dimension, "the dimension")
    if type(quantity) ~= "number" or quantity ~= quantity or quantity <= 0 or quantity == math.huge then
      error("bad argument #2 to 'meter' (quantity must be a number greater than 0)", 2)
    end
    effect("meter", dimension, string.format("%.17g", quantity))
    return true
  end
  local timer = {
    after = function(seconds, name, data)
      if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 or seconds > 10 * 366 * 86400 then
        error("bad argument #1 to 'after' (seconds must be a number from 0 to 10 years)", 2)
      end
      return set("after", now() + math.ceil(seconds), name, data)
    end,
    at = function(when, name, data)
      local t, err = when, nil
      if type(when) == "string" then
        t, err = M.parse_time(when)
      end
      if math.type(t) ~= "integer" then
        error("bad argument #1 to 'at' (an ISO 8601 time or epoch seconds: " .. tostring(err or when) .. ")", 2)
      end
      return set("at", t, name, data)
    end,
    cancel = function(name)
      need()
      check_name("cancel", name, "the timer name")
      effect("timer_cancel", name)
      return true
    end,
  }
  return meter, timer
end

-- The first words of saasd's own event types (src/daemon/events.c): a rule cannot pass for saasd.
local RESERVED = { subscription = true, usage = true, drift = true, outbox = true, activation = true }

-- "crm.seats_requested": 3..64 of [a-z0-9_.], two words or more, not starting with a reserved one.
local function event_type_ok(t)
  if type(t) ~= "string" or #t < 3 or #t > 64 or not t:match("^[a-z0-9_]+%.[a-z0-9_.]*[a-z0-9_]$")
    or t:find("..", 1, true) then
    return false
  end
  return not RESERVED[t:match("^([^.]+)")]
end

-- ctx.notify over caps.effect("notify", event_type, fields_json): the fields table becomes the
-- event's data; like ctx.meter, the daemon commits it with the decision only if the call succeeds.
local function notifier(effect)
  return function(event_type, fields)
    if not effect then
      error("ctx.notify is not available here", 2)
    end
    if not event_type_ok(event_type) then
      error("ctx.notify: event type must be like \"crm.seats_requested\" ([a-z0-9_.], not saasd's own "
        .. "subscription.*, usage.*, drift.*, outbox.*, activation.*), got " .. tostring(event_type), 2)
    end
    if fields ~= nil and type(fields) ~= "table" then
      error("ctx.notify: fields must be a table, got " .. type(fields), 2)
    end
    local ok, text = pcall(cjson.encode, sandbox.plain(fields or {}))
    if not ok then
      error("ctx.notify: fields cannot be encoded as JSON: " .. tostring(text), 2)
    end
    if text == "[]" then
      text = "{}"
    end
    if #text > 65536 then
      error("ctx.notify: fields larger than 64 KiB as JSON", 2)
    end
    effect("notify", event_type, text)
    return true
  end
end

-- caps: { log = {debug, info, warn, error}, now = fn, store = {get, put, delete},
--         http = {request}, crypto = {...}, effect = fn(kind, ...)
--         (ctx.meter/ctx.timer/ctx.notify) }
function M.new(caps)
  local http = caps.http
  local request = http.request
  local meter, timer = effects(caps.effect, caps.now)
  local ctx = {
    meter = meter,
    timer = timer,
    log = caps.log,
    now = caps.now,
    store = caps.store,
    http = {
      request = request,
      get = function(url, headers)
        return request({ method = "GET", url = url, headers = headers })
      end,
      post = function(url, body, headers)
        return request({ method = "POST", url = url, body = body, headers = headers })
      end,
    },
    json = json,
    crypto = caps.crypto,
    notify = notifier(caps.effect),
    parse_time = M.parse_time,
    days_between = M.days_between,
  }
  return sandbox.freeze(ctx)
end

return M
