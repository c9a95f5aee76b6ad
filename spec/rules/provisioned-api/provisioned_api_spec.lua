-- Offer provisioned-api: provisioning goes through the ISV's API; pending when it is down.
local h = require("helpers")

local API = "http://127.0.0.1:7071/isv/v1"

describe("provisioned-api", function()
  local rule = h.load_rule("rules/provisioned-api.lua")
  local sub = h.subscription({ offerId = "provisioned-api", planId = "team", quantity = 4 })

  local function ctx_with(routes)
    return h.ctx({ http = routes, http_allow = { "127.0.0.1" } })
  end

  it("activates and redirects to the tenant the API created", function()
    local ctx, fake = ctx_with({
      ["POST " .. API .. "/tenants"] = { status = 201, body = '{"url":"https://app.isv.example/t/42"}' },
    })
    local res = h.call(rule, "provision", sub, nil, ctx)
    assert.activated(res)
    assert.are.equal("https://app.isv.example/t/42", res.redirect)
    local sent = ctx.json.decode(fake.http.calls[1].body)
    assert.are.equal(sub.id, sent.subscriptionId)
    assert.are.equal(4, sent.seats)
    assert.are.equal(sub.beneficiary.tenantId, sent.tenantId)
  end)

  it("activates when the tenant already exists (a retried landing page)", function()
    local ctx = ctx_with({ ["POST " .. API .. "/tenants"] = { status = 409, body = "{}" } })
    assert.activated(h.call(rule, "provision", sub, nil, ctx))
  end)

  it("goes pending when the API is down", function()
    local ctx, fake = ctx_with({ ["POST " .. API .. "/tenants"] = "timeout" })
    assert.pending(h.call(rule, "provision", sub, nil, ctx), "being set up")
    assert.are.equal("provisioning API unavailable", fake.log[1].msg)
  end)

  it("goes pending when the API answers 503", function()
    local ctx = ctx_with({ ["POST " .. API .. "/tenants"] = { status = 503, body = "busy" } })
    assert.pending(h.call(rule, "provision", sub, nil, ctx))
  end)

  it("goes pending when the API's host is not allowed (misconfiguration is not a rejection)", function()
    local ctx = h.ctx({ http_allow = { "isv.example" } })
    assert.pending(h.call(rule, "provision", sub, nil, ctx))
  end)

  it("rejects with the API's message when it refuses the tenant", function()
    local ctx = ctx_with({
      ["POST " .. API .. "/tenants"] = { status = 422, body = '{"message":"This tenant is blocked."}' },
    })
    assert.refused(h.call(rule, "provision", sub, nil, ctx), "blocked")
  end)

  it("asks for a retry when suspending fails, and succeeds once the API is back", function()
    local url = "POST " .. API .. "/tenants/" .. sub.id .. "/suspend"
    local down = h.call(rule, "suspend", sub, h.event("Suspend", sub), ctx_with({ [url] = "connection refused" }))
    assert.rule_failed(down, "error", "connection refused")
    local up = h.call(rule, "suspend", sub, h.event("Suspend", sub), ctx_with({ [url] = { status = 204 } }))
    assert.are.equal("ok", up.outcome)
  end)

  it("treats a tenant already gone as unsubscribed", function()
    local url = "DELETE " .. API .. "/tenants/" .. sub.id
    local ctx = ctx_with({ [url] = { status = 404 } })
    local res = h.call(rule, "unsubscribe", sub, h.event("Unsubscribe", sub), ctx)
    assert.are.equal("ok", res.outcome)
  end)

  it("reinstates through the API, and retries when it fails", function()
    local url = "POST " .. API .. "/tenants/" .. sub.id .. "/resume"
    local event = h.event("Reinstate", sub)
    assert.accepted(h.call(rule, "reinstate", sub, event, ctx_with({ [url] = { status = 200 } })))
    local res = h.call(rule, "reinstate", sub, event, ctx_with({ [url] = { status = 500 } }))
    assert.rule_failed(res, "error", "answered 500")
  end)
end)
