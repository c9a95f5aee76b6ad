-- Offer "seats-pro": per-seat plans. A customer may add seats at any time, but may not go
-- below the seats actually in use in the ISV's app, so nobody loses access silently.
--
-- ctx.store keys (this offer's space):
--   in_use:<subscription id>  seats assigned in the ISV's app. provision starts it at 1 (the
--                             purchaser); the ISV's user management keeps it current.
--   seats:<subscription id>   seats purchased, as last accepted.
--   company:<subscription id> the company name the buyer gave on the confirmation page.
local rule = {}

-- The confirmation page asks for the company name (required) and shows the offer's brand.
rule.landing = {
  fields = {
    { name = "company", label = "Company name", required = true, max = 120,
      help = "As it should appear on your users' invitations." },
  },
  brand = { product = "Contoso Seats Pro", color = "#0b5cad", support = "support@contoso.example" },
}

local function key(kind, sub)
  return kind .. ":" .. sub.id
end

local function seats_in_use(sub, ctx)
  return tonumber(ctx.store.get(key("in_use", sub)) or "0") or 0
end

function rule.provision(sub, ctx, landing)
  if (sub.quantity or 0) < 1 then
    return { action = "reject", message = "This offer is sold per seat; please buy at least one seat." }
  end
  if ctx.store.get(key("in_use", sub)) == nil then
    ctx.store.put(key("in_use", sub), 1)
  end
  ctx.store.put(key("seats", sub), sub.quantity)
  if landing and landing.fields.company then
    ctx.store.put(key("company", sub), landing.fields.company)
  end
  return { action = "activate", message = string.format("%d seats are ready.", sub.quantity) }
end

function rule.change_quantity(sub, change, ctx)
  local wanted = change.quantity
  if type(wanted) ~= "number" or wanted < 1 then
    return { accept = false, reason = "the seat count must be at least 1" }
  end
  local in_use = seats_in_use(sub, ctx)
  if wanted < in_use then
    ctx.log.info("seat reduction refused", { wanted = tostring(wanted), in_use = tostring(in_use) })
    return {
      accept = false,
      reason = string.format("%d seats are in use; remove users before going down to %d seats",
        in_use, wanted),
    }
  end
  ctx.store.put(key("seats", sub), wanted)
  return { accept = true }
end

function rule.unsubscribe(sub, _event, ctx)
  ctx.store.delete(key("seats", sub))
  ctx.store.delete(key("in_use", sub))
end

return rule
