#!/usr/bin/env python3
"""Syscalls per event by thread name from drain.sh's BENCH_DRAIN_STRACE output:
drain_strace.py STRACE_FILE THREADS_FILE EVENTS (the events strace saw: all of them, roughly,
since it attaches 0.2 s after the daemon starts)."""
import collections, re, sys

trace, threads, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
names = {}
for line in open(threads):
    tid, name = line.split(maxsplit=1)
    names[tid] = re.sub(r"-\d+$", "", name.strip())
calls = collections.defaultdict(collections.Counter)
pat = re.compile(r"^(\d+)\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]")
for line in open(trace):
    m = pat.match(line)
    if m and "resumed>" not in line:
        calls[names.get(m.group(1), "?")][m.group(2)] += 1
for name, c in sorted(calls.items(), key=lambda kv: -sum(kv[1].values())):
    total = sum(c.values())
    top = ", ".join(f"{k} {v / events:.2f}" for k, v in c.most_common(8))
    print(f"  {name}: {total / events:.1f} syscalls per event ({top})")
