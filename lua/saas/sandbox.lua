-- The rule sandbox: every rule file runs in a fresh environment built from an allow-list.
-- The daemon (src/engine/vm.c, which embeds this file) and the busted helper (saas.testing)
-- both load rules through load_rule() below, so a spec sees exactly what the daemon sees.
--
-- What a rule gets: the base functions listed in BASE, read-only proxies of string, table,
-- math, utf8, coroutine and a small os (time, clock, date, difftime). Nothing else: no io,
-- os.execute, load, loadstring, dofile, require, debug, package, collectgarbage, print,
-- rawset, string.dump. Reading or assigning an undeclared global raises an error.
-- Capabilities (store, http, log, clock, json, crypto) come through the ctx argument.
local M = {}

local error, type, pairs, next, tostring = error, type, pairs, next, tostring
local setmetatable, getmetatable, rawget, rawlen, rawequal = setmetatable, getmetatable, rawget,
  rawlen, rawequal
local load, pcall = load, pcall
local format = string.format

-- proxy -> real table, to unwrap read-only values (e.g. before JSON encoding). Only this file
-- holds it: a rule can never get from a proxy to the table behind it.
local real_of = setmetatable({}, { __mode = "k" })

local function refuse_write(_, key)
  error(format("attempt to modify a read-only table (key '%s')", tostring(key)), 2)
end

-- The proxies' shared metamethods: they find the table behind a proxy in real_of, so a proxy
-- costs one table and its metatable, no closures. None of them returns the table itself:
-- __pairs returns its own iterator and the proxy (not `next, t`: that second value used to
-- be the real, writable table, reachable by every offer sharing the state).
local function proxy_next(p, k)
  return next(real_of[p], k)
end

local function proxy_pairs(p)
  return proxy_next, p, nil
end

local function proxy_len(p)
  return #real_of[p]
end

-- A read-only view of t. Every table reachable from t must already be a proxy (M.freeze and
-- library() build them that way; M.data wraps as it hands out), so reading, pairs, next and ipairs only ever
-- hand out proxies.
local function proxy(t)
  local p = {}
  real_of[p] = t
  return setmetatable(p, {
    __index = t, -- inside the protected metatable: never handed out
    __newindex = refuse_write,
    __len = proxy_len,
    __pairs = proxy_pairs,
    __metatable = false, -- getmetatable answers false; setmetatable refuses
  })
end

-- Deep read-only copy of a plain data table. Values inside are frozen too, so pairs() over
-- the proxy yields proxies, never the writable originals. For tables others may still hold
-- (ctx, a rule's own data); a table nobody else holds is wrapped in place by M.seal instead.
function M.freeze(v)
  if type(v) ~= "table" or real_of[v] then
    return v
  end
  local copy = {}
  for k, x in pairs(v) do
    copy[M.freeze(k)] = M.freeze(x)
  end
  return proxy(copy)
end

-- Freshly decoded JSON (saas.contract) as a read-only view, normalised as it is read, so a
-- call pays only for what its rule reads (nothing is walked, copied or wrapped up front):
-- JSON null is an absent field (rules test `sub.quantity == nil`, never against cjson.null),
-- whole numbers are integers (lua-cjson decodes every number as a float, and 10.0 prints as
-- "10.0" and stores as "10.0"), a table inside is wrapped the first time it is read and the
-- wrapper stored in its place (the same proxy every time after). The tables behind are held
-- by this file alone; their keys are strings. One metatable serves them all.
local NULL, tointeger = require("cjson").null, math.tointeger
local is_data = setmetatable({}, { __mode = "k" }) -- data proxy -> true
local DATA_MT

local function data_proxy(t)
  local p = setmetatable({}, DATA_MT)
  real_of[p] = t
  is_data[p] = true
  return p
end

-- What a rule sees for value v of field k of the decoded table t.
local function data_value(t, k, v)
  local tv = type(v)
  if tv == "table" then
    if real_of[v] then
      return v -- wrapped at an earlier read
    end
    local p = data_proxy(v)
    t[k] = p -- replacing a field's value is allowed during a traversal
    return p
  elseif tv == "number" then
    return tointeger(v) or v
  elseif v == NULL then
    return nil
  end
  return v
end

local function data_next(p, k)
  local t = real_of[p]
  local v
  k, v = next(t, k)
  while v == NULL do
    k, v = next(t, k)
  end
  if k == nil then
    return nil
  end
  return k, data_value(t, k, v)
end

-- # as the rule reads the view: a JSON array's trailing nulls read as nil, so they are not
-- counted (t[#t] is never nil; what # gave when nulls were removed up front).
local function data_len(p)
  local t = real_of[p]
  local n = #t
  while n > 0 and t[n] == NULL do
    n = n - 1
  end
  return n
end

DATA_MT = {
  __index = function(p, k)
    local t = real_of[p]
    return data_value(t, k, t[k])
  end,
  __newindex = refuse_write,
  __len = data_len,
  __pairs = function(p) return data_next, p, nil end,
  __metatable = false,
}

-- The read-only view of t, a table fresh from cjson.decode that nobody else holds.
function M.data(t)
  return data_proxy(t)
end

-- Deep plain copy, unwrapping read-only proxies (for JSON encoding, for specs). Decoded data
-- comes out as a rule reads it (no nulls, whole numbers as integers).
function M.plain(v, seen, data)
  if type(v) ~= "table" then
    if data and type(v) == "number" then
      return tointeger(v) or v
    end
    return v
  end
  seen = seen or {}
  if seen[v] then
    return seen[v]
  end
  local src = real_of[v] or v
  data = data or is_data[v]
  local out = {}
  seen[v] = out
  for k, x in pairs(src) do
    if not (data and x == NULL) then
      out[k] = M.plain(x, seen, data)
    end
  end
  return out
end

function M.is_readonly(v)
  return real_of[v] ~= nil
end

-- A library shared by every rule: a read-only proxy over the allowed names only.
local function library(src, names)
  local t = {}
  for _, name in ipairs(names) do
    t[name] = src[name]
  end
  return proxy(t)
end

local LIBS = {
  string = library(string, { "byte", "char", "find", "format", "gmatch", "gsub", "len", "lower",
    "match", "pack", "packsize", "rep", "reverse", "sub", "unpack", "upper" }),
  table = library(table, { "concat", "insert", "move", "pack", "remove", "sort", "unpack" }),
  math = library(math, { "abs", "ceil", "cos", "deg", "exp", "floor", "fmod", "huge", "log",
    "max", "maxinteger", "min", "mininteger", "modf", "pi", "rad", "random", "sin", "sqrt",
    "tan", "tointeger", "type", "ult" }),
  utf8 = library(utf8, { "char", "charpattern", "codepoint", "codes", "len", "offset" }),
  coroutine = library(coroutine, { "close", "create", "isyieldable", "resume", "running",
    "status", "wrap", "yield" }),
  os = library(os, { "clock", "date", "difftime", "time" }),
}

-- setmetatable for the rule's own tables. A __gc finalizer would run outside any handler
-- call (at collection time, without limits), so it is refused.
local function safe_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("__gc metamethods are not allowed in rules", 2)
  end
  return setmetatable(t, mt)
end

-- getmetatable on tables only: the string metatable would hand out the real string library.
-- A proxy's metatable is protected (__metatable = false), so getmetatable answers false.
local function safe_getmetatable(v)
  if type(v) ~= "table" then
    return nil
  end
  return getmetatable(v)
end

local function refuse_raw(name)
  return function(t)
    if real_of[t] then
      error(format("%s is not allowed on a read-only table", name), 3) -- the rule's line
    end
  end
end
local check_rawget, check_rawlen, check_rawequal = refuse_raw("rawget"), refuse_raw("rawlen"),
  refuse_raw("rawequal")

-- next() on a proxy walks the table behind it (the proxy itself is empty), handing out the
-- same proxied values as pairs(); on the rule's own tables it is the plain next.
local function safe_next(t, k)
  local real = real_of[t]
  if real then
    if is_data[t] then
      return data_next(t, k)
    end
    return next(real, k)
  end
  return next(t, k)
end

-- Raw access bypasses the read-only metatable: refused on proxies, plain on the rule's own
-- tables. (rawset is not given to rules at all.)
local function safe_rawget(t, k)
  check_rawget(t)
  return rawget(t, k)
end

local function safe_rawlen(t)
  check_rawlen(t)
  return rawlen(t)
end

local function safe_rawequal(a, b)
  check_rawequal(a)
  check_rawequal(b)
  return rawequal(a, b)
end

local BASE = {
  assert = assert, error = error, ipairs = ipairs, next = safe_next, pairs = pairs, pcall = pcall,
  rawequal = safe_rawequal, rawget = safe_rawget, rawlen = safe_rawlen, select = select,
  tonumber = tonumber, tostring = tostring, type = type, xpcall = xpcall, _VERSION = _VERSION,
  setmetatable = safe_setmetatable, getmetatable = safe_getmetatable,
}

-- Names a rule may read, for luacheck and the README.
M.GLOBALS = {}
for name in pairs(BASE) do M.GLOBALS[#M.GLOBALS + 1] = name end
for name in pairs(LIBS) do M.GLOBALS[#M.GLOBALS + 1] = name end
table.sort(M.GLOBALS)

local STRICT = {
  __index = function(_, key)
    error(format("undeclared global '%s'", tostring(key)), 2)
  end,
  __newindex = function(_, key)
    error(format("assignment to undeclared global '%s' (declare it local)", tostring(key)), 2)
  end,
  __metatable = false,
}

-- A fresh environment for one rule file.
function M.env()
  local env = {}
  for k, v in pairs(BASE) do env[k] = v end
  for k, v in pairs(LIBS) do env[k] = v end
  return setmetatable(env, STRICT)
end

-- Line count of a source, for problems that have no line of their own (the returned table).
local function last_line(source)
  local n, last = 0, 1
  for line in (source .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:find("%S") then last = n end
  end
  return last
end

-- Loads one rule file. source: its text; chunkname: "@" .. path (so errors read
-- "path:line: message"). check: function(handlers, path, last_line) -> list of problems
-- (saas.contract.check_handlers). Runs the chunk: the caller arms the CPU/memory limits.
-- Returns handlers, or nil and a list of "path:line: message" strings.
function M.load_rule(source, chunkname, check)
  local path = chunkname:sub(1, 1) == "@" and chunkname:sub(2) or chunkname
  if type(source) ~= "string" then
    return nil, { path .. ":1: rule source is not text" }
  end
  if source:byte(1) == 27 then
    return nil, { path .. ":1: precompiled (binary) chunks are not accepted; ship the source" }
  end
  local chunk, err = load(source, chunkname, "t", M.env())
  if not chunk then
    return nil, { err }
  end
  local results = table.pack(pcall(chunk))
  if not results[1] then
    local msg = tostring(results[2])
    if not msg:find("^" .. path:gsub("%p", "%%%0") .. ":%d+:") then
      msg = path .. ":1: " .. msg
    end
    return nil, { msg }
  end
  local handlers = results[2]
  local problems = check(handlers, path, last_line(source))
  if #problems > 0 then
    return nil, problems
  end
  return handlers
end

return M
