-- The default rule: serves every offer that has no rules/<offerId>.lua of its own.
-- It accepts everything: provision activates at once, plan and seat changes are accepted,
-- reinstatements are accepted, reported usage is billed as reported, and
-- suspend/unsubscribe/renew need nothing from the ISV.
-- (An empty table would do the same, since missing handlers get these defaults; spelling
-- them out documents the contract.)
local rule = {}

function rule.provision(_sub, _ctx)
  return { action = "activate" }
end

function rule.change_plan(_sub, _change, _ctx)
  return { accept = true }
end

function rule.change_quantity(_sub, _change, _ctx)
  return { accept = true }
end

function rule.reinstate(_sub, _event, _ctx)
  return { accept = true }
end

function rule.usage(_sub, usage, _ctx)
  return { bill = usage.quantity }
end

return rule
