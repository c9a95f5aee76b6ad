-- Offer acme-analytics: dashboards sold per plan. Provisioning creates the workspace record;
-- a downgrade to "starter" is refused while the workspace keeps more dashboards than the
-- plan allows; unsubscribing forgets the workspace.
local rule = {}

local DASHBOARDS = { starter = 5, team = 50, enterprise = 1000 }

local function key(sub) return "dashboards:" .. sub.id end

function rule.provision(sub, ctx)
  if not DASHBOARDS[sub.planId] then
    return { action = "reject", message = "Unknown plan " .. tostring(sub.planId) .. "." }
  end
  if ctx.store.get(key(sub)) == nil then
    ctx.store.put(key(sub), 0)
  end
  ctx.log.info("workspace ready", { plan = sub.planId })
  return { action = "activate", message = "Your analytics workspace is ready." }
end

function rule.change_plan(sub, change, ctx)
  local limit = DASHBOARDS[change.planId]
  if not limit then
    return { accept = false, reason = "unknown plan " .. tostring(change.planId) }
  end
  local used = tonumber(ctx.store.get(key(sub)) or "0") or 0
  if used > limit then
    return { accept = false,
             reason = string.format("%d dashboards exist; plan %s allows %d", used, change.planId, limit) }
  end
  return { accept = true }
end

function rule.unsubscribe(sub, _event, ctx)
  ctx.store.delete(key(sub))
end

return rule
