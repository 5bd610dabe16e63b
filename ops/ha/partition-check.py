#!/usr/bin/env python3
"""Same answers on ledger tables partitioned by chain: run by ops/ha/partition-check.sh.

Starts `xuefen serve` on the plain and on the partitioned database (same identity and checkpoint
keys) and sends both the same workload, built from a seed: completions in batches and singly,
exact re-sends (duplicates), re-sends with other hours (conflicts), revocations and repeated
revocations, an unknown course, learners registered at two sites. It compares, after replacing
every ledger position by the (site, event id, kind) of the entry there and every learner id by
its registration index (positions, times and hashes differ between two runs by design):
every ingest answer, every learner's transcript, the site and alliance statistics, the deposit
feed (as a set: its log order depends on when each seal ran), and `xuefen verify`'s counts. Then one event id is
raced across learners of different chains on each database: exactly one entry may be stored.
Finally the plans of a one-chain read and of a learner's read, and the bytes per entry.
Every loop is bounded by count and by time."""
import argparse, json, os, random, re, secrets, shutil, signal, subprocess, sys, tempfile, threading, time

from halib import get_text, log_size, req, start_serve

DROP = {"recorded_at", "hash", "detail", "trace_id", "instance", "next_after", "cursor", "number", "checkpoint",
        "proof", "created_at", "entry_bytes", "entry_hash", "prev_hash", "log_index", "tree_size", "next_cursor"}


def psql(url, sql):
    return subprocess.run(["psql", "-X", "-Atq", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Side:
    """One database with its service instance."""

    def __init__(self, name, url, bin, work, i, keys):
        self.name, self.url, self.bin = name, url, bin
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = start_serve(bin, self.port, work, i, dict(os.environ, DATABASE_URL=url, XUEFEN_DATA_DIR=f"{work}/d{i}", **keys))
        self.admin = open(f"{work}/serve{i}.out").read().split("bootstrap admin key (shown once): ")[1].split()[0]
        self.keys, self.learners, self.answers, self.unified = {}, {}, [], {}

    def call(self, method, path, key, body=None):
        st, b = req(method, f"{self.base}{path}", self.keys.get(key, key), body, timeout=60)
        return st, b

    def positions(self):
        rows = psql(self.url, "select chain_id, seq, site_id, event_id, kind from ledger_entries")
        return {(int(c), int(s)): f"{site}/{e}/{k}" for c, s, site, e, k in (r.split("|") for r in rows.split("\n") if r)}

    def norm(self, x, pos):
        if isinstance(x, dict):
            if set(x) == {"chain", "seq"}:
                return "@" + pos.get((x["chain"], x["seq"]), f"?{x}")
            return {k: self.norm(v, pos) for k, v in x.items() if k not in DROP}
        if isinstance(x, list):
            return [self.norm(v, pos) for v in x]
        if isinstance(x, str) and x in self.learners:
            return f"learner#{self.learners[x]}"
        return x


def setup(side, learners):
    st, b = side.call("POST", "/v1/sites", side.admin, {"id": "pa", "name": "A", "level": "county", "region_code": "330106"})
    assert st == 201, (side.name, st, b)
    side.keys["pa"] = b["key"]["secret"]
    st, b = side.call("POST", "/v1/sites", side.admin, {"id": "pb", "name": "B", "level": "county", "region_code": "330108"})
    assert st == 201, (side.name, st, b)
    side.keys["pb"] = b["key"]["secret"]
    st, b = side.call("POST", "/v1/bank/keys", side.admin)
    side.keys["bank"] = b["secret"]
    for site, code, rule, cat in (("pa", "H", {"kind": "per_hours", "hours_per_credit": "8", "cap": "4"}, "community"),
                                  ("pa", "F", {"kind": "fixed", "credits": "2"}, "vocational"),
                                  ("pb", "H", {"kind": "per_hours", "hours_per_credit": "4", "cap": "3"}, "community")):
        st, _ = side.call("PUT", f"/v1/courses/{code}", site, {"title": code, "category": cat, "rule": rule})
        assert st in (200, 201), st
    for i in range(learners):
        for site, acct in (("pa", f"u{i}"), ("pb", f"v{i}")) if i < learners // 3 else (("pa", f"u{i}"),):
            st, b = side.call("POST", "/v1/learners", site, {"name": "l", "local_account": acct,
                              "document": {"kind": "passport", "number": f"PC{i:06d}"}})
            assert st in (200, 201), (st, b)
            side.learners[b["learner_id"]] = i
        # The bank sees its own pseudonym of each learner: it learns it from the real-name data.
        st, b = side.call("POST", "/v1/learners", "bank", {"name": "l", "document": {"kind": "passport", "number": f"PC{i:06d}"}})
        assert st in (200, 201), (side.name, st, b)
        side.learners[b["learner_id"]] = i
        # The admin reads the unified id (lrn_…), which the transcripts below are asked by.
        st, t = side.call("GET", f"/v1/learners/{b['learner_id']}/transcript?limit=1", side.admin)
        assert st == 200, (side.name, st, t)
        side.learners[t["learner_id"]] = i
        side.unified[i] = t["learner_id"]


def workload(seed, events, learners):
    """The requests, as (method, path, site, body), the same list for both sides."""
    rnd = random.Random(seed)
    sent, out = [], []

    def completion(n):
        site = "pb" if rnd.random() < 0.2 else "pa"
        i = rnd.randrange(learners // 3) if site == "pb" else rnd.randrange(learners)
        course = "H" if site == "pb" or rnd.random() < 0.7 else "F"
        ev = {"event_id": f"e{n}", "kind": "completion", "course": course,
              "learner": {"local_account": ("v" if site == "pb" else "u") + str(i)},
              "completed_at": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}T10:00:00Z"}
        if course == "H":
            ev["hours"] = str(1 + rnd.randrange(12))
        return site, ev

    n = 0
    while n < events:
        if rnd.random() < 0.1:
            site, ev = completion(n)
            out.append(("PUT", f"/v1/events/{ev.pop('event_id')}", site, ev))
            sent.append((site, dict(ev, event_id=f"e{n}")))
            n += 1
            continue
        by_site = {}
        for _ in range(min(100, events - n)):
            site, ev = completion(n)
            by_site.setdefault(site, []).append(ev)
            sent.append((site, ev))
            n += 1
        out += [("POST", "/v1/events", site, evs) for site, evs in by_site.items()]
    for site, ev in rnd.sample(sent, min(50, len(sent))):  # exact re-sends
        out.append(("PUT", f"/v1/events/{ev['event_id']}", site, {k: v for k, v in ev.items() if k != "event_id"}))
    for site, ev in rnd.sample(sent, min(30, len(sent))):  # same id, other content
        body = {k: v for k, v in ev.items() if k != "event_id"}
        body["completed_at"] = "2026-06-30T09:00:00Z"
        out.append(("PUT", f"/v1/events/{ev['event_id']}", site, body))
    targets = rnd.sample([e for s, e in sent if s == "pa"], min(30, len(sent)))
    out.append(("POST", "/v1/events", "pa", [{"event_id": f"rv{k}", "kind": "revocation", "target_event_id": t["event_id"],
                                              "reason": "withdrawn"} for k, t in enumerate(targets)]))
    out.append(("POST", "/v1/events", "pa", [{"event_id": f"rv2-{k}", "kind": "revocation",
                                              "target_event_id": t["event_id"], "reason": "again"} for k, t in enumerate(targets[:5])]))
    out.append(("PUT", "/v1/events/nope", "pa", {"kind": "completion", "course": "NOPE", "learner": {"local_account": "u1"},
                                                  "completed_at": "2026-03-01T10:00:00Z"}))
    return out


def transcripts(side, pos):
    out = {}
    for i, lid in sorted(side.unified.items()):
        pages, after = [], None
        for _ in range(100):
            st, b = side.call("GET", f"/v1/learners/{lid}/transcript?limit=500" + (f"&after={after}" if after else ""), side.admin)
            assert st == 200, (side.name, st)
            pages.append(side.norm(b, pos))
            after = b.get("next_after")
            if not after:
                break
        out[i] = pages
    return out


def wait_sealed(side):
    total = int(psql(side.url, "select count(*) from ledger_entries"))
    for _ in range(480):  # 120 s: everything sealed
        st, cp = get_text(f"{side.base}/checkpoint")
        if st == 200 and log_size(cp) == total:
            return
        time.sleep(0.25)
    sys.exit(f"{side.name}: entries not sealed within 120 s")


def feed(side, pos):
    wait_sealed(side)
    deposits, after = [], None
    for _ in range(1000):
        st, b = side.call("GET", "/v1/deposits?limit=500" + (f"&after={after}" if after else ""), "bank")
        assert st == 200, (side.name, st)
        deposits += [json.dumps(side.norm(d, pos), sort_keys=True) for d in b["deposits"]]
        # The cursor is a log index (`xfl1`): read on until a page is empty and the cursor stays.
        moved = b.get("next_cursor") != after
        after = b.get("next_cursor")
        if not b["deposits"] and not moved:
            break
    return sorted(deposits)


def race(side, ids, width):
    """One event id sent at once for `width` learners: at most one may be stored."""
    bad, statuses = [], {}
    for r in range(ids):
        eid = f"race{r}"
        barrier, got = threading.Barrier(width), []

        def send(t):
            body = {"kind": "completion", "course": "F", "learner": {"local_account": f"u{(r * width + t) % len(side.learners)}"},
                    "completed_at": "2026-05-01T10:00:00Z"}
            barrier.wait(10)
            got.append(side.call("PUT", f"/v1/events/{eid}", "pa", body)[0])

        threads = [threading.Thread(target=send, args=(t,)) for t in range(width)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for s in got:
            statuses[s] = statuses.get(s, 0) + 1
        stored = int(psql(side.url, f"select count(*) from ledger_entries where site_id = 'pa' and event_id = '{eid}'"))
        if stored != 1 or sum(200 <= s < 300 for s in got) != 1:
            bad.append(f"{eid}: {stored} stored, answers {sorted(got)}")
    return bad, statuses


def sizes(url):
    out = {}
    for t in ("ledger_entries", "ledger_event_keys", "ledger_reversal_keys", "log_tiles", "log_segments", "log_chain_tips",
              "log_checkpoints"):
        if psql(url, f"select to_regclass('{t}') is not null") != "t":
            continue
        # A partitioned table's own size is 0: sum its partitions (pg_partition_tree lists
        # nothing for a plain table, hence the union).
        rels = f"(select relid from pg_partition_tree('{t}') union select '{t}'::regclass) r"
        heap, idx = psql(url, f"select coalesce(sum(pg_relation_size(relid)), 0), coalesce(sum(pg_indexes_size(relid)), 0) "
                              f"from {rels}").split("|")
        total = psql(url, f"select coalesce(sum(pg_total_relation_size(relid)), 0) from {rels}")
        out[t] = (int(heap), int(idx), int(total))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--plain", required=True)
    ap.add_argument("--parted", required=True)
    ap.add_argument("--bin", default="target/debug/xuefen")
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--learners", type=int, default=90)
    ap.add_argument("--seed", type=int, default=20)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="xuefen-partition-")
    keys = {"XUEFEN_CHECKPOINT_KEY": secrets.token_hex(32), "XUEFEN_IDENTITY_KEY": secrets.token_hex(32),
            "XUEFEN_CHECKPOINT_INTERVAL_MS": "300"}
    sides = [Side("plain", a.plain, a.bin, work, 0, keys), Side("parted", a.parted, a.bin, work, 1, keys)]
    ok = False
    try:
        ok = run(a, sides)
    finally:
        for s in sides:
            s.proc.send_signal(signal.SIGTERM)
        for s in sides:
            try:
                s.proc.wait(30)
            except subprocess.TimeoutExpired:
                s.proc.kill()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"service logs kept in {work}")
    sys.exit(0 if ok else 1)


def run(a, sides):
    bad = []
    reqs = workload(a.seed, a.events, a.learners)
    t, wal = {}, {}
    for s in sides:
        setup(s, a.learners)
        # WAL written by the ingest and its sealing (one side at a time; the other idles).
        lsn0 = psql(s.url, "select pg_current_wal_lsn()")
        t0 = time.monotonic()
        for method, path, site, body in reqs:
            st, b = s.call(method, path, site, body)
            s.answers.append((st, b))
        t[s.name] = time.monotonic() - t0
        wait_sealed(s)
        wal[s.name] = int(psql(s.url, f"select pg_current_wal_lsn() - '{lsn0}'::pg_lsn"))
    pos = [s.positions() for s in sides]
    answers = [[(st, s.norm(b, p)) for st, b in s.answers] for s, p in zip(sides, pos)]
    diff = [i for i, (x, y) in enumerate(zip(*answers)) if x != y]
    codes = {}
    for st, _ in answers[0]:
        codes[st] = codes.get(st, 0) + 1
    print(f"ingest: {len(reqs)} requests ({a.events} events) on each; answers differ: {len(diff)}; "
          f"status counts {dict(sorted(codes.items()))}; seconds plain {t['plain']:.1f} parted {t['parted']:.1f}")
    for i in diff[:3]:
        bad.append(f"request {i} {reqs[i][:2]}: plain {json.dumps(answers[0][i])[:300]} parted {json.dumps(answers[1][i])[:300]}")
    tr = [transcripts(s, p) for s, p in zip(sides, pos)]
    tdiff = [i for i in tr[0] if tr[0][i] != tr[1].get(i)]
    print(f"transcripts: {len(tr[0])} learners, {sum(len(pg[0]['entries']) for pg in tr[0].values())} lines; differ: {len(tdiff)}")
    bad += [f"transcript of learner #{i} differs" for i in tdiff[:3]]
    stats = [[s.norm(s.call("GET", path, s.admin)[1], p) for path in
              ("/v1/sites/pa/stats?year=2026", "/v1/sites/pb/stats?year=2026", "/v1/stats?year=2026")] for s, p in zip(sides, pos)]
    print(f"statistics: equal {stats[0] == stats[1]}")
    if stats[0] != stats[1]:
        bad.append(f"statistics differ: {stats}")
    fd = [feed(s, p) for s, p in zip(sides, pos)]
    print(f"deposit feed: {len(fd[0])} deposits; equal as sets {fd[0] == fd[1]}")
    if fd[0] != fd[1]:
        only = sorted(set(fd[0]) ^ set(fd[1]))
        bad.append(f"deposit feeds differ, e.g. {only[:2]}")
    vs = []
    for s in sides:
        v = subprocess.run([s.bin, "verify", "--public-key", s.call("GET", "/v1/checkpoints/public-key", "bank")[1]["public_key"]],
                           capture_output=True, text=True, env=dict(os.environ, DATABASE_URL=s.url))
        line = v.stdout.strip().split("\n")
        print(f"verify {s.name}: rc={v.returncode} {line[0] if line else v.stderr[-200:]}")
        # The chains' counts, and the log's size and tile count (the log is one tree over all chains).
        vs.append((v.returncode, line[0].split(" verified")[0] if line else "",
                   line[1].split(" and its checkpoint")[0] if len(line) > 1 else ""))
    if vs[0] != vs[1] or vs[0][0] != 0:
        bad.append(f"verify differs or fails: {vs}")
    for s in sides:
        rb, statuses = race(s, 10, 6)
        print(f"race {s.name}: 10 ids x 6 learners at once: {'one entry each' if not rb else rb[:2]}; answers {statuses}")
        bad += [f"{s.name} {x}" for x in rb]
    parted = sides[1].url
    chain_plan = psql(parted, "explain select seq, hash from ledger_entries where chain_id = 17 order by seq")
    lid = next(iter(sides[1].learners))
    learner_plan = psql(parted, f"explain select seq from ledger_entries where learner_id = '{lid}' order by seq")
    def scanned(plan):
        return len(set(re.findall(r"\bon (ledger_entries_p\d+)\b", plan)))

    n_chain, n_learner = scanned(chain_plan), scanned(learner_plan)
    print(f"plans on the partitioned ledger: one chain's entries scan {n_chain} partition(s); one learner's entries "
          f"(the service's query, by learner_id alone) scan {n_learner}")
    if n_chain != 1:
        bad.append(f"a one-chain read is not pruned to one partition:\n{chain_plan}")
    for s in sides:
        entries = int(psql(s.url, "select count(*) from ledger_entries"))
        sz = sizes(s.url)
        total = sum(v[2] for v in sz.values())
        # The total includes TOAST: a tile's hashes (up to 8 KiB) are stored out of line.
        parts = ", ".join(f"{k} {v[0] / entries:.0f}+{v[1] / entries:.0f} ({v[2] / entries:.1f} all in)" for k, v in sz.items())
        print(f"bytes per entry, {s.name} ({entries} entries): {total / entries:.0f} in all; table+indexes (all in, with TOAST): {parts}; "
              f"WAL {wal[s.name] / entries:.0f} (ingest and sealing)")
    for b in bad:
        print(f"FAILED: {b}")
    print("partition-check: PASS" if not bad else "partition-check: FAIL")
    return not bad


if __name__ == "__main__":
    main()
