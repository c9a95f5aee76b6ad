#!/usr/bin/env bash
# The fuzzers as part of `make test`: each target runs FUZZ_SMOKE_SECONDS (default 4) from its
# committed seed corpus, which also replays every crash input kept there as a regression.
# One TAP line per target; a crash or a sanitizer report is "not ok". Skipped (with a note)
# only when clang is not installed at all; `make deps` installs it.
set -u
cd "$(dirname "$0")/.."
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
secs=${FUZZ_SMOKE_SECONDS:-4}
work=$(mktemp -d "${TMPDIR:-/tmp}/saasd-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
have_clang=1
command -v clang-14 >/dev/null 2>&1 || command -v clang >/dev/null 2>&1 || have_clang=0
status=0
for src in fuzz/fuzz_*.c; do
  t=$(basename "$src" .c)
  t=${t#fuzz_}
  bin="$FUZZ_BUILD/fuzz_$t"
  if [ ! -x "$bin" ]; then
    if [ $have_clang = 0 ]; then
      echo "ok - the $t fuzzer runs from its seed corpus without a crash # skip clang is not installed (make deps)"
    else
      echo "not ok - the $t fuzzer was not built ($bin missing; make fuzz-build)"
      status=1
    fi
    continue
  fi
  mkdir -p "$work/$t"
  dict=()
  [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
  "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/$t-" "${dict[@]}" "$work/$t" "fuzz/corpus/$t" >"$work/$t.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -1)
  if [ $rc -eq 0 ]; then
    echo "ok - the $t fuzzer runs ${secs}s from its seed corpus without a crash (${runs:-?} executions)"
  else
    echo "not ok - the $t fuzzer crashed (exit $rc)"
    grep -E 'ERROR: |runtime error|SUMMARY|^==' "$work/$t.log" | head -8 | sed 's/^/#   /'
    status=1
  fi
done
exit $status
