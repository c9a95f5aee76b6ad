-- wrk script (wrk embeds LuaJIT: Lua 5.1 syntax): POST /webhook with distinct operation ids
-- and a valid bearer minted by the emulator. tests/bench/run.sh sets SAASD_BENCH_TOKEN.
local token = os.getenv("SAASD_BENCH_TOKEN") or "none"
local sub = os.getenv("SAASD_BENCH_SUB") or "00000000-0000-4000-8000-000000000000"
local counter = 0
local thread_tag = 0
local next_tag = 0

function setup(thread)
  next_tag = next_tag + 1
  thread:set("tag", next_tag)
end

function init(args)
  thread_tag = tag or math.random(1, 65535)
end

function request()
  counter = counter + 1
  local op = string.format("%08x-%04x-4000-8000-%012x", thread_tag, math.random(0, 65535), counter)
  local body = '{"id":"' .. op .. '","activityId":"' .. op .. '","subscriptionId":"' .. sub ..
    '","publisherId":"contoso","offerId":"bench-offer","planId":"gold","quantity":5,' ..
    '"timeStamp":"2026-11-24T00:00:00Z","action":"Renew","status":"Succeeded",' ..
    '"operationRequestSource":"Azure","subscription":null,"purchaseToken":null}'
  return wrk.format("POST", "/webhook", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end
