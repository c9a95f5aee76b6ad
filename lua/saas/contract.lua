-- The rule contract: which handlers a rule file may define, what each may return, the
-- default when it is missing, and the one function that calls a handler and checks its
-- answer against the schema before C acts on it. Shared by the daemon (embedded in
-- src/engine/vm.c) and by saas.testing.
--
--   provision(sub, ctx, landing)        landing page, when the signed-in buyer confirms
--                                       (landing = { buyer = { oid, tid, name, email,
--                                       tenant_matches }, fields = { name = answer } })
--       -> { action = "activate" | "pending" | "reject", message = str?, redirect = url? }
--   change_plan(sub, change, ctx)       ChangePlan webhook (change = the webhook payload)
--   change_quantity(sub, change, ctx)   ChangeQuantity webhook
--       -> { accept = true } | { accept = false, reason = str }
--   reinstate(sub, event, ctx)          Reinstate webhook; may refuse
--       -> nothing/true (accept) | { accept = bool, reason = str? } | nil, err (retry later)
--   suspend / unsubscribe / renew (sub, event, ctx)   side effects on the ISV's systems
--       -> nothing/true (done) | nil, err (retry later); raising also means retry later
--   timer(sub, name, data, ctx)         a durable timer set with ctx.timer fell due (at most
--                                       once; late after an outage, never lost)
--       -> nothing/true (done) | nil, err (retry later); raising also means retry later
--   usage(sub, usage, ctx)              metered usage the ISV's systems report, before saasd
--                                       adds it up for Microsoft (usage = { dimension,
--                                       quantity, time }, time in ISO 8601 UTC)
--       -> nothing/true (bill all of it) | { bill = n } (bill n >= 0; 0 = included in the
--          base fee) | nil, err (refuse the report; nothing is recorded)
--
-- Besides handlers, a rule file may return `landing = { fields = {...}, brand = {...} }`:
-- the extra questions of the confirmation page and the offer's look (checked at load by
-- check_landing below; the daemon reads it through landing_json).
--
-- Missing handler: provision activates, changes and reinstate are accepted, usage is billed
-- as reported, the others do nothing. Unknown fields in a returned table are an error (they are usually typos).
local sandbox = require("saas.sandbox")
local cjson = require("cjson")

local M = {}

local format, type, pairs, tostring = string.format, type, pairs, tostring

M.HANDLERS = {
  provision = { args = "sub, ctx, landing", kind = "provision" },
  change_plan = { args = "sub, change, ctx", kind = "change" },
  change_quantity = { args = "sub, change, ctx", kind = "change" },
  reinstate = { args = "sub, event, ctx", kind = "reinstate" },
  suspend = { args = "sub, event, ctx", kind = "effect" },
  unsubscribe = { args = "sub, event, ctx", kind = "effect" },
  renew = { args = "sub, event, ctx", kind = "effect" },
  usage = { args = "sub, usage, ctx", kind = "usage" },
  timer = { args = "sub, name, data, ctx", kind = "timer" },
}

M.DEFAULTS = {
  provision = { action = "activate" },
  change = { accept = true },
  reinstate = { accept = true },
  effect = {},
  usage = {},
  timer = {},
}

-- Problems with the table a rule file returned: "path:line: message" strings.
local FIELD_TYPES = { text = true, email = true, tel = true, number = true, url = true }
local FIELD_KEYS = { name = "string", label = "string", type = "string", required = "boolean",
  pattern = "string", max = "number", help = "string" }
local BRAND_KEYS = { product = true, logo_url = true, color = true, accent = true, support = true }

-- Problems with a rule's `landing` table (fields of the confirmation page, brand).
function M.check_landing(landing, path, line)
  local problems = {}
  local function bad(fmt, ...) problems[#problems + 1] = format("%s:%d: landing" .. fmt, path, line, ...) end
  if type(landing) ~= "table" then
    bad(" must be a table, got %s", type(landing))
    return problems
  end
  for k in pairs(landing) do
    if k ~= "fields" and k ~= "brand" then bad(".%s: unknown key (known: fields, brand)", tostring(k)) end
  end
  local fields, seen = landing.fields or {}, {}
  if type(fields) ~= "table" then bad(".fields must be a list, got %s", type(fields)) fields = {} end
  for i, f in ipairs(fields) do
    if type(f) ~= "table" then
      bad(".fields[%d] must be a table", i)
    else
      for k, v in pairs(f) do
        if not FIELD_KEYS[k] then bad(".fields[%d].%s: unknown key", i, tostring(k))
        elseif type(v) ~= FIELD_KEYS[k] then bad(".fields[%d].%s must be a %s", i, k, FIELD_KEYS[k]) end
      end
      if type(f.name) ~= "string" or not f.name:find("^[%a_][%w_]*$") or #f.name > 64 then
        bad(".fields[%d].name must be an identifier (letters, digits, _)", i)
      elseif seen[f.name] or f.name == "csrf" then
        bad(".fields[%d].name '%s' is used twice or reserved", i, f.name)
      end
      if f.name then seen[f.name] = true end
      if type(f.label) ~= "string" then bad(".fields[%d].label is required", i) end
      if f.type ~= nil and not FIELD_TYPES[f.type] then
        bad(".fields[%d].type must be text, email, tel, number or url", i)
      end
      if f.max ~= nil and (math.type(f.max) ~= "integer" or f.max < 1 or f.max > 1000) then
        bad(".fields[%d].max must be an integer from 1 to 1000", i)
      end
    end
  end
  local brand = landing.brand or {}
  if type(brand) ~= "table" then bad(".brand must be a table, got %s", type(brand)) brand = {} end
  for k, v in pairs(brand) do
    if not BRAND_KEYS[k] then
      bad(".brand.%s: unknown key (known: product, logo_url, color, accent, support)", tostring(k))
    elseif type(v) ~= "string" then bad(".brand.%s must be a string", k) end
  end
  for _, k in ipairs({ "color", "accent" }) do
    if type(brand[k]) == "string" and not brand[k]:find("^#%x%x%x%x?%x?%x?$") then
      bad(".brand.%s must be a #rgb or #rrggbb colour", k)
    end
  end
  if type(brand.logo_url) == "string" and not brand.logo_url:find("^https://[%w%.%-]+[:/]") then
    bad(".brand.logo_url must be an https URL")
  end
  return problems
end

-- The landing table as JSON text for the daemon, or nil when the rule has none.
function M.landing_json(handlers)
  local l = handlers.landing
  if type(l) ~= "table" then return nil end
  return cjson.encode(sandbox.plain(l))
end

function M.check_handlers(handlers, path, last_line)
  local problems = {}
  if type(handlers) ~= "table" then
    problems[1] = format("%s:%d: the rule file must return a table of handlers, got %s",
      path, last_line, type(handlers))
    return problems
  end
  local names = {}
  for name in pairs(handlers) do names[#names + 1] = tostring(name) end
  table.sort(names)
  for _, name in ipairs(names) do
    local fn = handlers[name]
    local line = last_line
    if type(fn) == "function" then
      line = debug.getinfo(fn, "S").linedefined
    end
    if name == "landing" then
      for _, p in ipairs(M.check_landing(fn, path, line)) do problems[#problems + 1] = p end
    elseif not M.HANDLERS[name] then
      local known = {}
      for k in pairs(M.HANDLERS) do known[#known + 1] = k end
      table.sort(known)
      problems[#problems + 1] = format("%s:%d: unknown handler '%s' (known: %s)", path, line,
        name, table.concat(known, ", "))
    elseif type(fn) ~= "function" then
      problems[#problems + 1] = format("%s:%d: handler '%s' must be a function, got %s",
        path, line, name, type(fn))
    end
  end
  return problems
end

-- Error raised when a handler's answer does not match the schema. C recognises the marker.
local function invalid(handler, fmt, ...)
  error({ saas_invalid = true, msg = format("%s returned an invalid result: " .. fmt, handler, ...) }, 0)
end

local function check_fields(handler, t, allowed)
  for k in pairs(t) do
    if not allowed[k] then
      invalid(handler, "unknown field '%s'", tostring(k))
    end
  end
end

local function opt_string(handler, t, field)
  local v = t[field]
  if v ~= nil and type(v) ~= "string" then
    invalid(handler, "'%s' must be a string, got %s", field, type(v))
  end
  return v
end

-- A redirect a browser cannot read as another host: an http(s) URL with a plain host, or a
-- path starting with one "/". No backslash (browsers read "/\\evil" as "//evil"), no encoded
-- backslash, no control characters or blanks, no "//" at the start.
function M.redirect_ok(url)
  if type(url) ~= "string" or #url > 2048 or url:find("[%c%s\\]") or url:lower():find("%%5c") then
    return false
  end
  if url:find("^https?://[%w%.%-]+[:/]") or url:find("^https?://[%w%.%-]+$") then
    return true
  end
  return url:find("^/[^/]") ~= nil and not url:lower():find("^/%%2f")
end

local ACTIONS = { activate = true, pending = true, reject = true }

local function validate_provision(handler, r)
  if type(r) ~= "table" then
    invalid(handler, "expected a table { action = ... }, got %s", type(r))
  end
  check_fields(handler, r, { action = true, message = true, redirect = true })
  if not ACTIONS[r.action] then
    invalid(handler, "'action' must be \"activate\", \"pending\" or \"reject\", got %s",
      type(r.action) == "string" and format("%q", r.action) or type(r.action))
  end
  local out = { outcome = "ok", action = r.action, message = opt_string(handler, r, "message"),
    redirect = opt_string(handler, r, "redirect") }
  if out.redirect and not M.redirect_ok(out.redirect) then
    invalid(handler, "'redirect' must be an http(s) URL or an absolute path, got %q", out.redirect)
  end
  return out
end

local function validate_accept(handler, r, reason_required)
  if type(r) ~= "table" then
    invalid(handler, "expected a table { accept = true|false, reason = ... }, got %s", type(r))
  end
  check_fields(handler, r, { accept = true, reason = true })
  if type(r.accept) ~= "boolean" then
    invalid(handler, "'accept' must be a boolean, got %s", type(r.accept))
  end
  local reason = opt_string(handler, r, "reason")
  if reason_required and r.accept == false and (reason == nil or reason == "") then
    invalid(handler, "a refusal needs a 'reason'")
  end
  return { outcome = "ok", accept = r.accept, reason = reason }
end

-- Maps what a handler returned (first two values) to a normalised result table:
-- { outcome = "ok" | "error", action?, accept?, message?, reason?, redirect?, error? }
function M.validate(handler, r, err)
  local kind = M.HANDLERS[handler].kind
  if kind == "provision" then
    return validate_provision(handler, r)
  elseif kind == "change" then
    return validate_accept(handler, r, true)
  end
  -- reinstate and side-effect handlers: nil, err means "try again later"
  if r == nil and err ~= nil then
    return { outcome = "error", error = tostring(err) }
  elseif r == false then
    return { outcome = "error", error = err ~= nil and tostring(err) or "returned false" }
  end
  if kind == "reinstate" then
    if r == nil or r == true then
      return { outcome = "ok", accept = true }
    end
    return validate_accept(handler, r, false)
  end
  if kind == "usage" and type(r) == "table" then
    check_fields(handler, r, { bill = true })
    local bill = r.bill
    if type(bill) ~= "number" or bill ~= bill or bill < 0 or bill == math.huge then
      invalid(handler, "'bill' must be a number of at least 0, got %s", tostring(bill))
    end
    return { outcome = "ok", bill = bill }
  end
  if r == nil or r == true then
    return { outcome = "ok" }
  end
  invalid(handler, kind == "usage" and "expected nothing, true, { bill = n }, or nil and an error, got %s"
    or "expected nothing, true, or nil and an error, got %s", type(r))
end

local function decode(what, text)
  if text == nil then
    return nil
  end
  local ok, v = pcall(cjson.decode, text)
  if not ok or type(v) ~= "table" then
    error({ saas_bad_input = true, msg = format("%s is not a JSON object", what) }, 0)
  end
  return sandbox.data(v) -- null -> absent, whole numbers -> integers: see sandbox.data
end

local function copy(t)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  return out
end

-- Calls handler `name` of a loaded rule. sub_json/arg_json are the contract's JSON shapes
-- (arg_json nil for provision); ctx is the capability table. Returns the normalised result.
-- Raises on a rule error, an invalid result ({saas_invalid}) or bad input ({saas_bad_input}).
function M.call(handlers, name, sub_json, arg_json, ctx)
  local spec = M.HANDLERS[name]
  if not spec then
    error({ saas_bad_input = true, msg = format("unknown handler '%s'", tostring(name)) }, 0)
  end
  local sub = decode("subscription", sub_json)
  local arg = decode(spec.kind == "provision" and "argument" or "change/event/usage", arg_json)
  if spec.kind == "timer" and type(arg.name) ~= "string" then
    error({ saas_bad_input = true, msg = "timer needs a string 'name'" }, 0)
  end
  if spec.kind == "usage" and (type(arg.quantity) ~= "number" or type(arg.dimension) ~= "string") then
    error({ saas_bad_input = true, msg = "usage needs a number 'quantity' and a string 'dimension'" }, 0)
  end
  local fn = handlers[name]
  local r, err
  if fn == nil then
    r = copy(M.DEFAULTS[spec.kind])
    r.outcome = "default"
  else
    if spec.kind == "provision" then
      r, err = fn(sub, ctx, arg)
    elseif spec.kind == "timer" then
      r, err = fn(sub, arg.name, arg.data, ctx)
    else
      r, err = fn(sub, arg, ctx)
    end
    r = M.validate(name, r, err)
  end
  if spec.kind == "usage" and r.outcome ~= "error" and r.bill == nil then
    r.bill = arg.quantity -- nothing said: bill what was reported
  end
  return r
end

return M
