#!/usr/bin/env python3
"""Reads from replicas, checked while the primary writes: one `xuefen serve` on the primary only
(the reference, which also takes every write) and one with `database_read_url` on HAProxy's read port.

    ops/ha/cluster.sh up && ops/ha/replica-reads.py [--seconds 15] [--bin target/debug/xuefen]

The rule it checks (README "Reads from replicas"):
- a transcript read from a replica is the learner's entries as of the replica's replay point: every
  entry it shows is on the primary at the same position with the same body, and they are a prefix
  (in ledger order) of what the primary shows; an acknowledged credit not yet shown is pending and
  shows within a bounded time (the replay lag, printed);
- statistics read from a replica never count more than the primary's and equal them once writes stop;
- the deposit feed read from a replica serves only deposits the replica has, which are sealed in the
  log and never change: every deposit it serves is the primary's at that log index, field for field
  (its inclusion proof aside, which leads to the newest checkpoint each side has, and so may differ).
Every loop is bounded by count and by time."""
import argparse, json, os, signal, subprocess, sys, threading, time, urllib.request, urllib.error

from halib import HA_DIR, URL, READ_URL, req, start_serve


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--bin", default="target/debug/xuefen")
    a = ap.parse_args()
    work = f"/tmp/xuefen-replica-reads-{os.getpid()}"
    os.makedirs(work, exist_ok=True)
    ports = [19210 + os.getpid() % 400 * 2, 19211 + os.getpid() % 400 * 2]
    procs = []
    for i, p in enumerate(ports):
        env = dict(os.environ, DATABASE_URL=URL)
        env.pop("XUEFEN_DATABASE_READ_URL", None)
        if i == 1:
            env["XUEFEN_DATABASE_READ_URL"] = READ_URL
        procs.append(start_serve(a.bin, p, work, i, env))
    try:
        return run(a, [f"http://127.0.0.1:{p}" for p in ports], work)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def transcript(base, tok, lid):
    """All entries of a learner (bounded: 40 pages)."""
    out, after = [], None
    for _ in range(40):
        q = f"?limit=500" + (f"&after={after}" if after else "")
        st, b = req("GET", f"{base}/v1/learners/{lid}/transcript{q}", tok)
        if st != 200:
            return None
        out += b["entries"]
        after = b.get("next_after")
        if not after:
            return out
    return out


def feed(base, tok, limit=2000):
    """The first `limit` deposits, without their proofs; None if refused. The cursor is a log index
    (`xfl1`): a page may be empty while the cursor moves past entries that are not deposits."""
    out, after = [], None
    for _ in range(200):
        if len(out) >= limit:
            break
        q = "?limit=500" + (f"&after={after}" if after else "")
        st, b = req("GET", f"{base}/v1/deposits{q}", tok)
        if st != 200:
            return None
        out += [{k: v for k, v in d.items() if k != "proof"} for d in b["deposits"]]
        if not b["deposits"] and b["next_cursor"] == after:
            break
        after = b["next_cursor"]
    return out[:limit]


def run(a, base, work):
    prim, repl = base
    admin = subprocess.run(["sh", "-c", f"sed -n 's/^bootstrap admin key (shown once): //p' {work}/serve*.out"],
                           capture_output=True, text=True).stdout.split()
    if not admin:
        admin = [subprocess.run([a.bin, "keys", "create", "--admin"], capture_output=True, text=True,
                                env=dict(os.environ, DATABASE_URL=URL)).stdout.split()[-1]]
    site_id = f"rr{os.getpid()}"
    st, body = req("POST", f"{prim}/v1/sites", admin[0],
                   {"id": site_id, "name": "rr", "level": "county", "region_code": "330106"})
    assert st in (200, 201), (st, body)
    site = body["key"]["secret"]
    st, body = req("POST", f"{prim}/v1/bank/keys", admin[0], {})
    assert st == 201, st
    bank = body["secret"]
    assert req("PUT", f"{prim}/v1/courses/RR-1", site, {"title": "rr", "category": "community",
               "rule": {"kind": "per_hours", "hours_per_credit": "8", "cap": "4"}})[0] in (200, 201)
    lids = []
    for i in range(5):
        st, b = req("POST", f"{prim}/v1/learners", site, {"name": "l", "local_account": f"r{i}",
                    "document": {"kind": "passport", "number": f"RR{os.getpid()}X{i:05d}"}})
        assert st in (200, 201), st
        lids.append(b["learner_id"])
    acked = {}  # event_id -> (learner index, ack time)
    lock, stop = threading.Lock(), time.monotonic() + a.seconds

    def writer():
        for n in range(100000):
            if time.monotonic() > stop:
                return
            eid = f"rr-{n}"
            st, _ = req("PUT", f"{prim}/v1/events/{eid}", site,
                        {"kind": "completion", "course": "RR-1", "learner": {"local_account": f"r{n % 5}"},
                         "completed_at": "2026-03-01T10:00:00Z", "hours": "1"})
            if st in (200, 201):
                with lock:
                    acked[eid] = (n % 5, time.monotonic())

    t = threading.Thread(target=writer)
    t.start()
    seen, lags, bad, reads, pending_max, feed_checked = {}, [], [], 0, 0, 0
    deadline = stop + 30
    while time.monotonic() < deadline:
        writing = t.is_alive()
        for i, lid in enumerate(lids):
            r = transcript(repl, site, lid)
            p = transcript(prim, site, lid)  # read after the replica's, so a superset
            if r is None or p is None:
                bad.append(f"transcript of {lid} refused")
                continue
            reads += 1
            if r != p[:len(r)]:
                bad.append(f"replica transcript of {lid} is not a prefix of the primary's")
            now = time.monotonic()
            for e in r:
                if e["event_id"] not in seen:
                    seen[e["event_id"]] = now
            with lock:
                mine = [k for k, (li, _) in acked.items() if li == i]
            pending_max = max(pending_max, sum(1 for k in mine if k not in seen))
        rs = req("GET", f"{repl}/v1/sites/{site_id}/stats?year=2026", site)
        ps = req("GET", f"{prim}/v1/sites/{site_id}/stats?year=2026", site)
        if rs[0] != 200 or ps[0] != 200:
            bad.append(f"statistics refused ({rs[0]}, {ps[0]})")
        elif float(rs[1]["credits"]) > float(ps[1]["credits"]):
            bad.append("replica statistics count more credits than the primary's")
        rf, pf = feed(repl, bank), feed(prim, bank)
        if rf is None or pf is None:
            bad.append("deposit feed refused")
        else:
            feed_checked = max(feed_checked, len(rf))
            if rf != pf[:len(rf)]:
                bad.append("replica feed differs from the primary's")
        with lock:
            missing = [k for k in acked if k not in seen]
        if not writing and not missing:
            break
        time.sleep(0.05)
    for _ in range(50):  # 10 s: once writes stop, the replica's statistics equal the primary's
        rs = req("GET", f"{repl}/v1/sites/{site_id}/stats?year=2026", site)
        ps = req("GET", f"{prim}/v1/sites/{site_id}/stats?year=2026", site)
        if rs[0] == 200 and rs == ps:
            break
        time.sleep(0.2)
    else:
        bad.append(f"replica statistics never caught up: {rs} vs {ps}")
    with lock:
        for k, (_, at) in acked.items():
            if k in seen:
                lags.append(max(0.0, seen[k] - at))
        missing = [k for k in acked if k not in seen]
    lags.sort()
    print(f"acknowledged {len(acked)} events; {reads} transcript reads from the replica; "
          f"{feed_checked} deposits compared; most pending at once {pending_max}")
    if lags:
        print(f"seen on the replica after ack (upper bound, s): median {lags[len(lags) // 2]:.3f}, "
              f"max {lags[-1]:.3f}")
    if missing:
        bad.append(f"{len(missing)} acknowledged events never shown by the replica, e.g. {missing[:3]}")
    if not acked or not feed_checked:
        bad.append("nothing was written or no deposit was served: the check proved nothing")
    for b in bad[:10]:
        print("FAIL:", b)
    print("replica reads:", "FAIL" if bad else "PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
