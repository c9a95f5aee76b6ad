-- Specs of rules/acme-analytics.lua, run with `saasd-busted` (or plain `busted`, see .busted)
-- from the top of this repository.
local t = require("saas.testing")

describe("acme-analytics", function()
  local rule = t.load_rule("rules/acme-analytics.lua")

  it("activates a known plan and creates the workspace record", function()
    local sub = t.subscription({ offerId = "acme-analytics", planId = "team" })
    local ctx, fake = t.ctx()
    assert.activated(t.call(rule, "provision", sub, ctx))
    assert.are.equal("0", fake.store["dashboards:" .. sub.id])
  end)

  it("refuses an unknown plan on the landing page", function()
    local sub = t.subscription({ offerId = "acme-analytics", planId = "gold" })
    assert.refused(t.call(rule, "provision", sub, t.ctx()), "Unknown plan gold")
  end)

  it("refuses a downgrade below the dashboards in use", function()
    local sub = t.subscription({ offerId = "acme-analytics", planId = "team" })
    local ctx = t.ctx({ store = { ["dashboards:" .. sub.id] = 12 } })
    assert.rejected(t.call(rule, "change_plan", sub, t.change_plan(sub, "starter"), ctx),
      "12 dashboards exist")
  end)

  it("accepts an upgrade", function()
    local sub = t.subscription({ offerId = "acme-analytics", planId = "starter" })
    local ctx = t.ctx({ store = { ["dashboards:" .. sub.id] = 5 } })
    assert.accepted(t.call(rule, "change_plan", sub, t.change_plan(sub, "enterprise"), ctx))
  end)

  it("forgets the workspace on unsubscribe", function()
    local sub = t.subscription({ offerId = "acme-analytics" })
    local ctx, fake = t.ctx({ store = { ["dashboards:" .. sub.id] = 3 } })
    assert.are.equal("ok", t.call(rule, "unsubscribe", sub, t.event("Unsubscribe", sub), ctx).outcome)
    assert.is_nil(fake.store["dashboards:" .. sub.id])
  end)
end)
