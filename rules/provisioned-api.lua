-- Offer "provisioned-api": the customer's tenant is created by the ISV's provisioning API.
-- provision calls it through ctx.http; when the API is down (timeout, refused connection,
-- 5xx) the purchase goes "pending" and an operator activates it later with the admin
-- command, instead of activating billing for an account that does not exist yet.
-- Suspend, reinstate and unsubscribe are passed on to the same API; if it is down the handler
-- returns nil, err and the daemon retries with backoff.
--
-- The API's host must be in rules.http_allow (examples/saasd.conf allows 127.0.0.1).
local rule = {}

local API = "http://127.0.0.1:7071/isv/v1"

local function call(ctx, method, path, body)
  local resp, err = ctx.http.request({
    method = method,
    url = API .. path,
    headers = { ["Content-Type"] = "application/json", ["X-Request-Id"] = ctx.crypto.uuid() },
    body = body and ctx.json.encode(body) or nil,
    timeout_ms = 2000,
  })
  if not resp then
    return nil, err
  end
  return resp
end

function rule.provision(sub, ctx)
  local resp, err = call(ctx, "POST", "/tenants", {
    subscriptionId = sub.id,
    tenantId = sub.beneficiary and sub.beneficiary.tenantId,
    email = sub.beneficiary and sub.beneficiary.emailId,
    plan = sub.planId,
    seats = sub.quantity,
  })
  if not resp or resp.status >= 500 then
    ctx.log.warn("provisioning API unavailable", { error = err or ("status " .. resp.status) })
    return {
      action = "pending",
      message = "Your account is being set up. We will email you as soon as it is ready.",
    }
  end
  if resp.status == 200 or resp.status == 201 or resp.status == 409 then
    local body = ctx.json.decode(resp.body) or {}
    return {
      action = "activate",
      message = "Your account is ready.",
      redirect = type(body.url) == "string" and body.url or nil,
    }
  end
  local body = ctx.json.decode(resp.body) or {}
  return {
    action = "reject",
    message = type(body.message) == "string" and body.message
      or "We could not create your account. Please contact support.",
  }
end

-- Side effects: anything but a 2xx (or 404 for deletes) means "try again later".
local function effect(ctx, method, path, ok_statuses)
  local resp, err = call(ctx, method, path)
  if not resp then
    return nil, err
  end
  if ok_statuses[resp.status] or (resp.status >= 200 and resp.status < 300) then
    return true
  end
  return nil, "provisioning API answered " .. resp.status
end

function rule.suspend(sub, _event, ctx)
  return effect(ctx, "POST", "/tenants/" .. sub.id .. "/suspend", {})
end

function rule.reinstate(sub, _event, ctx)
  local ok, err = effect(ctx, "POST", "/tenants/" .. sub.id .. "/resume", {})
  if not ok then
    return nil, err
  end
  return { accept = true }
end

function rule.unsubscribe(sub, _event, ctx)
  return effect(ctx, "DELETE", "/tenants/" .. sub.id, { [404] = true })
end

return rule
