-- Offer tiered-suite: no downgrade during the first 30 days of a term.
local h = require("helpers")

describe("tiered-suite", function()
  local rule = h.load_rule("rules/tiered-suite.lua")

  local function sub_started(plan, start)
    return h.subscription({ offerId = "tiered-suite", planId = plan,
      term = { termUnit = "P1Y", startDate = start, endDate = "2027-01-01T00:00:00Z" } })
  end

  local cases = {
    -- from, to, term start, today, accepted?
    { "premium", "basic", "2026-01-01T00:00:00Z", "2026-01-10T12:00:00Z", false },
    { "premium", "standard", "2026-01-01T00:00:00Z", "2026-01-30T23:59:59Z", false },
    { "premium", "standard", "2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z", true },
    { "standard", "basic", "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", true },
    { "basic", "premium", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", true },
    { "standard", "standard", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", true },
  }
  for _, c in ipairs(cases) do
    local from, to, start, today, accepted = table.unpack(c)
    it(string.format("%s %s -> %s on %s", accepted and "accepts" or "refuses", from, to, today), function()
      local sub = sub_started(from, start)
      local res = h.call(rule, "change_plan", sub, h.change_plan(sub, to), h.ctx({ now = today }))
      if accepted then
        assert.accepted(res)
      else
        assert.rejected(res, "downgrades are possible from day 30")
      end
    end)
  end

  it("refuses a plan it does not know", function()
    local sub = sub_started("basic", "2026-01-01T00:00:00Z")
    assert.rejected(h.call(rule, "change_plan", sub, h.change_plan(sub, "platinum"), h.ctx()), "unknown plan")
  end)

  it("falls back to the creation date when the marketplace omits the term", function()
    local sub = h.subscription({ offerId = "tiered-suite", planId = "premium", created = "2026-01-01T00:00:00Z" })
    sub.term = nil
    local res = h.call(rule, "change_plan", sub, h.change_plan(sub, "basic"), h.ctx({ now = "2026-01-05T00:00:00Z" }))
    assert.rejected(res, "day 4")
  end)

  it("leaves provisioning to the default (activate)", function()
    local res = h.call(rule, "provision", sub_started("basic", "2026-01-01"), nil, h.ctx())
    assert.are.equal("default", res.outcome)
    assert.activated(res)
  end)
end)
