-- ctx.notify as rules and specs see it: saas.testing records the notifications of a call, and the
-- same checks as in the daemon refuse a type that could pass for saasd's own events.
local t = require("saas.testing")

describe("ctx.notify", function()
  local sub = t.subscription({ offerId = "seats-pro", quantity = 3 })

  it("is recorded by saas.testing with its type and fields", function()
    local ctx, fake = t.ctx()
    ctx.notify("crm.seats_requested", { quantity = 5, who = sub.id })
    ctx.notify("crm.empty")
    assert.are.equal(2, #fake.notifications)
    assert.are.equal("crm.seats_requested", fake.notifications[1].type)
    assert.are.same({ quantity = 5, who = sub.id }, fake.notifications[1].data)
    assert.are.same({}, fake.notifications[2].data)
  end)

  it("refuses a type of saasd's own or a malformed one", function()
    local ctx = t.ctx()
    for _, bad in ipairs({ "subscription.activated", "usage.x", "Crm.x", "crm", "crm..x", "crm.x.", 42 }) do
      assert.has_error(function() ctx.notify(bad, {}) end)
    end
  end)

  it("refuses fields that are not a table", function()
    local ctx = t.ctx()
    assert.has_error(function() ctx.notify("crm.x", "text") end, nil)
  end)
end)
