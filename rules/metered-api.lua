-- Offer metered-api: a flat monthly fee per plan that includes a number of API calls; only the
-- calls above that are sent to Microsoft as metered usage (contract §7: emit only usage above
-- what the base fee includes). The ISV's systems report every call (POST /admin/usage); this
-- rule keeps the month's running total in ctx.store and bills the part above the plan's
-- allowance. The month is the subscription's current term, so a renewal starts a new count.
local rule = {}

local INCLUDED_CALLS = { basic = 10000, pro = 100000, unlimited = math.huge }

local function used_key(sub)
  local term = sub.term and sub.term.startDate or sub.created or "no-term"
  return "api-calls:" .. sub.id .. ":" .. term
end

function rule.usage(sub, usage, ctx)
  if usage.dimension ~= "api-calls" then
    return nil, "offer metered-api meters api-calls only, not '" .. usage.dimension .. "'"
  end
  local included = INCLUDED_CALLS[sub.planId]
  if included == nil then
    return nil, "no allowance is defined for plan '" .. tostring(sub.planId) .. "'"
  end
  local key = used_key(sub)
  local before = tonumber(ctx.store.get(key) or "0") or 0
  local after = before + usage.quantity
  ctx.store.put(key, after)
  -- bill the part of this report that lies above the allowance
  local bill = math.max(0, after - math.max(before, included))
  if bill > 0 and before <= included then
    ctx.log.info("allowance used up; billing overage", { sub = sub.id, plan = sub.planId, included = included })
  end
  return { bill = bill }
end

return rule
