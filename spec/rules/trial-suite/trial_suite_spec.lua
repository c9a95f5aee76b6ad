local t = require("helpers")

describe("trial-suite", function()
  local rule = t.load_rule("rules/trial-suite.lua")
  local API = "http://127.0.0.1:7071/isv/v1"

  local function trial()
    return t.subscription({ offerId = "trial-suite", isFreeTrial = true,
      term = { termUnit = "P1M", startDate = "2026-01-01T00:00:00Z", endDate = "2026-01-31T00:00:00Z" } })
  end

  it("bills the onboarding fee once, even when provision runs again", function()
    local sub = trial()
    local ctx, fake = t.ctx({ now = "2026-01-01T00:00:00Z" })
    assert.activated(t.call(rule, "provision", sub, ctx))
    assert.activated(t.call(rule, "provision", sub, ctx))
    assert.are.equal(1, t.metered(fake, "onboarding", sub))
  end)

  it("reminds a trial customer 3 days before the term ends, once", function()
    local sub = trial()
    local ctx, fake = t.ctx({ now = "2026-01-01T00:00:00Z",
      http = { ["POST " .. API .. "/reminders"] = { status = 202 } } })
    assert.activated(t.call(rule, "provision", sub, ctx))
    assert.are.same({}, fake.advance(26 * 86400, rule, sub)) -- Jan 27: not yet
    local fired = fake.advance(2 * 86400, rule, sub)
    assert.are.equal(1, #fired)
    assert.are.equal("trial-reminder", fired[1].name)
    assert.are.equal(ctx.parse_time("2026-01-28T00:00:00Z"), fired[1].at)
    assert.are.equal("trial-reminder:" .. sub.id, fake.http.calls[1].headers["Idempotency-Key"])
    assert.are.same({}, fake.advance(30 * 86400, rule, sub))
    assert.are.equal(1, #fake.http.calls)
  end)

  it("sets no reminder for a paid subscription", function()
    local sub = t.subscription({ offerId = "trial-suite", isFreeTrial = false })
    local ctx, fake = t.ctx()
    assert.activated(t.call(rule, "provision", sub, ctx))
    assert.is_nil((fake.timers[sub.id] or {})["trial-reminder"])
  end)

  it("deletes the data only after the grace period following a suspension", function()
    local sub = t.subscription({ offerId = "trial-suite" })
    local ctx, fake = t.ctx({ now = "2026-02-01T00:00:00Z",
      http = { ["DELETE " .. API .. "/tenants/" .. sub.id] = { status = 204 } } })
    assert.activated(t.call(rule, "provision", sub, ctx))
    assert.is_true(t.call(rule, "suspend", sub, t.event("Suspend", sub), ctx).outcome == "ok")
    assert.are.same({}, fake.advance(13 * 86400, rule, sub))
    assert.are.equal(0, #fake.http.calls)
    local fired = fake.advance(2 * 86400, rule, sub)
    assert.are.equal("purge", fired[1].name)
    assert.are.equal("ok", fired[1].result.outcome)
    assert.are.equal("DELETE", fake.http.calls[1].method)
    assert.is_nil(fake.store["onboarded:" .. sub.id])
  end)

  it("keeps the data when the customer is reinstated within the grace period", function()
    local sub = t.subscription({ offerId = "trial-suite" })
    local ctx, fake = t.ctx({ now = "2026-02-01T00:00:00Z" })
    assert.activated(t.call(rule, "provision", sub, ctx))
    t.call(rule, "suspend", sub, t.event("Suspend", sub), ctx)
    fake.advance(5 * 86400, rule, sub)
    assert.accepted(t.call(rule, "reinstate", sub, t.event("Reinstate", sub), ctx))
    assert.are.same({}, fake.advance(60 * 86400, rule, sub))
    assert.are.equal(0, #fake.http.calls)
  end)

  it("retries the purge while the ISV's API is down", function()
    local sub = t.subscription({ offerId = "trial-suite" })
    local ctx, fake = t.ctx({ now = "2026-02-01T00:00:00Z",
      http = { ["DELETE " .. API .. "/tenants/" .. sub.id] = { status = 503 } } })
    t.call(rule, "suspend", sub, t.event("Suspend", sub), ctx)
    local fired = fake.advance(15 * 86400, rule, sub)
    assert.rule_failed(fired[1].result, "error", "503")
    assert.is_not_nil(fake.timers[sub.id].purge) -- still there: fires again later
  end)
end)
