-- Offer "tiered-suite": plans in tiers. Upgrades are always accepted; a downgrade is refused
-- during the first 30 days of a term (the customer committed to the tier for that month),
-- and accepted afterwards. Plans this rule does not know are refused, so a new plan in
-- Partner Center cannot slip through without a decision.
local rule = {}

local TIERS = { basic = 1, standard = 2, premium = 3 }
local LOCK_DAYS = 30

-- Start of the current term: term.startDate, or when the subscription was created when the
-- marketplace omitted the term (it sometimes does).
local function term_start(sub, ctx)
  local start = sub.term and sub.term.startDate or sub.created
  return start and ctx.parse_time(start)
end

function rule.change_plan(sub, change, ctx)
  local from, to = TIERS[sub.planId], TIERS[change.planId]
  if not to then
    return { accept = false, reason = "unknown plan '" .. tostring(change.planId) .. "'" }
  end
  if not from or to >= from then
    return { accept = true } -- upgrade, same tier, or coming from a plan we do not rank
  end
  local start = term_start(sub, ctx)
  if not start then
    return { accept = true } -- no term information: do not block the customer
  end
  local days = ctx.days_between(start, ctx.now())
  if days < LOCK_DAYS then
    return {
      accept = false,
      reason = string.format("downgrades are possible from day %d of the term (today is day %d)",
        LOCK_DAYS, days),
    }
  end
  return { accept = true }
end

return rule
