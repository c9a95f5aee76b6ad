-- Offers cannot reach each other: the busted module runs every rule in one Lua state (as the
-- daemon's states did), sharing saas.sandbox's read-only libraries and, here, one ctx. A
-- malicious offer tries every known way from a read-only proxy to the table behind it; the
-- other offer's decisions and the shared libraries must not change.
local h = require("helpers")

-- Reports everything the shared pieces it uses answer; any tampering shows in the message.
local VICTIM = [[
local r = {}
function r.provision(sub, ctx)
  local parts = {
    string.upper("abc"), ("abc"):upper(), string.format("%d seats", 7), tostring(math.floor(2.5)),
    table.concat({ "a", "b" }, ","), tostring(ctx.now()), tostring(ctx.store.get("k")),
    tostring(ctx.parse_time("2026-01-02")), tostring(ctx.json.encode({ 1 })),
    tostring((ctx.log.info("hello"))), tostring(ctx.crypto.sha256("x")), utf8.char(72),
    tostring(coroutine.running ~= nil), tostring(os.difftime(2, 1)), tostring(sub.planId),
  }
  return { action = "activate", message = table.concat(parts, "|") }
end
return r
]]

local PWN = "local function pwn() return 'pwned' end\n"

-- name -> what the malicious offer's provision tries (inside pcall: a refusal is fine).
local PROBES = {
  ["the second value of pairs(string)"] =
    "local _, real = pairs(string); real.upper = pwn; real.format = pwn",
  ["the second value of pairs(math) and pairs(table)"] =
    "local _, m = pairs(math); m.floor = pwn\nlocal _, t = pairs(table); t.concat = pwn",
  ["the second value of pairs(ctx)"] =
    "local _, real = pairs(ctx); real.now = pwn; real.parse_time = pwn",
  ["the second value of pairs() on ctx's nested tables"] = [[
    for _, v in pairs(ctx) do
      if type(v) == "table" then
        local _, real = pairs(v); real.get = pwn; real.encode = pwn; real.info = pwn; real.sha256 = pwn
      end
    end]],
  ["the iterator pairs() returns, called by hand"] = [[
    local f, s = pairs(ctx)
    local k, v = f(s, nil)
    while k do
      if type(v) == "table" then v.get = pwn end
      k, v = f(s, k)
    end]],
  ["next() over read-only tables"] = [[
    for _, root in ipairs({ ctx, string, math, table }) do
      local k, v = next(root)
      while k do
        if type(v) == "table" then v.get = pwn; v.info = pwn end
        k, v = next(root, k)
      end
    end]],
  ["ipairs() over read-only tables"] = [[
    for _, v in ipairs({ string, ctx, ctx.store }) do v.upper = pwn; v.get = pwn end]],
  ["getmetatable on libraries, ctx and strings"] = [[
    for _, v in ipairs({ string, math, ctx, ctx.store, "" }) do
      local mt = getmetatable(v)
      if type(mt) == "table" then
        mt.__index = { upper = pwn, floor = pwn, now = pwn, get = pwn }
        if type(rawget(mt, "__index")) == "table" then rawget(mt, "__index").upper = pwn end
      end
    end]],
  ["setmetatable on libraries and ctx"] = [[
    setmetatable(string, { __index = { upper = pwn } })
    setmetatable(ctx, { __index = { now = pwn } })]],
  ["raw access to read-only tables"] = [[
    local up = rawget(string, "upper"); local n = rawlen(ctx)
    if rawequal(string, string) and type(up) == "table" then up.x = n end]],
  ["error objects raised by the sandbox"] = [[
    for _, f in ipairs({ function() string.upper = pwn end, function() ctx.now = pwn end,
                         function() return undeclared_global end }) do
      local _, e = pcall(f)
      if type(e) == "table" then e.upper = pwn; e.now = pwn end
    end]],
  ["C library functions that write into tables"] = [[
    pcall(table.insert, string, pwn); pcall(table.move, { pwn }, 1, 1, 1, ctx)
    pcall(table.sort, ctx.store); pcall(os.time, ctx)]],
}

-- What VICTIM answers when nothing was tampered with, computed outside the sandbox.
local function expected_message(now)
  local core = require("saas.core")
  return table.concat({ "ABC", "ABC", "7 seats", "2", "a,b", tostring(now), "v",
    tostring(require("saas.ctx").parse_time("2026-01-02")), "[1]", "nil", core.crypto.sha256("x"), "H", "true",
    tostring(os.difftime(2, 1)), "pro" }, "|")
end

local function evil_source(code)
  return "local r = {}\n" .. PWN .. "function r.provision(sub, ctx)\n  pcall(function()\n" .. code ..
    "\n  end)\n  return { action = 'activate' }\nend\nreturn r\n"
end

local function run_provision(source, ctx)
  local path, dir = h.rule_file(source)
  local rule = h.load_rule(path)
  local res = h.call(rule, "provision", h.subscription({ planId = "pro" }), nil, ctx)
  h.remove_dir(dir)
  return res
end

describe("offers sharing one Lua state", function()
  local names = {}
  for name in pairs(PROBES) do names[#names + 1] = name end
  table.sort(names)

  for _, name in ipairs(names) do
    it("cannot change what another offer sees through " .. name, function()
      local ctx = h.ctx({ now = "2026-01-10T00:00:00Z", store = { k = "v" } })
      local before = run_provision(VICTIM, ctx)
      assert.activated(before)
      assert.are.equal(expected_message(require("saas.ctx").parse_time("2026-01-10T00:00:00Z")), before.message)
      assert.activated(run_provision(evil_source(PROBES[name]), ctx))
      local after = run_provision(VICTIM, ctx)
      assert.are.equal(before.message, after.message)
      assert.are.equal("ABC", string.upper("abc"))
      assert.are.equal(2, math.floor(2.5))
    end)
  end
end)

-- Walks everything reachable from a rule's globals, ctx and arguments through pairs, next,
-- ipairs, getmetatable, rawget and caught errors, and tries to write into each table found.
local WALKER = [[
local r = {}
function r.provision(sub, ctx)
  local seen, wrote = {}, {}
  local function walk(v, path, depth)
    if type(v) ~= "table" or seen[v] or depth > 8 then return end
    seen[v] = true
    if pcall(function() v.__probe = true end) then wrote[#wrote + 1] = path end
    local ok, f, s, c = pcall(pairs, v)
    if ok then
      walk(s, path .. "<pairs state>", depth + 1)
      walk(c, path .. "<pairs control>", depth + 1)
      pcall(function()
        for k, x in f, s, c do
          walk(k, path .. "<key>", depth + 1)
          walk(x, path .. "." .. tostring(k), depth + 1)
        end
      end)
    end
    pcall(function()
      local k, x = next(v)
      while k ~= nil do walk(x, path .. "<next>." .. tostring(k), depth + 1); k, x = next(v, k) end
    end)
    pcall(function() for i, x in ipairs(v) do walk(x, path .. "[" .. i .. "]", depth + 1) end end)
    local okm, mt = pcall(getmetatable, v)
    if okm then walk(mt, path .. "<metatable>", depth + 1) end
    local okr, raw = pcall(rawget, v, "__index")
    if okr then walk(raw, path .. "<rawget>", depth + 1) end
    local _, e = pcall(function() v.__probe2 = 1 end)
    walk(e, path .. "<error>", depth + 1)
  end
  walk(ctx, "ctx", 0)
  walk(sub, "sub", 0)
  for _, name in ipairs({ "string", "table", "math", "utf8", "coroutine", "os" }) do
    walk(_ENV[name], name, 0)
  end
  local okm, smt = pcall(getmetatable, "")
  if okm then walk(smt, "<string metatable>", 0) end
  return { action = #wrote == 0 and "activate" or "reject", message = table.concat(wrote, " ") }
end
return r
]]

describe("the read-only tables a rule gets", function()
  it("lead, through every route, only to tables that refuse writes", function()
    local res = run_provision(WALKER, h.ctx())
    assert.are.equal("", res.message)
    assert.activated(res)
  end)

  local function probe(body)
    return run_provision("local r = {}\nfunction r.provision(sub, ctx)\n" .. body ..
      "\nend\nreturn r\n", h.ctx())
  end

  it("hand out read-only values from pairs, next and ipairs, nested tables too", function()
    local res = probe([[
      local n = 0
      for _, v in pairs(sub) do if type(v) == "table" then n = n + 1; assert(not pcall(function() v.x = 1 end)) end end
      local k, v = next(sub, nil)
      local seen = 0
      while k do seen = seen + 1; k, v = next(sub, k) end
      for _, v in ipairs(sub.allowedCustomerOperations) do assert(type(v) == "string") end
      return { action = "activate", message = n .. "/" .. seen }]])
    assert.activated(res)
    local tables, keys = res.message:match("^(%d+)/(%d+)$")
    assert.is_true(tonumber(tables) >= 3) -- beneficiary, purchaser, term, ...
    assert.is_true(tonumber(keys) > tonumber(tables)) -- next() walks the proxy's contents
  end)

  it("keep metatables out of reach: strings give nil, proxies false", function()
    local res = probe([[
      return { action = "activate", message = tostring(getmetatable("")) .. " " ..
        tostring(getmetatable(string)) .. " " .. tostring(getmetatable(ctx)) .. " " ..
        tostring(getmetatable(sub.term)) }]])
    assert.are.equal("nil false false false", res.message)
  end)

  for _, call in ipairs({ "rawget(string, 'upper')", "rawlen(sub.allowedCustomerOperations)",
    "rawequal(ctx, ctx)" }) do
    it("refuse " .. call, function()
      local res = probe("local x = " .. call .. "\nreturn { action = 'activate' }")
      assert.rule_failed(res, "error", "not allowed on a read%-only table")
    end)
  end

  it("keep raw access working on the rule's own tables", function()
    local res = probe([[
      local t = { 1, 2, x = 3 }
      assert(rawget(t, "x") == 3 and rawlen(t) == 2 and rawequal(t, t) and next(t) ~= nil)
      return { action = "activate" }]])
    assert.activated(res)
  end)

  it("raise plain strings, never tables, when written to", function()
    local res = probe([[
      local _, e1 = pcall(function() string.upper = nil end)
      local _, e2 = pcall(function() ctx.store.get = nil end)
      local _, e3 = pcall(setmetatable, ctx, {})
      return { action = "activate", message = type(e1) .. type(e2) .. type(e3) }]])
    assert.are.equal("stringstringstring", res.message)
  end)
end)
