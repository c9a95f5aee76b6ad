-- The result schema: what each handler may return and how it is normalised for C.
local h = require("helpers")
local contract = require("saas.contract")

local function run(handler, returned)
  local body = "return " .. returned
  local src = "local r = {}\nfunction r." .. handler .. "(...)\n" .. body .. "\nend\nreturn r\n"
  local path, dir = h.rule_file(src)
  local rule = h.load_rule(path)
  h.remove_dir(dir)
  local sub = h.subscription()
  local arg = handler == "usage" and h.usage("api-calls", 40)
    or handler ~= "provision" and h.event("Suspend", sub) or nil
  return h.call(rule, handler, sub, arg, h.ctx())
end

describe("the result schema", function()
  local cases = {
    { "provision", "{ action = 'activate' }", "ok", { action = "activate" } },
    { "provision", "{ action = 'pending', message = 'soon' }", "ok", { action = "pending", message = "soon" } },
    { "provision", "{ action = 'reject', message = 'no', redirect = 'https://isv.example/why' }", "ok",
      { action = "reject", redirect = "https://isv.example/why" } },
    { "provision", "{ action = 'activate', redirect = 'javascript:alert(1)' }", "invalid_result" },
    { "provision", "{ action = 'activated' }", "invalid_result" },
    { "provision", "{ action = 'activate', mesage = 'typo' }", "invalid_result" },
    { "provision", "'activate'", "invalid_result" },
    { "provision", "nil", "invalid_result" },
    { "change_plan", "{ accept = true }", "ok", { accept = true } },
    { "change_plan", "{ accept = false, reason = 'no' }", "ok", { accept = false, reason = "no" } },
    { "change_plan", "{ accept = false }", "invalid_result" },
    { "change_quantity", "{ accept = 'yes' }", "invalid_result" },
    { "change_quantity", "true", "invalid_result" },
    { "reinstate", "nil", "ok", { accept = true } },
    { "reinstate", "{ accept = false, reason = 'unpaid' }", "ok", { accept = false } },
    { "reinstate", "nil, 'ISV down'", "error" },
    { "suspend", "nil", "ok" },
    { "suspend", "true", "ok" },
    { "suspend", "nil, 'ISV down'", "error" },
    { "unsubscribe", "false, 'later'", "error" },
    { "renew", "{ done = true }", "invalid_result" },
    { "usage", "nil", "ok", { bill = 40 } },
    { "usage", "{ bill = 15 }", "ok", { bill = 15 } },
    { "usage", "{ bill = 0 }", "ok", { bill = 0 } },
    { "usage", "{ bill = -1 }", "invalid_result" },
    { "usage", "{ bill = 0/0 }", "invalid_result" },
    { "usage", "{ bill = '3' }", "invalid_result" },
    { "usage", "{ bil = 3 }", "invalid_result" },
    { "usage", "42", "invalid_result" },
    { "usage", "nil, 'unknown customer'", "error" },
  }
  for _, c in ipairs(cases) do
    local handler, returned, outcome, fields = c[1], c[2], c[3], c[4]
    it(string.format("%s returning %s -> %s", handler, returned, outcome), function()
      local res = run(handler, returned)
      assert.are.equal(outcome, res.outcome, h.describe(res))
      for k, v in pairs(fields or {}) do
        assert.are.equal(v, res[k])
      end
    end)
  end

  it("applies the documented default for every missing handler", function()
    local rule = { handlers = {} }
    local sub = h.subscription()
    for name, spec in pairs(contract.HANDLERS) do
      local arg = spec.kind == "usage" and h.usage("api-calls", 3)
        or spec.kind == "timer" and h.timer("reminder")
        or spec.kind ~= "provision" and h.event("Suspend", sub) or nil
      local res = h.call(rule, name, sub, arg, h.ctx())
      assert.are.equal("default", res.outcome, name)
    end
    assert.activated(h.call(rule, "provision", sub, nil, h.ctx()))
    assert.accepted(h.call(rule, "change_plan", sub, h.change_plan(sub, "gold"), h.ctx()))
    assert.accepted(h.call(rule, "reinstate", sub, h.event("Reinstate", sub), h.ctx()))
    assert.billed(h.call(rule, "usage", sub, h.usage("api-calls", 2.5), h.ctx()), 2.5)
  end)

  it("refuses a usage report without a number quantity as bad input", function()
    local res = h.call({ handlers = {} }, "usage", h.subscription(), { dimension = "api-calls" }, h.ctx())
    assert.rule_failed(res, "bad_input", "quantity")
  end)

  it("turns JSON null into an absent field", function()
    local path, dir = h.rule_file([[
local r = {}
function r.suspend(sub, event, ctx)
  if event.purchaseToken ~= nil then return nil, "null leaked" end
end
return r
]])
    local rule = h.load_rule(path)
    h.remove_dir(dir)
    local sub = h.subscription()
    assert.are.equal("ok", h.call(rule, "suspend", sub, h.event("Suspend", sub), h.ctx()).outcome)
  end)
  it("does not count a JSON array's trailing nulls in #, since they read as nil", function()
    local path, dir = h.rule_file([[
local r = {}
function r.suspend(sub, event, ctx)
  local ops, tags = sub.allowedCustomerOperations, sub.tags
  if #ops ~= 2 or ops[#ops] == nil or ops[3] ~= nil then return nil, "ops length " .. #ops end
  if #tags ~= 0 then return nil, "tags length " .. #tags end
end
return r
]])
    local rule = h.load_rule(path)
    h.remove_dir(dir)
    local cjson = require("cjson")
    local plain = cjson.decode(cjson.encode(require("saas.sandbox").plain(h.subscription())))
    plain.allowedCustomerOperations = { "Read", "Update", cjson.null }
    plain.tags = { cjson.null, cjson.null }
    local sub = cjson.encode(plain)
    local res = h.call(rule, "suspend", sub, h.event("Suspend", h.subscription()), h.ctx())
    assert.are.equal("ok", res.outcome, h.describe(res))
  end)
  -- sub and the argument are read-only views of the decoded JSON, normalised as they are read
  -- (nothing is walked or copied up front): every route gives what an eager walk gave.
  it("gives the same view of the decoded JSON through indexing, pairs, next, ipairs and ctx.json.encode", function()
    local path, dir = h.rule_file([[
local r = {}
function r.change_quantity(sub, change, ctx)
  local bad = {}
  local function want(ok, what) if not ok then bad[#bad + 1] = what end end
  want(change.purchaseToken == nil and change.subscription.purchaseToken == nil, "null read as a value")
  want(math.type(change.quantity) == "integer" and math.type(change.subscription.quantity) == "integer",
    "whole number read as a float")
  want(change.subscription == change.subscription and sub.term == sub.term,
    "a nested table is not the same proxy twice")
  for k, v in pairs(change) do
    want(k ~= "purchaseToken", "pairs yields a null field")
    if type(v) == "number" then want(math.type(v) == "integer", "pairs yields a float " .. k) end
    if type(v) == "table" then want(not pcall(function() v.x = 1 end), "pairs yields a writable table " .. k) end
  end
  local k, v = next(change.subscription)
  while k do
    want(k ~= "purchaseToken", "next yields a null field")
    if type(v) == "table" then want(not pcall(function() v.x = 1 end), "next yields a writable table " .. k) end
    k, v = next(change.subscription, k)
  end
  for _, op in ipairs(sub.allowedCustomerOperations) do want(type(op) == "string", "ipairs") end
  local text = ctx.json.encode(change)
  want(not text:find("null", 1, true), "json.encode writes a null field: " .. text)
  want(text:find('"quantity":' .. change.quantity .. "[,}]") ~= nil, "json.encode writes a float: " .. text)
  if #bad > 0 then return { accept = false, reason = table.concat(bad, "; ") } end
  return { accept = true }
end
return r
]])
    local rule = h.load_rule(path)
    h.remove_dir(dir)
    local sub = h.subscription()
    local change = h.event("ChangeQuantity", sub)
    change.quantity = 7
    local res = h.call(rule, "change_quantity", sub, change, h.ctx())
    assert.are.equal("ok", res.outcome)
    assert.are.equal(nil, res.reason)
    assert.is_true(res.accept)
  end)
end)
