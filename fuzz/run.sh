#!/usr/bin/env bash
# Run each libFuzzer target for SECONDS, one after another (the machine is small): seeds from
# fuzz/corpus/<target>/, new inputs kept in $FUZZ_BUILD/corpus/<target>/, crashes written to
# $FUZZ_BUILD/artifacts/. Prints executions per target; exits non-zero when any target crashed.
# Usage: fuzz/run.sh SECONDS target...   (make fuzz FUZZ_SECONDS=N runs every target)
set -u
cd "$(dirname "$0")/.."
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
secs=$1
shift
status=0
for t in "$@"; do
  mkdir -p "$FUZZ_BUILD/corpus/$t" "$FUZZ_BUILD/artifacts"
  log="$FUZZ_BUILD/fuzz_$t.log"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  nice -n 19 "$FUZZ_BUILD/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$FUZZ_BUILD/artifacts/$t-" "${dict[@]}" "$FUZZ_BUILD/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: ${secs}s, ${runs:-?} executions, no crash"
  else
    echo "fuzz $t: CRASH after ${runs:-?} executions (exit $rc), see $log and $FUZZ_BUILD/artifacts/"
    grep -E 'ERROR: |runtime error|SUMMARY' "$log" | head -5 | sed 's/^/  /'
    status=1
  fi
done
exit $status
