#!/usr/bin/env bash
# Runs every C test program in $BUILD/tests, every busted spec, the browser tests
# (tests/browser/*.py), counts TAP lines, and ends with one line "N passed, N failed".
# and the Debian package (make deb: built, checked by tests/check_deb.sh and lintian).
# Exit status is non-zero on any failure. ONLY=c|fuzz|spec|browser|deb runs one part.
set -u
BUILD=${BUILD:-build}
ONLY=${ONLY:-all}
cd "$(dirname "$0")/.."
log=$(mktemp)
# Every temporary directory the tests make lives under one of our own, removed at the end.
export TMPDIR=$(mktemp -d /tmp/saasd-run-XXXXXX)
trap 'rm -f "$log"; rm -rf "$TMPDIR"' EXIT
status=0

if [ "$ONLY" = all ] || [ "$ONLY" = c ]; then
  for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] && [ ! -d "$t" ] || continue
    case "$t" in *.o|*.d) continue ;; esac
    echo "# $t"
    timeout 600 "$t" >"$log.out" 2>"$log.err"
    rc=$?
    if [ $rc -ne 0 ]; then
      echo "not ok - $(basename "$t") exited with status $rc (stderr follows)" >>"$log.out"
      sed 's/^/#   /' "$log.err" | tail -20 >>"$log.out"
      status=1
    fi
    grep -E '^(not )?ok ' "$log.out" | sed 's/^/  /'
    grep -vE '^(not )?ok ' "$log.out" | grep '^#' | sed 's/^/  /'
    cat "$log.out" >>"$log"
  done
fi

if { [ "$ONLY" = all ] || [ "$ONLY" = fuzz ]; } && [ -x fuzz/smoke.sh ]; then
  echo "# fuzz/smoke.sh (libFuzzer targets, a few seconds each)"
  fuzz/smoke.sh >"$log.out" 2>&1 || status=1
  sed 's/^/  /' "$log.out"
  cat "$log.out" >>"$log"
fi

if { [ "$ONLY" = all ] || [ "$ONLY" = spec ]; } && [ -d spec ]; then
  echo "# busted (lua5.4)"
  if ! BUILD="$BUILD" lua5.4 /usr/bin/busted -o TAP >"$log.out" 2>&1; then
    status=1
  fi
  sed 's/^/  /' "$log.out" | grep -vE '^  1\.\.[0-9]+$'
  # busted numbers its lines: "ok 3 - name" / "not ok 3 - name"
  cat "$log.out" >>"$log"
fi
# One browser script: its TAP lines, or a "not ok" with its stderr when it ends badly.
run_browser() {
  if ! BUILD="$BUILD" timeout 300 /usr/bin/python3 "$1" >"$log.out" 2>"$log.err"; then
    grep -qE '^not ok ' "$log.out" || echo "not ok - $1 exited with an error" >>"$log.out"
    sed 's/^/#   /' "$log.err" | tail -20 >>"$log.out"
    status=1
  fi
  sed 's/^/  /' "$log.out"
  cat "$log.out" >>"$log"
}

if [ "$ONLY" = all ] || [ "$ONLY" = browser ]; then
  # Headless chromium through chromedriver (the scripts start the emulator and saasd
  # themselves); Debian's python3, which has python3-selenium, not whatever python3 is first on PATH.
  echo "# browser (tests/browser/run.py, screenshots in $BUILD/screenshots/)"
  run_browser tests/browser/run.py
  echo "# console in the browser (tests/browser/console.py, screenshots in $BUILD/screenshots/console/)"
  run_browser tests/browser/console.py
fi
# The package is built from the plain tree (never from a sanitizer build's BUILD): mk/deb.mk
# copies the sources, runs dpkg-buildpackage, then tests/check_deb.sh (its TAP lines count
# here) and lintian, which fails the build on any error. It installs its own tools (deb-deps).
if { [ "$ONLY" = all ] || [ "$ONLY" = deb ]; } && [ "$BUILD" = build ]; then
  echo "# make deb (dpkg-buildpackage, tests/check_deb.sh, lintian --fail-on error)"
  if make --no-print-directory deb >"$log.out" 2>&1; then
    echo "ok - make deb builds the package, its checks pass and lintian reports no error" >>"$log.out"
  else
    grep -qE '^not ok ' "$log.out" || echo "not ok - make deb failed" >>"$log.out"
    grep -vE '^(not )?ok ' "$log.out" | tail -20 | sed 's/^/  #   /'
    status=1
  fi
  grep -E '^(not )?ok ' "$log.out" | sed 's/^/  /'
  grep -E '^(not )?ok ' "$log.out" >>"$log"
fi
rm -f "$log.out" "$log.err"

passed=$(grep -cE '^ok ' "$log")
failed=$(grep -cE '^not ok ' "$log")
if [ "$failed" -gt 0 ]; then
  echo
  echo "failures:"
  grep -E '^not ok ' "$log" | sed 's/^/  /'
  status=1
fi
echo "$passed passed, $failed failed"
exit $status
