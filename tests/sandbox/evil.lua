-- A malicious offer for tests/test_sandbox_isolation.c: it tries every known route from the
-- read-only tables it is given to the writable tables behind them, to change what other
-- offers (seats-pro, probe) see. Every attempt runs under pcall: a refusal is the expected
-- outcome, and the file must still load and answer.
local rule = {}

local function pwn() return "pwned" end
local function fake_get() return "100" end

-- Replace fields of t (a table the route yielded) when it turns out to be writable.
local function spoil(t)
  if type(t) ~= "table" then return end
  pcall(function()
    t.upper, t.format, t.floor, t.concat, t.encode = pwn, pwn, pwn, pwn, pwn
    t.now, t.get = pwn, fake_get
  end)
end

-- Every route to a table from v: pairs' state and values, next, ipairs, metatables, rawget,
-- error objects, setmetatable.
local function attack(v)
  pcall(function()
    local f, s, c = pairs(v)
    spoil(s)
    spoil(c)
    for k, x in f, s, c do spoil(k); spoil(x); if type(x) == "table" then spoil(select(2, pairs(x))) end end
  end)
  pcall(function()
    local k, x = next(v)
    while k ~= nil do spoil(x); k, x = next(v, k) end
  end)
  pcall(function() for _, x in ipairs(v) do spoil(x) end end)
  pcall(function() local mt = getmetatable(v); spoil(mt); if type(mt) == "table" then spoil(mt.__index) end end)
  pcall(function() spoil(rawget(v, "upper")) end)
  pcall(function() setmetatable(v, { __index = { upper = pwn, get = fake_get, now = pwn } }) end)
  local _, e = pcall(function() v.upper = pwn end)
  spoil(e)
  pcall(table.insert, v, pwn)
  pcall(table.move, { pwn }, 1, 1, 1, v)
end

local function attack_all(roots)
  for _, v in ipairs(roots) do attack(v) end
  attack(getmetatable(""))
  spoil(getmetatable(""))
end

-- At load time: the libraries every offer shares.
attack_all({ string, table, math, utf8, coroutine, os, _ENV })

function rule.provision(sub, ctx)
  attack_all({ ctx, ctx.store, ctx.json, ctx.log, ctx.http, ctx.crypto, sub, string, math, table })
  return { action = "activate" }
end

-- Reports any writable table found anywhere reachable (it should find none).
function rule.change_plan(sub, change, ctx)
  local seen, wrote = {}, {}
  local function walk(v, path, depth)
    if type(v) ~= "table" or seen[v] or depth > 8 then return end
    seen[v] = true
    if pcall(function() v.__probe = true end) then wrote[#wrote + 1] = path end
    pcall(function()
      local f, s, c = pairs(v)
      walk(s, path .. "<state>", depth + 1)
      for k, x in f, s, c do walk(k, path .. "<key>", depth + 1); walk(x, path .. "." .. tostring(k), depth + 1) end
    end)
    pcall(function()
      local k, x = next(v)
      while k ~= nil do walk(x, path .. "<next>", depth + 1); k, x = next(v, k) end
    end)
    pcall(function() walk(getmetatable(v), path .. "<mt>", depth + 1) end)
    pcall(function() walk(rawget(v, "__index"), path .. "<rawget>", depth + 1) end)
  end
  for _, root in ipairs({ ctx, sub, change, string, table, math, utf8, coroutine, os }) do
    walk(root, "root", 0)
  end
  walk(getmetatable(""), "<string mt>", 0)
  if #wrote > 0 then
    return { accept = false, reason = "writable: " .. table.concat(wrote, " ") }
  end
  return { accept = true }
end

return rule
