-- wrk script (wrk embeds LuaJIT: Lua 5.1 syntax): POST /webhook with distinct operation ids
-- and a valid bearer minted by the emulator. tests/bench/run.sh sets SAASD_BENCH_TOKEN.
-- Cold-burst mode: SAASD_BENCH_TOKENS names a file of tokens, one a line; the two wrk threads
-- take alternate lines, each token is sent once, and a connection idles once they are used up.
local token = os.getenv("SAASD_BENCH_TOKEN") or "none"
local sub = os.getenv("SAASD_BENCH_SUB") or "00000000-0000-4000-8000-000000000000"
local token_file = os.getenv("SAASD_BENCH_TOKENS")
local counter = 0
local thread_tag = 0
local next_tag = 0
local tokens = nil
local next_token = 0

function setup(thread)
  next_tag = next_tag + 1
  thread:set("tag", next_tag)
end

function init(args)
  thread_tag = tag or math.random(1, 65535)
  if token_file then
    tokens = {}
    local i = 0
    for line in io.lines(token_file) do
      if i % 2 == (thread_tag - 1) % 2 then tokens[#tokens + 1] = line end
      i = i + 1
    end
  end
end

-- Only in cold-burst mode: with a delay() function wrk arms a timer for every request, even
-- for a 0 ms delay, which costs wrk CPU (on the cores it shares with the server) and latency.
-- wrk calls delay() before each request() of a connection, but several connections may pass
-- delay() before any of them builds its request: delay() therefore reserves the token that
-- connection's request() will take, so no token is sent twice.
local reserved = 0
if token_file then
  function delay()
    if tokens and reserved >= #tokens then return 600000 end
    reserved = reserved + 1
    return 0
  end
end

function request()
  counter = counter + 1
  local bearer = token
  if tokens then
    next_token = next_token + 1
    bearer = tokens[math.min(next_token, #tokens)]
  end
  local op = string.format("%08x-%04x-4000-8000-%012x", thread_tag, math.random(0, 65535), counter)
  local body = '{"id":"' .. op .. '","activityId":"' .. op .. '","subscriptionId":"' .. sub ..
    '","publisherId":"contoso","offerId":"bench-offer","planId":"gold","quantity":5,' ..
    '"timeStamp":"2026-11-24T00:00:00Z","action":"Renew","status":"Succeeded",' ..
    '"operationRequestSource":"Azure","subscription":null,"purchaseToken":null}'
  return wrk.format("POST", "/webhook", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. bearer,
  }, body)
end
