#!/usr/bin/env python3
"""Failover under load: two `xuefen serve` instances on the cluster of ops/ha/cluster.sh, single
and batch ingest, SIGKILL of the primary postmaster at a random moment, then the checks.

    ops/ha/cluster.sh up && ops/ha/failover.py [--seconds 30] [--bin target/debug/xuefen]

Checks: every event answered 2xx is in ledger_entries at the (chain, seq) it was given; no
(site, event_id) is stored twice; `xuefen verify` passes on the new primary; the same two
instances (never restarted) accept writes afterwards. Prints the seconds writes were refused.
Every loop is bounded by count and by time."""
import argparse, json, os, random, signal, subprocess, sys, threading, time, urllib.request, urllib.error

from halib import HA_DIR, PG_BASE, REST_BASE, URL, req, start_serve


def leader():
    for n in (1, 2, 3):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{REST_BASE + n}/primary", timeout=1) as r:
                if r.status == 200:
                    return n
        except Exception:
            pass
    return None


def psql(sql):
    return subprocess.run(["psql", "-X", "-Atq", URL, "-c", sql], check=True, capture_output=True, text=True).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--bin", default="target/debug/xuefen")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    work = f"/tmp/xuefen-failover-{os.getpid()}"
    os.makedirs(work, exist_ok=True)
    ports = [18210 + rnd.randrange(0, 500) * 2, 0]
    ports[1] = ports[0] + 1
    procs = []
    for i, p in enumerate(ports):
        procs.append(start_serve(a.bin, p, work, i, dict(os.environ, DATABASE_URL=URL)))
    try:
        run(a, rnd, ports, procs, work)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def run(a, rnd, ports, procs, work):
    base = [f"http://127.0.0.1:{p}" for p in ports]
    admin = subprocess.run(["sh", "-c", f"sed -n 's/^bootstrap admin key (shown once): //p' {work}/serve*.out"],
                           capture_output=True, text=True).stdout.split()
    if not admin:  # database already bootstrapped by an earlier run: make a fresh admin key
        admin = [subprocess.run([a.bin, "keys", "create", "--admin"], capture_output=True, text=True,
                                env=dict(os.environ, DATABASE_URL=URL)).stdout.split()[-1]]
    site_id = f"ha{os.getpid()}"
    st, body = req("POST", f"{base[0]}/v1/sites", admin[0],
                   {"id": site_id, "name": "ha", "level": "county", "region_code": "330106"})
    assert st == 201 or st == 200, (st, body)
    site = body["key"]["secret"]
    assert req("PUT", f"{base[0]}/v1/courses/HA-1", site, {"title": "ha", "category": "community",
               "rule": {"kind": "per_hours", "hours_per_credit": "8", "cap": "4"}})[0] in (200, 201)
    learners = 50
    for i in range(learners):
        st, _ = req("POST", f"{base[0]}/v1/learners", site, {"name": "l", "local_account": f"u{i}",
                    "document": {"kind": "passport", "number": f"HA{os.getpid()}X{i:05d}"}})
        assert st in (200, 201), st
    acked, lock = {}, threading.Lock()
    refused = []  # times of non-2xx answers
    stop = time.monotonic() + a.seconds
    counter = iter(range(10**9))

    def ev(n):
        return {"kind": "completion", "course": "HA-1", "learner": {"local_account": f"u{n % learners}"},
                "completed_at": "2026-03-01T10:00:00Z", "hours": "1"}

    def single(w):
        for _ in range(100000):
            if time.monotonic() > stop:
                return
            n = next(counter)
            eid = f"s{n}"
            st, b = req("PUT", f"{base[w % 2]}/v1/events/{eid}", site, ev(n))
            if 200 <= st < 300:
                with lock:
                    acked[eid] = (b["position"]["chain"], b["position"]["seq"])
            else:
                refused.append(time.monotonic()); time.sleep(0.05)

    def batch(w):
        for _ in range(100000):
            if time.monotonic() > stop:
                return
            ns = [next(counter) for _ in range(20)]
            body = [dict(ev(n), event_id=f"b{n}") for n in ns]
            st, b = req("POST", f"{base[w % 2]}/v1/events", site, body)
            if 200 <= st < 300:
                with lock:
                    for r in b["results"]:
                        if r.get("position"):
                            acked[r["event_id"]] = (r["position"]["chain"], r["position"]["seq"])
            else:
                refused.append(time.monotonic()); time.sleep(0.05)

    threads = [threading.Thread(target=single, args=(w,)) for w in range(4)] + \
              [threading.Thread(target=batch, args=(w,)) for w in range(2)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(rnd.uniform(3, max(3.5, a.seconds / 3)))
    old = leader()
    pid = int(open(f"{HA_DIR}/node{old}/data/postmaster.pid").readline())
    # The loss of the server: its Patroni first (else it restarts PostgreSQL in place and keeps
    # the leader key), then the postmaster, both SIGKILL.
    os.kill(int(open(f"{HA_DIR}/node{old}/patroni.pid").read()), signal.SIGKILL)
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    print(f"killed primary node{old} (postmaster {pid}) at t={killed_at - t0:.1f}s")
    new = None
    for _ in range(120):  # 60 s
        new = leader()
        if new and new != old:
            break
        time.sleep(0.5)
    print(f"promoted node{new} after {time.monotonic() - killed_at:.1f}s")
    for t in threads:
        t.join(a.seconds + 60)
    after = [t for t in refused if t >= killed_at - 1]
    window = (max(after) - killed_at) if after else 0.0
    # Recovered without restart: both instances accept a write within a
    # bounded time after the promotion (HAProxy's next health check, the
    # pool's next connection), the same process still running.
    for i, b in enumerate(base):
        for _ in range(60):  # 30 s
            st, body = req("PUT", f"{b}/v1/events/after-{i}", site, ev(i))
            if 200 <= st < 300:
                break
            time.sleep(0.5)
        assert 200 <= st < 300, f"instance {i} did not recover within 30 s of the promotion: {st}"
        acked[f"after-{i}"] = (body["position"]["chain"], body["position"]["seq"])
        assert procs[i].poll() is None
    rows = psql(f"select event_id, chain_id, seq from ledger_entries where site_id = '{site_id}'").split("\n")
    stored = {}
    dupes = 0
    for line in filter(None, rows):
        e, c, s = line.split("|")
        dupes += e in stored
        stored[e] = (int(c), int(s))
    missing = [e for e in acked if e not in stored]
    moved = [e for e in acked if e in stored and stored[e] != acked[e]]
    v = subprocess.run([a.bin, "verify"], capture_output=True, text=True, env=dict(os.environ, DATABASE_URL=URL))
    print(f"acked={len(acked)} stored={len(stored)} missing={len(missing)} moved={len(moved)} dupes={dupes} "
          f"refused_answers={len(after)} writes_refused_s={window:.1f} verify_rc={v.returncode} "
          f"verify={v.stdout.strip() or v.stderr.strip()[-200:]}")
    ok = not missing and not moved and not dupes and v.returncode == 0
    print("failover: PASS" if ok else "failover: FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
