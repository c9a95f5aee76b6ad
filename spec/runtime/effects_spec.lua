-- ctx.meter and ctx.timer in saas.testing behave like the daemon: effects count only when the
-- call succeeds, timers fire once through the timer handler when the fake clock passes them.
local h = require("helpers")

local function rule(text)
  local path = h.rule_file(text)
  return h.load_rule(path)
end

describe("ctx.meter", function()
  local r = rule([[
local r = {}
function r.provision(sub, ctx)
  ctx.meter("setup-fee", 1)
  if sub.planId == "broken" then error("provisioning failed after metering") end
  if sub.planId == "refuse" then return { action = "reject", message = "no" } end
  return { action = "activate" }
end
function r.renew(sub, event, ctx)
  ctx.meter("renewals", 2.5)
  return nil, "the ISV's system is down"
end
return r
]])

  it("records usage of a handler that succeeds", function()
    local sub = h.subscription()
    local ctx, fake = h.ctx()
    assert.activated(h.call(r, "provision", sub, ctx))
    assert.are.equal(1, h.metered(fake, "setup-fee", sub))
    assert.are.equal(sub.id, fake.meter[1].sub)
  end)

  it("drops usage of a handler that raises after metering", function()
    local ctx, fake = h.ctx()
    assert.rule_failed(h.call(r, "provision", h.subscription({ planId = "broken" }), ctx), "error", "failed after")
    assert.are.equal(0, #fake.meter)
  end)

  it("drops usage of a handler that returns nil, err after metering", function()
    local sub = h.subscription()
    local ctx, fake = h.ctx()
    assert.rule_failed(h.call(r, "renew", sub, h.event("Renew", sub), ctx), "error", "down")
    assert.are.equal(0, h.metered(fake, "renewals"))
  end)

  it("refuses a quantity that is not a positive number and a bad dimension", function()
    local bad = rule([[
local r = {}
function r.renew(sub, event, ctx) ctx.meter(event.planId, event.quantity) end
return r
]])
    local sub = h.subscription()
    local ctx = h.ctx()
    assert.rule_failed(h.call(bad, "renew", sub, h.event("Renew", sub, { quantity = 0 }), ctx),
      "error", "greater than 0")
    assert.rule_failed(h.call(bad, "renew", sub, h.event("Renew", sub, { planId = "a b", quantity = 1 }), ctx),
      "error", "dimension")
  end)
end)

describe("ctx.timer and the fake clock", function()
  local r = rule([[
local r = {}
function r.provision(sub, ctx)
  ctx.timer.after(3600, "reminder", { n = 1 })
  ctx.timer.at("2026-01-03T00:00:00Z", "deadline")
  return { action = "activate" }
end
function r.suspend(sub, event, ctx)
  ctx.timer.cancel("deadline")
  ctx.timer.after(60, "oops")
  return nil, "retry"
end
function r.timer(sub, name, data, ctx)
  ctx.store.put("fired:" .. name, (tonumber(ctx.store.get("fired:" .. name)) or 0) + 1)
  if data and data.n then ctx.store.put("n", data.n) end
end
return r
]])

  it("fires each timer once, in time order, after its time", function()
    local sub = h.subscription()
    local ctx, fake = h.ctx({ now = "2026-01-01T00:00:00Z" })
    assert.activated(h.call(r, "provision", sub, ctx))
    assert.are.same({}, fake.advance(3599, r, sub))
    local fired = fake.advance(86400 * 3, r, sub)
    assert.are.equal(2, #fired)
    assert.are.equal("reminder", fired[1].name)
    assert.are.equal("deadline", fired[2].name)
    assert.are.equal("1", fake.store["fired:reminder"])
    assert.are.equal("1", fake.store["n"])
    assert.are.same({}, fake.advance(86400 * 30, r, sub))
    assert.are.equal("1", fake.store["fired:deadline"])
  end)

  it("keeps timers of a failed call out (set and cancel alike)", function()
    local sub = h.subscription()
    local ctx, fake = h.ctx({ now = "2026-01-01T00:00:00Z" })
    assert.activated(h.call(r, "provision", sub, ctx))
    assert.rule_failed(h.call(r, "suspend", sub, h.event("Suspend", sub), ctx), "error", "retry")
    assert.is_nil(fake.timers[sub.id].oops)
    assert.is_not_nil(fake.timers[sub.id].deadline)
  end)

  it("refuses a bad timer name", function()
    local bad = rule([[
local r = {}
function r.renew(sub, event, ctx) ctx.timer.after(1, "") end
return r
]])
    local sub = h.subscription()
    assert.rule_failed(h.call(bad, "renew", sub, h.event("Renew", sub), h.ctx()), "error", "timer name")
  end)
end)
