#!/usr/bin/env bash
# "Acting on events" (issue 14, item 3), part of make bench (run.sh calls it; it also runs alone):
# BENCH_EVENTS (10 000) events are queued in the inbox of a stopped daemon by drain_load (half
# Subscribe, half ChangeQuantity waiting for an ACK, two per subscription, in order), then the
# daemon starts and its workers act on them end to end against the emulator: GET operation,
# GET subscription (the rule's view), the offer's rule (rules/seats-pro.lua, with ctx.store
# writes), PATCH for ChangeQuantity, the durable result. Printed for the default workers (2) and
# for 1 and 4; asserts nothing. The outcomes include the marketplace calls per event (in all and
# by endpoint, from saasd_upstream_requests_total). The time runs from the daemon's start to
# the last event's result. Beside events/s: CPU per event of saasd, of its rule worker
# processes (its children) and of the emulator, context switches per event of each, and
# saasd's CPU split by thread name; the store's batches per write transaction and flushes
# (transactions + explicit syncs) per event, from saasd_store_*_total.
# BENCH_DRAIN_PERF=DIR records perf profiles of the three during the drain (see below).
# BENCH_OUTBOX_WAITING=N first parks N events of other subscriptions in the outbox, due in two
# hours (build/bench/outbox_park): CPU per event must not depend on it (issue 14, item 4).
set -euo pipefail
cd "$(dirname "$0")/../.."
EVENTS=${BENCH_EVENTS:-10000}
WAITING=${BENCH_OUTBOX_WAITING:-0}
BENCH_NAME=drain . tests/bench/lib.sh
export SAASD_BENCH_SECRET=emulator-secret SAASD_BENCH_ADMIN=bench-admin-key

echo
echo "acting on events: $EVENTS events queued in the inbox (Subscribe + ChangeQuantity per subscription),"
echo "drained end to end against the emulator (GET operation, GET subscription, rule, PATCH for ChangeQuantity, durable result)"
# saasd's CPU ticks summed by thread name (inbox-0, inbox-1 … count as "inbox"): "name=ticks …"
thread_split() {
  task_ticks "$1" | awk '{sub(/-[0-9]+$/, "", $1); s[$1] += $2} END {for (n in s) if (s[n] > 0) printf "%s=%d ", n, s[n]}'
}
# context switches (voluntary + involuntary) of all of a process's threads
ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }
for workers in ${BENCH_DRAIN_WORKERS:-2 1 4}; do
  EMU_PORT=$(free_port); PORT=$(free_port); ADMIN_PORT=$(free_port)
  # no webhook URL: the emulator sends nothing (the ACK window starts at once; 1 h here)
  "$SAASD" emulate --port "$EMU_PORT" 2>"$work/emu.log" &
  EMU_PID=$!
  pids+=($EMU_PID)
  wait_http "http://127.0.0.1:$EMU_PORT/_emulator/health"
  rm -rf "$work/data"
  cat >"$work/saasd.conf" <<CONF
listen = "127.0.0.1:$PORT"
data_dir = "$work/data"
log_level = "warn"
workers = $workers
admin = { listen = "127.0.0.1:$ADMIN_PORT", key_env = "SAASD_BENCH_ADMIN" }
entra = { authority = "http://127.0.0.1:$EMU_PORT", tenant_id = "11111111-1111-4111-8111-111111111111",
          client_id = "22222222-2222-4222-8222-222222222222", secret_env = "SAASD_BENCH_SECRET" }
marketplace = { base_url = "http://127.0.0.1:$EMU_PORT", max_attempts = 1 }
rules = { dir = "$PWD/rules" }
reconcile = { interval = 0 }
CONF
  "$BUILD/bench/drain_load" "http://127.0.0.1:$EMU_PORT" "$work/data" "$EVENTS"
  [ "$WAITING" = 0 ] || "$BUILD/bench/outbox_park" "$work/data" "$WAITING"
  # what the earlier blocks of make bench and drain_load wrote goes to disk first: the kernel's
  # writeback would otherwise run during the drain and be counted against it
  sync
  e0=$(cpu_ticks "$EMU_PID"); ecs0=$(ctxsw "$EMU_PID")
  t0=$(date +%s.%N)
  "$SAASD" serve --config "$work/saasd.conf" 2>>"$work/saasd.log" &
  SAASD_PID=$!
  pids+=($SAASD_PID)
  # BENCH_DRAIN_PERF=DIR: perf record -g of saasd during the drain, into DIR/perf-saasd-wN.data
  # (after a moment: perf attached to the pid before its exec records nothing)
  if [ -n "${BENCH_DRAIN_PERF:-}" ]; then
    sleep 0.2
    perf record -q ${BENCH_DRAIN_PERF_CG:--g} ${BENCH_DRAIN_PERF_EVENT:+-e "$BENCH_DRAIN_PERF_EVENT"} -p "$SAASD_PID" -o "$BENCH_DRAIN_PERF/perf-saasd-w$workers.data" 2>/dev/null &
    PERF_PID=$!
    perf record -q ${BENCH_DRAIN_PERF_CG:--g} -p "$EMU_PID" -o "$BENCH_DRAIN_PERF/perf-emu-w$workers.data" 2>/dev/null &
    PERF_PID="$PERF_PID $!"
    kids=$(pgrep -P "$SAASD_PID" | paste -sd, -)
    if [ -n "$kids" ]; then
      perf record -q ${BENCH_DRAIN_PERF_CG:--g} -p "$kids" -o "$BENCH_DRAIN_PERF/perf-rules-w$workers.data" 2>/dev/null &
      PERF_PID="$PERF_PID $!"
    fi
  fi
  # BENCH_DRAIN_STRACE=DIR: strace -f of saasd during the drain into DIR/strace-saasd-wN.txt, and
  # its thread names (tid comm) into DIR/threads-wN.txt, for syscalls per event by thread
  if [ -n "${BENCH_DRAIN_STRACE:-}" ]; then
    sleep 0.2
    strace -f -qq -o "$BENCH_DRAIN_STRACE/strace-saasd-w$workers.txt" -p "$SAASD_PID" 2>/dev/null &
    PERF_PID="${PERF_PID:-} $!"
  fi
  # poll /metrics until every event has a result (a retry is not one: it comes back later)
  out=$(python3 - "$PORT" "$EVENTS" "$t0" "$SAASD_PID" <<'PY'
import http.client, os, re, sys, time
port, want, t0, pid = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
pat = re.compile(r'^saasd_events_processed_total\{action="([^"]*)",outcome="([^"]*)"\} (\d+)', re.M)
deadline = time.time() + 600
def alive(pid):
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        c.close()
    except OSError:
        text = ""
    seen = {}
    for _a, o, n in pat.findall(text):
        seen[o] = seen.get(o, 0) + int(n)
    done = sum(n for o, n in seen.items() if o != "retry")
    if done >= want or time.time() > deadline or not alive(pid):
        break
    time.sleep(0.02)
dt = time.time() - t0
m = re.search(r'^saasd_inbox_entries_scanned_total (\d+)', text, re.M)
seen["scanned_per_event"] = round(int(m.group(1)) / max(done, 1), 1) if m else "-"
# marketplace calls per event, in all and by endpoint (saasd's saasd_upstream_requests_total)
calls = {}
for ep, n in re.findall(r'^saasd_upstream_requests_total\{endpoint="([^"]*)",status="[^"]*"\} (\d+)', text, re.M):
    calls[ep] = calls.get(ep, 0) + int(n)
seen["mp_calls_per_event"] = f"{sum(calls.values()) / max(done, 1):.2f}(" + "/".join(
    f"{ep}={n / max(done, 1):.2f}" for ep, n in sorted(calls.items())) + ")"
# the store writer's grouping: batches per write transaction, flushes (commits + explicit syncs) per event
st = {k: int(float(v)) for k, v in re.findall(r'^saasd_store_(batches|transactions|syncs)_total (\S+)', text, re.M)}
if st.get("transactions"):
    seen["store_batches_per_commit"] = round(st.get("batches", 0) / st["transactions"], 1)
    seen["store_flushes_per_event"] = round((st["transactions"] + st.get("syncs", 0)) / max(done, 1), 2)
print(f"{dt:.2f} {done / dt:.0f} " + ",".join(f"{o}={n}" for o, n in sorted(seen.items())))
PY
)
  cpu=$(cpu_ticks "$SAASD_PID"); e1=$(cpu_ticks "$EMU_PID")
  # the rule worker processes are the daemon's children (started with it: all their CPU is the drain's)
  rules=0 rcs=0
  for c in $(pgrep -P "$SAASD_PID" || true); do rules=$((rules + $(cpu_ticks "$c"))); rcs=$((rcs + $(ctxsw "$c"))); done
  scs=$(ctxsw "$SAASD_PID"); ecs=$(($(ctxsw "$EMU_PID") - ecs0))
  threads=$(thread_split "$SAASD_PID")
  if [ -n "${BENCH_DRAIN_STRACE:-}" ]; then
    for t in /proc/"$SAASD_PID"/task/*; do echo "${t##*/} $(cat "$t/comm")"; done >"$BENCH_DRAIN_STRACE/threads-w$workers.txt"
  fi
  for p in ${PERF_PID:-}; do kill -INT "$p"; wait "$p" 2>/dev/null || true; done; PERF_PID=
  kill "$SAASD_PID"; wait "$SAASD_PID" 2>/dev/null || true
  kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null || true
  read -r secs rate outcomes <<<"$out"
  tick=$(getconf CLK_TCK)
  label=$([ "$workers" = 2 ] && echo "workers = 2 (default)" || echo "workers = $workers")
  label="$label, $WAITING waiting in the outbox"
  echo "  $label: acting on events: $rate events/s, $EVENTS drained in $secs s   target >= 2000 events/s"
  echo "      outcomes $outcomes; CPU per event: saasd $(python3 -c "print(f'{$cpu * 1e6 / $tick / $EVENTS:.0f}')") us,"\
       "rule processes $(python3 -c "print(f'{$rules * 1e6 / $tick / $EVENTS:.0f}')") us,"\
       "emulator $(python3 -c "print(f'{($e1 - $e0) * 1e6 / $tick / $EVENTS:.0f}')") us,"\
       "all three $(python3 -c "print(f'{($cpu + $rules + $e1 - $e0) * 1e6 / $tick / $EVENTS:.0f}')") us (2 000 events/s on 2 cores: <= ~900);"\
       "load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "      context switches per event: saasd $(python3 -c "print(f'{$scs / $EVENTS:.1f}')"),"\
       "rule processes $(python3 -c "print(f'{$rcs / $EVENTS:.1f}')"), emulator $(python3 -c "print(f'{$ecs / $EVENTS:.1f}')")"
  echo "      saasd by thread (us per event): $(python3 -c "
import sys
print(', '.join(f'{n} {int(t) * 1e6 / $tick / $EVENTS:.0f}' for n, t in (x.split('=') for x in sys.argv[1].split())))" "$threads")"
done
