-- The sandbox as specs see it: the same saas.sandbox the daemon embeds, under saas.core's
-- limits (the daemon's C hook and allocator).
local h = require("helpers")

local function handler_body(body)
  return "local r = {}\nfunction r.provision(sub, ctx)\n" .. body .. "\nend\nreturn r\n"
end

local function provision_with(body, limits)
  local path, dir = h.rule_file(handler_body(body))
  local rule = h.load_rule(path, limits)
  local ctx = h.ctx()
  local res = h.call(rule, "provision", h.subscription(), nil, ctx, limits)
  h.remove_dir(dir)
  return res
end

describe("the rule sandbox", function()
  for _, name in ipairs({ "io", "load", "loadstring", "dofile", "require", "debug", "package",
    "collectgarbage", "print", "rawset", "module", "setfenv" }) do
    it("keeps '" .. name .. "' out of reach of a rule", function()
      local res = provision_with("local x = " .. name .. "\nreturn { action = 'activate' }")
      assert.rule_failed(res, "error", "undeclared global '" .. name .. "'")
    end)
  end

  it("keeps os.execute, os.getenv and os.exit out of reach", function()
    for _, f in ipairs({ "execute", "getenv", "exit", "remove" }) do
      local res = provision_with("return { action = os." .. f .. " == nil and 'reject' or 'activate' }")
      assert.refused(res)
    end
  end)

  it("makes writing a global an error", function()
    local res = provision_with("counter = 1\nreturn { action = 'activate' }")
    assert.rule_failed(res, "error", "rule.lua:3: assignment to undeclared global 'counter'")
  end)

  it("makes the shared libraries read-only", function()
    local res = provision_with("string.upper = string.lower\nreturn { action = 'activate' }")
    assert.rule_failed(res, "error", "read%-only")
    assert.are.equal("ABC", string.upper("abc"))
  end)

  it("makes the subscription read-only", function()
    local res = provision_with("sub.planId = 'free'\nreturn { action = 'activate' }")
    assert.rule_failed(res, "error", "read%-only")
  end)

  it("hides the string metatable", function()
    local res = provision_with("return { action = getmetatable('') == nil and 'activate' or 'reject' }")
    assert.activated(res)
  end)

  it("refuses __gc finalizers", function()
    local res = provision_with("setmetatable({}, { __gc = function() end })\nreturn { action = 'activate' }")
    assert.rule_failed(res, "error", "__gc")
  end)

  it("refuses precompiled chunks", function()
    local path, dir = h.rule_file(string.dump(function() return {} end))
    local ok, problems = h.check_rule(path)
    h.remove_dir(dir)
    assert.is_false(ok)
    assert.matches("precompiled", problems[1])
  end)

  it("stops an endless loop even inside pcall", function()
    local res = provision_with("while true do pcall(function() while true do end end) end",
      { cpu_ms = 200, memory = 16 * 1024 * 1024 })
    assert.rule_failed(res, "cpu_limit", "rule.lua:%d+: cpu limit")
  end)

  it("stops a memory bomb at the cap, even inside pcall, and the runtime keeps working", function()
    local res = provision_with([[
      local t = {}
      while true do pcall(function() t[#t + 1] = string.rep("x", 65536) .. #t end) end]],
      { cpu_ms = 5000, memory = 4 * 1024 * 1024 })
    assert.rule_failed(res, "memory_limit")
    collectgarbage()
    assert.activated(provision_with("return { action = 'activate' }"))
  end)

  it("reports a syntax error with file and line", function()
    local path, dir = h.rule_file("local r = {}\nfunction r.provision(\nreturn r\n")
    local ok, problems = h.check_rule(path)
    h.remove_dir(dir)
    assert.is_false(ok)
    assert.matches("rule.lua:3:", problems[1], 1, true)
  end)

  it("reports a misspelt handler at its line", function()
    local path, dir = h.rule_file("local r = {}\n\nfunction r.provison(sub, ctx) end\nreturn r\n")
    local ok, problems = h.check_rule(path)
    h.remove_dir(dir)
    assert.is_false(ok)
    assert.matches("rule.lua:3: unknown handler 'provison'", problems[1], 1, true)
  end)

  it("reports a file that does not return a table", function()
    local path, dir = h.rule_file("local x = 1\nreturn x\n")
    local ok, problems = h.check_rule(path)
    h.remove_dir(dir)
    assert.is_false(ok)
    assert.matches("must return a table of handlers, got number", problems[1], 1, true)
  end)
end)

describe("saasd rules check", function()
  local function run(dir)
    local p = io.popen(h.build .. "/saasd rules check " .. dir .. " 2>/dev/null; echo \"rc=$?\"")
    local out = p:read("a")
    p:close()
    return out
  end

  it("prints file:line: message for a broken file and fails", function()
    local dir = h.rules_dir({
      ["ok.lua"] = "return {}\n",
      ["bad.lua"] = "local r = {}\nr.provision = function(sub, ctx)\n  return { action = 'activate'\nend\nreturn r\n",
    })
    local out = run(dir)
    h.remove_dir(dir)
    assert.matches(dir .. "/bad.lua:4: ", out, 1, true)
    assert.matches("rc=1", out, 1, true)
  end)

  it("passes the shipped rules", function()
    assert.matches("rc=0", run("rules"), 1, true)
  end)
end)
