-- t.call follows each handler's own signature, so specs read like the handlers they test.
local h = require("helpers")

local RULE = [[
local r = {}
function r.provision(sub, ctx)
  ctx.store.put("seen:" .. sub.id, sub.quantity)
  return { action = "activate", message = "hello " .. sub.id }
end
function r.change_plan(sub, change, ctx)
  ctx.store.put("plan:" .. sub.id, change.planId)
  return { accept = change.planId ~= "free", reason = "no way back to free" }
end
return r
]]

describe("t.call", function()
  local path, dir = h.rule_file(RULE)
  local rule = h.load_rule(path)
  h.remove_dir(dir)

  it("passes provision's ctx in the handler's order: t.call(rule, 'provision', sub, ctx)", function()
    local sub = h.subscription({ quantity = 3 })
    local ctx, fake = h.ctx()
    local res = h.call(rule, "provision", sub, ctx)
    assert.activated(res)
    assert.are.equal("hello " .. sub.id, res.message)
    assert.are.equal("3", fake.store["seen:" .. sub.id])
  end)

  it("still takes the older form t.call(rule, 'provision', sub, nil, ctx)", function()
    local sub = h.subscription({ quantity = 4 })
    local ctx, fake = h.ctx()
    assert.activated(h.call(rule, "provision", sub, nil, ctx))
    assert.are.equal("4", fake.store["seen:" .. sub.id])
  end)

  it("takes limits after ctx in the short provision form", function()
    local loop, ldir = h.rule_file("local r = {}\nfunction r.provision(sub, ctx)\n"
      .. "while true do end\nend\nreturn r\n")
    local looping = h.load_rule(loop)
    h.remove_dir(ldir)
    local res = h.call(looping, "provision", h.subscription(), h.ctx(), { cpu_ms = 50, memory = 8 * 1024 * 1024 })
    assert.rule_failed(res, "cpu_limit")
  end)

  it("passes a change handler its payload and then ctx", function()
    local sub = h.subscription()
    local ctx, fake = h.ctx()
    assert.rejected(h.call(rule, "change_plan", sub, h.change_plan(sub, "free"), ctx), "back to free")
    assert.are.equal("free", fake.store["plan:" .. sub.id])
  end)
end)
