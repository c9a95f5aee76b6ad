# Shared by the benchmark scripts (sourced after `cd` to the repository): a scratch directory
# removed at exit (kept with BENCH_KEEP=1), background processes stopped at exit (add their
# pids to `pids`), and small helpers.
BUILD=${BUILD:-build}
SAASD=$BUILD/saasd
work=$(mktemp -d "/tmp/saasd-${BENCH_NAME:-bench}-XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_http() { for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done; echo "bench: $1 did not come up" >&2; return 1; }
# utime + stime of a process in clock ticks (/proc/PID/stat fields 14 and 15)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# the same for a process and its children (nginx's master and workers)
tree_ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0))); done
  echo "$t"
}
# utime + stime in clock ticks per thread: one "name ticks" line each (/proc/PID/task/TID/comm
# and stat); a thread that ended meanwhile is skipped
task_ticks() {
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s %s\n' "$(cat "$t/comm" 2>/dev/null)" "$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null)"
  done | awk 'NF == 2'
}
