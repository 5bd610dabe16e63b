#!/usr/bin/env python3
"""Splits PostgreSQL's CPU during the loadtest's `batch` scenario by process:
the backends of each database (the service's pool, the checkpointer's work
included), autovacuum workers, the WAL writer, PostgreSQL's checkpointer.
Samples /proc every 0.2 s while it runs the command it is given, and takes
the window from the line that ends the baselines to the `batch` line.

    scripts/with-postgres.sh python3 loadtests/pg-cpu-split.py \
        target/release/xuefen-loadtest --no-ledgers --single-events 1000 --single-conns 64
"""
import os, subprocess, sys, threading, time, re

samples = []  # (t, {pid: (kind, ticks)})
stop = False

def kind_of(pid):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if not cmd.startswith("postgres"):
        return None
    m = re.match(r"postgres: (?:\S+ )?(autovacuum worker|autovacuum launcher|walwriter|checkpointer|background writer|logical replication launcher)", cmd)
    if m:
        return m.group(1)
    if "postgres: " in cmd:
        # backend: "postgres: user db host(port) state"
        parts = cmd.split()
        return "backend " + (parts[2] if len(parts) > 2 else "?")
    return "postmaster"

def ticks(pid):
    try:
        st = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    rest = st[st.rfind(")") + 1:].split()
    return int(rest[11]) + int(rest[12])

def sampler():
    kinds = {}
    while not stop:
        snap = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            pid = int(d)
            if pid not in kinds:
                kinds[pid] = kind_of(pid)
            k = kinds[pid]
            if k is None:
                continue
            t = ticks(pid)
            if t is not None:
                snap[pid] = (k, t)
        samples.append((time.time(), snap))
        time.sleep(0.2)

th = threading.Thread(target=sampler, daemon=True)
th.start()
marks = {}
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
for line in p.stdout:
    now = time.time()
    sys.stdout.write(line)
    if line.startswith("baseline rows_per_s="):
        marks["batch_start"] = now
    if line.startswith("batch events_per_s="):
        marks["batch_end"] = now
p.wait()
stop = True
th.join()
a, b = marks["batch_start"], marks["batch_end"]
first = min((s for s in samples if s[0] >= a), key=lambda s: s[0])
last = max((s for s in samples if s[0] <= b), key=lambda s: s[0])
agg = {}
for pid, (k, t) in last[1].items():
    t0 = first[1].get(pid, (k, 0))[1]
    agg[k] = agg.get(k, 0) + (t - t0)
print(f"batch window {last[0]-first[0]:.2f} s")
for k, v in sorted(agg.items(), key=lambda kv: -kv[1]):
    if v:
        print(f"  {v/100:6.2f} s  {k}")
