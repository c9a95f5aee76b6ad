-- rules/default.lua serves every offer without its own file: it accepts everything.
local h = require("helpers")

describe("the default rule", function()
  local rule = h.load_rule("rules/default.lua")
  local sub = h.subscription()

  it("activates on the landing page", function()
    assert.activated(h.call(rule, "provision", sub, nil, h.ctx()))
  end)
  it("accepts plan and seat changes", function()
    assert.accepted(h.call(rule, "change_plan", sub, h.change_plan(sub, "gold"), h.ctx()))
    assert.accepted(h.call(rule, "change_quantity", sub, h.change_quantity(sub, 1), h.ctx()))
  end)
  it("bills reported usage as reported", function()
    assert.billed(h.call(rule, "usage", sub, h.usage("api-calls", 12.5), h.ctx()), 12.5)
  end)
  it("accepts a reinstatement and needs nothing for the notifications", function()
    assert.accepted(h.call(rule, "reinstate", sub, h.event("Reinstate", sub), h.ctx()))
    for _, action in ipairs({ "suspend", "unsubscribe", "renew" }) do
      local res = h.call(rule, action, sub, h.event("Suspend", sub), h.ctx())
      assert.are.equal("default", res.outcome)
    end
  end)
end)
