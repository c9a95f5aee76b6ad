-- Offer "trial-suite": a one-month free trial, a one-time onboarding fee, and a grace period
-- after Suspend before the customer's data is deleted, all with durable timers (ctx.timer)
-- and metering from lifecycle handlers (ctx.meter) instead of a cron job of the ISV's own.
--
--   provision    bills the onboarding fee once (ctx.meter "onboarding"); for a free trial,
--                sets "trial-reminder" 3 days before the trial's term ends
--   suspend      sets "purge" GRACE_DAYS later: the data is kept meanwhile
--   reinstate    cancels "purge" (the customer paid in time)
--   unsubscribe  nothing to schedule: the daemon drops the subscription's timers
--   timer        "trial-reminder": asks the ISV's mailer to remind the customer;
--                "purge": deletes the tenant's data through the ISV's API. A failure
--                (nil, err) is retried later by the daemon; the requests carry an
--                idempotency key because a retried timer sends them again.
--
-- The API's host must be in rules.http_allow (examples/saasd.conf allows 127.0.0.1).
local rule = {}

local API = "http://127.0.0.1:7071/isv/v1"
local GRACE_DAYS = 14
local DAY = 86400

local function isv(ctx, method, path, key, body)
  local resp, err = ctx.http.request({
    method = method,
    url = API .. path,
    headers = { ["Content-Type"] = "application/json", ["Idempotency-Key"] = key },
    body = body and ctx.json.encode(body) or nil,
    timeout_ms = 2000,
  })
  if not resp then
    return nil, err
  end
  if resp.status >= 300 and resp.status ~= 404 then -- 404: already gone, which is what we wanted
    return nil, "ISV API answered " .. resp.status
  end
  return true
end

function rule.provision(sub, ctx)
  if ctx.store.get("onboarded:" .. sub.id) == nil then
    ctx.meter("onboarding", 1) -- billed once: the store flag commits with the usage
    ctx.store.put("onboarded:" .. sub.id, ctx.now())
  end
  local term_end = sub.term and sub.term.endDate and ctx.parse_time(sub.term.endDate)
  if sub.isFreeTrial and term_end then
    ctx.timer.at(math.max(ctx.now(), term_end - 3 * DAY), "trial-reminder", { term_end = sub.term.endDate })
  end
  return { action = "activate", message = sub.isFreeTrial and "Your free trial has started." or "Your suite is ready." }
end

function rule.suspend(sub, _event, ctx)
  ctx.timer.after(GRACE_DAYS * DAY, "purge")
  ctx.log.info("suspended: data kept during the grace period", { days = tostring(GRACE_DAYS) })
end

function rule.reinstate(_sub, _event, ctx)
  ctx.timer.cancel("purge")
end

function rule.timer(sub, name, data, ctx)
  if name == "trial-reminder" then
    return isv(ctx, "POST", "/reminders", "trial-reminder:" .. sub.id,
      { subscriptionId = sub.id, email = sub.beneficiary and sub.beneficiary.emailId,
        termEnd = data and data.term_end })
  elseif name == "purge" then
    local ok, err = isv(ctx, "DELETE", "/tenants/" .. sub.id, "purge:" .. sub.id)
    if not ok then
      return nil, err
    end
    ctx.store.delete("onboarded:" .. sub.id)
  end
end

return rule
