-- wrk script: POST /webhook with distinct operation ids and a valid bearer from the emulator.
-- TOKEN and SUB come from the environment (tests/bench/run.sh sets them).
local token = os.getenv("SAASD_BENCH_TOKEN")
local sub = os.getenv("SAASD_BENCH_SUB") or "00000000-0000-4000-8000-000000000000"
local counter = 0
local thread_tag

function setup(thread)
  thread:set("tag", tostring(math.random(1, 0xfffffff)))
end

function init(args)
  thread_tag = tag or tostring(math.random(1, 0xfffffff))
end

function request()
  counter = counter + 1
  local op = string.format("%08x-%04x-4%03x-8%03x-%012x", tonumber(thread_tag) % 0xffffffff, counter % 0xffff,
    (counter >> 16) % 0xfff, 0, counter)
  local body = '{"id":"' .. op .. '","activityId":"' .. op .. '","subscriptionId":"' .. sub ..
    '","publisherId":"contoso","offerId":"bench-offer","planId":"gold","quantity":5,' ..
    '"timeStamp":"2026-11-24T00:00:00Z","action":"Renew","status":"Succeeded",' ..
    '"operationRequestSource":"Azure","subscription":null,"purchaseToken":null}'
  return wrk.format("POST", "/webhook", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 and (statuses[status] or 0) == 1 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
