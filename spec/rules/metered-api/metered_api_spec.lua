-- Offer metered-api: only API calls above the plan's monthly allowance are billed.
local h = require("helpers")

describe("metered-api", function()
  local rule = h.load_rule("rules/metered-api.lua")

  local function sub_on(plan, term_start)
    return h.subscription({ id = "sub-m", offerId = "metered-api", planId = plan,
      term = { termUnit = "P1M", startDate = term_start or "2026-01-01T00:00:00Z", endDate = "2026-01-31T00:00:00Z" } })
  end

  it("bills nothing while the month stays inside the allowance", function()
    local sub = sub_on("basic")
    local ctx, fake = h.ctx()
    assert.billed(h.call(rule, "usage", sub, h.usage("api-calls", 9000), ctx), 0)
    assert.are.equal("9000", fake.store["api-calls:sub-m:2026-01-01T00:00:00Z"])
  end)

  it("bills only the part of a report that crosses the allowance", function()
    local sub = sub_on("basic")
    local ctx = h.ctx({ store = { ["api-calls:sub-m:2026-01-01T00:00:00Z"] = 9000 } })
    assert.billed(h.call(rule, "usage", sub, h.usage("api-calls", 1500), ctx), 500)
  end)

  it("bills every call once the allowance is used up", function()
    local sub = sub_on("basic")
    local ctx = h.ctx({ store = { ["api-calls:sub-m:2026-01-01T00:00:00Z"] = 12000 } })
    assert.billed(h.call(rule, "usage", sub, h.usage("api-calls", 250), ctx), 250)
  end)

  it("starts a new allowance with a new term", function()
    local ctx = h.ctx({ store = { ["api-calls:sub-m:2026-01-01T00:00:00Z"] = 12000 } })
    assert.billed(h.call(rule, "usage", sub_on("basic", "2026-02-01T00:00:00Z"), h.usage("api-calls", 250), ctx), 0)
  end)

  it("never bills the unlimited plan", function()
    assert.billed(h.call(rule, "usage", sub_on("unlimited"), h.usage("api-calls", 1e9), h.ctx()), 0)
  end)

  it("refuses a dimension the offer does not meter, and counts nothing", function()
    local ctx, fake = h.ctx()
    local res = h.call(rule, "usage", sub_on("pro"), h.usage("gpu-hours", 3), ctx)
    assert.rule_failed(res, "error", "meters api%-calls only")
    assert.is_nil(next(fake.store))
  end)

  it("refuses a plan without an allowance instead of guessing", function()
    assert.rule_failed(h.call(rule, "usage", sub_on("enterprise"), h.usage("api-calls", 1), h.ctx()), "error",
      "no allowance")
  end)
end)
