-- Offer seats-pro: a seat reduction below the seats in use is refused.
local h = require("helpers")

describe("seats-pro", function()
  local rule = h.load_rule("rules/seats-pro.lua")

  local function with_in_use(sub, n)
    return h.ctx({ store = { ["in_use:" .. sub.id] = n, ["seats:" .. sub.id] = sub.quantity } })
  end

  it("refuses a seat reduction below the seats in use", function()
    local sub = h.subscription({ offerId = "seats-pro", quantity = 10 })
    local ctx = with_in_use(sub, 7)
    local res = h.call(rule, "change_quantity", sub, h.change_quantity(sub, 5), ctx)
    assert.rejected(res, "7 seats are in use")
  end)

  it("accepts a reduction down to exactly the seats in use, and records it", function()
    local sub = h.subscription({ offerId = "seats-pro", quantity = 10 })
    local ctx, fake = with_in_use(sub, 7)
    assert.accepted(h.call(rule, "change_quantity", sub, h.change_quantity(sub, 7), ctx))
    assert.are.equal("7", fake.store["seats:" .. sub.id])
  end)

  it("accepts more seats at any time", function()
    local sub = h.subscription({ offerId = "seats-pro", quantity = 10 })
    assert.accepted(h.call(rule, "change_quantity", sub, h.change_quantity(sub, 50), with_in_use(sub, 10)))
  end)

  it("refuses zero seats", function()
    local sub = h.subscription({ offerId = "seats-pro", quantity = 10 })
    assert.rejected(h.call(rule, "change_quantity", sub, h.change_quantity(sub, 0), with_in_use(sub, 0)),
      "at least 1")
  end)

  it("activates a purchase and counts the purchaser as the first seat in use", function()
    local sub = h.subscription({ offerId = "seats-pro", quantity = 3 })
    local ctx, fake = h.ctx()
    assert.activated(h.call(rule, "provision", sub, nil, ctx))
    assert.are.equal("1", fake.store["in_use:" .. sub.id])
    assert.are.equal("3", fake.store["seats:" .. sub.id])
  end)

  it("keeps the seats in use when the landing page is opened again", function()
    local sub = h.subscription({ offerId = "seats-pro", quantity = 3 })
    local ctx, fake = with_in_use(sub, 3)
    assert.activated(h.call(rule, "provision", sub, nil, ctx))
    assert.are.equal("3", fake.store["in_use:" .. sub.id])
  end)

  it("refuses a purchase without seats", function()
    local sub = h.subscription({ offerId = "seats-pro", quantity = 0 })
    assert.refused(h.call(rule, "provision", sub, nil, h.ctx()), "at least one seat")
  end)

  it("forgets the subscription's seats when it is unsubscribed", function()
    local sub = h.subscription({ offerId = "seats-pro", quantity = 3 })
    local ctx, fake = with_in_use(sub, 2)
    local res = h.call(rule, "unsubscribe", sub, h.event("Unsubscribe", sub), ctx)
    assert.are.equal("ok", res.outcome)
    assert.is_nil(fake.store["in_use:" .. sub.id])
  end)
end)

describe("seats-pro on the landing page", function()
  local rule = h.load_rule("rules/seats-pro.lua")

  it("asks for the company name and keeps what the buyer answered", function()
    local fields = rule.handlers.landing.fields
    assert.are.equal("company", fields[1].name)
    assert.is_true(fields[1].required)
    local sub = h.subscription({ offerId = "seats-pro", quantity = 3 })
    local ctx, fake = h.ctx()
    assert.activated(h.call(rule, "provision", sub, h.landing(sub, { fields = { company = "Fabrikam" } }), ctx))
    assert.are.equal("Fabrikam", fake.store["company:" .. sub.id])
  end)
end)
