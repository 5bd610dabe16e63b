#!/usr/bin/env python3
"""Backup and point-in-time recovery on the cluster of ops/ha/cluster.sh, checked against a
checkpoint held outside the database.

    ops/ha/cluster.sh up && ops/ha/pitr.py [--events 2000] [--bin target/debug/xuefen] [--failover] [--keep]

1. A service instance on the cluster (its own database, `xuefen_pitr`, fixed identity and
   checkpoint keys) takes a first load; then a base backup (`pg_basebackup -X stream`) of the
   primary through HAProxy, while the cluster archives its WAL to $HA_DIR/wal-archive.
2. Load A. Once a checkpoint seals all of it, the credit bank's copy is saved from
   `GET /v1/checkpoints/latest` to a file (held outside the database), and the restore target
   time T is read from the primary's clock.
3. Load B, written after T, sealed by later checkpoints; the WAL segment is switched and archived.
4. A fresh PostgreSQL is restored from the base backup plus the archived WAL to T
   (`recovery_target_time`, then promote), and `xuefen serve` is started on it.
5. Checks: `xuefen verify --public-key` passes; the held checkpoint's signed bytes hash to its
   hash, its chain list to its root, and its Ed25519 signature verifies (openssl); the restored
   service serves that checkpoint with the same signed bytes, signature and chains, and it is its
   latest; the restored ledger's rows reproduce each chain's head and Merkle root at the
   checkpoint's size (recomputed here from `ledger_entries`, not by the service); every load-A
   event is there at its acknowledged position; no load-B event is there. Then the sites' re-send
   (RUNBOOK step 6): load B is accepted afresh, load A answers duplicate at its old positions,
   and `xuefen verify` passes again.
With --failover, the primary is killed right after the base backup, so that the restore replays
the WAL across the timeline switch of the promotion (recovery_target_timeline 'latest', the
default). Prints the restore figures (base backup bytes and seconds, WAL segments replayed, seconds from
start to promotion). Every loop is bounded by count and by time."""
import argparse, hashlib, json, os, secrets, shutil, signal, socket, struct, subprocess, sys, tempfile, time

from halib import HA_DIR, PG_BASE, req, start_serve

DB = "xuefen_pitr"
AS_ROOT = os.geteuid() == 0


def as_pg(cmd, **kw):
    """Runs a server-side command as the postgres user (root may not run PostgreSQL)."""
    return subprocess.run((["runuser", "-u", "postgres", "--"] if AS_ROOT else []) + cmd, **kw)


def psql(url, sql):
    return subprocess.run(["psql", "-X", "-Atq", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def bindir():
    dirs = sorted(d for d in os.listdir("/usr/lib/postgresql") if os.path.isdir(f"/usr/lib/postgresql/{d}/bin"))
    return f"/usr/lib/postgresql/{dirs[-1]}/bin"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def du(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
               if not os.path.islink(os.path.join(d, f)))


# ---------------------------------------------------------------- the checkpoint, recomputed
# docs/ledger-format.md sections 7 and 8, written out again here so that the check does not
# rest on the service's own code.

def mth(leaves):
    """RFC 9162 Merkle tree hash over already-hashed leaves."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def signed_bytes(cp):
    return (b"xuefen/checkpoint/v1\x00" + struct.pack(">Qq", cp["number"], cp["created_at_ms"])
            + bytes.fromhex(cp["prev_hash"]) + struct.pack(">IQQ", len(cp["chains"]), cp["entries"], cp["deposits_end"])
            + bytes.fromhex(cp["root"]))


def chains_root(cp):
    leaves = [hashlib.sha256(b"\x00" + struct.pack(">IQ", c["chain"], c["size"]) + bytes.fromhex(c["head"])
                             + bytes.fromhex(c["root"])).digest() for c in cp["chains"]]
    return mth(leaves)


def ed25519_ok(public_hex, message, signature_hex, work):
    """Checks the signature with openssl (RFC 8032, raw message)."""
    der = bytes.fromhex("302a300506032b6570032100" + public_hex)  # SubjectPublicKeyInfo, Ed25519
    for name, data in (("pub.der", der), ("msg", message), ("sig", bytes.fromhex(signature_hex))):
        open(f"{work}/{name}", "wb").write(data)
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", f"{work}/pub.der",
                        "-rawin", "-in", f"{work}/msg", "-sigfile", f"{work}/sig"], capture_output=True, text=True)
    return r.returncode == 0


def check_held(held, public_hex, work):
    """The held checkpoint on its own: bytes, root, signature. Returns the failures."""
    bad = []
    if hashlib.sha256(signed_bytes(held)).hexdigest() != held["hash"]:
        bad.append("held checkpoint: its signed bytes do not hash to its hash")
    if chains_root(held).hex() != held["root"]:
        bad.append("held checkpoint: its chain list does not hash to its root")
    if sum(c["size"] for c in held["chains"]) != held["entries"]:
        bad.append("held checkpoint: chain sizes do not add up to its entries")
    if not shutil.which("openssl"):
        print("held checkpoint: signature NOT checked here (no openssl); `xuefen verify --public-key` checks it")
    elif not ed25519_ok(public_hex, signed_bytes(held), held["signature"], work):
        bad.append("held checkpoint: the Ed25519 signature does not verify")
    return bad


def check_rows_reproduce(url, held):
    """The restored ledger's own rows rebuild every chain of the held checkpoint."""
    bad = []
    for c in held["chains"]:
        rows = psql(url, f"select seq, encode(hash, 'hex') from ledger_entries where chain_id = {c['chain']} "
                         f"and seq <= {c['size']} order by seq")
        hashes = [line.split("|") for line in rows.split("\n") if line]
        if [int(s) for s, _ in hashes] != list(range(1, c["size"] + 1)):
            bad.append(f"chain {c['chain']}: the restored rows are not seq 1..{c['size']}")
            continue
        head = hashes[-1][1] if hashes else "00" * 32
        root = mth([hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for _, h in hashes]).hex()
        if head != c["head"]:
            bad.append(f"chain {c['chain']}: head at {c['size']} differs from the held checkpoint's")
        if root != c["root"]:
            bad.append(f"chain {c['chain']}: Merkle root at {c['size']} differs from the held checkpoint's")
    return bad


def consistent(m, n, first, second, proof):
    """RFC 9162 section 2.1.4.2: the tree of size n (root second) extends the tree of size m (root first)."""
    if m == n:
        return not proof and first == second
    if m == 0:
        return not proof
    if not proof or m > n:
        return False
    if m & (m - 1) == 0:
        proof = [first] + proof
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = hashlib.sha256(b"\x01" + c + fr).digest()
            sr = hashlib.sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = hashlib.sha256(b"\x01" + sr + c).digest()
        fn, sn = fn >> 1, sn >> 1
    return fr == first and sr == second and sn == 0


def check_extends(held, newer):
    """Every chain of `newer` (served with consistency proofs from `held`) extends the held one."""
    bad = []
    for old, new, proof in zip(held["chains"], newer["chains"], newer["consistency"]):
        if not consistent(old["size"], new["size"], bytes.fromhex(old["root"]), bytes.fromhex(new["root"]),
                          [bytes.fromhex(h) for h in proof]):
            bad.append(f"chain {old['chain']}: no valid consistency proof from the held size {old['size']} to {new['size']}")
    if len(newer["chains"]) != len(held["chains"]) or len(newer["consistency"]) != len(held["chains"]):
        bad.append("the newer checkpoint's chain list does not match the held one's")
    return bad


SIGNED = ("number", "created_at_ms", "prev_hash", "entries", "deposits_end", "root", "hash", "signature", "chains")


# ---------------------------------------------------------------- load

def kill_primary():
    """The loss of the primary's server between the base backup and the target, as failover.py does it."""
    from failover import leader
    old = leader()
    pid = int(open(f"{HA_DIR}/node{old}/data/postmaster.pid").readline())
    os.kill(int(open(f"{HA_DIR}/node{old}/patroni.pid").read()), signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    t = time.monotonic()
    for _ in range(120):  # 60 s
        new = leader()
        if new and new != old:
            print(f"killed primary node{old}; node{new} promoted after {time.monotonic() - t:.1f} s")
            return
        time.sleep(0.5)
    sys.exit("no promotion within 60 s")


def event(n, learners):
    return {"event_id": f"p{n}", "kind": "completion", "course": "PITR-1",
            "learner": {"local_account": f"u{n % learners}"}, "completed_at": "2026-03-01T10:00:00Z",
            "hours": str(1 + n % 7)}


def load(base, site, first, count, learners, batch=50):
    """Posts events first..first+count in batches; returns {event_id: (chain, seq)}."""
    acked = {}
    for start in range(first, first + count, batch):
        body = [event(n, learners) for n in range(start, min(first + count, start + batch))]
        for _ in range(120):  # 60 s: rides out a failover (promotion, HAProxy's next check)
            st, b = req("POST", f"{base}/v1/events", site, body, timeout=60)
            if 200 <= st < 300:
                break
            time.sleep(0.5)
        assert 200 <= st < 300, f"batch at {start}: {st}"
        for r in b["results"]:
            assert r["status"] == "accepted", r
            acked[r["event_id"]] = (r["position"]["chain"], r["position"]["seq"])
    return acked


def wait_sealed(base, bank, url, after_number=0, seconds=60):
    """Waits until a checkpoint numbered above after_number seals every entry; returns it."""
    total = int(psql(url, "select count(*) from ledger_entries"))
    for _ in range(int(seconds * 4)):
        st, cp = req("GET", f"{base}/v1/checkpoints/latest", bank)
        if st == 200 and cp["entries"] == total and cp["number"] > after_number:
            return cp
        time.sleep(0.25)
    sys.exit(f"no checkpoint sealed all {total} entries within {seconds} s")


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=2000, help="events in load A (B and the first load: a quarter each)")
    ap.add_argument("--learners", type=int, default=40)
    ap.add_argument("--bin", default="target/debug/xuefen")
    ap.add_argument("--failover", action="store_true",
                    help="kill the primary (SIGKILL) after the base backup: the restore then replays across the timeline switch")
    ap.add_argument("--keep", action="store_true", help="keep the work directory and leave the restored server running")
    a = ap.parse_args()
    bin = os.path.abspath(a.bin)
    work = tempfile.mkdtemp(prefix="xuefen-pitr-", dir="/tmp")
    os.chmod(work, 0o755)
    if AS_ROOT:
        shutil.chown(work, "postgres", "postgres")
    pg_admin = f"postgres://postgres@127.0.0.1:{PG_BASE}/postgres"
    cluster_url = f"postgres://postgres@127.0.0.1:{PG_BASE}/{DB}"
    psql(pg_admin, f"drop database if exists {DB}")
    psql(pg_admin, f"create database {DB}")
    ck = secrets.token_hex(32)
    keys = {"XUEFEN_CHECKPOINT_KEY": ck, "XUEFEN_IDENTITY_KEY": secrets.token_hex(32),
            "XUEFEN_CHECKPOINT_INTERVAL_MS": "300"}
    port = free_port()
    serve = start_serve(bin, port, work, 0, dict(os.environ, DATABASE_URL=cluster_url, XUEFEN_DATA_DIR=f"{work}/d0", **keys))
    restore_dir = f"{work}/restore"
    procs = [serve]  # run() appends the restored instance's server
    ok = False
    try:
        ok = run(a, bin, work, port, serve, cluster_url, keys, restore_dir, procs)
    finally:
        for p in procs:
            stop(p)
        if os.path.exists(f"{restore_dir}/postmaster.pid") and not (a.keep and ok):
            as_pg([f"{bindir()}/pg_ctl", "-D", restore_dir, "-m", "fast", "-w", "-t", "30", "stop"], capture_output=True)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")
        psql(pg_admin, f"drop database if exists {DB}")
    sys.exit(0 if ok else 1)


def run(a, bin, work, port, serve, cluster_url, keys, restore_dir, procs):
    base = f"http://127.0.0.1:{port}"
    admin = open(f"{work}/serve0.out").read().split("bootstrap admin key (shown once): ")[1].split()[0]
    st, body = req("POST", f"{base}/v1/sites", admin, {"id": "pitr", "name": "pitr", "level": "county", "region_code": "330106"})
    assert st == 201, (st, body)
    site = body["key"]["secret"]
    st, body = req("POST", f"{base}/v1/bank/keys", admin)
    assert st == 201, st
    bank = body["secret"]
    assert req("PUT", f"{base}/v1/courses/PITR-1", site, {"title": "pitr", "category": "community",
               "rule": {"kind": "per_hours", "hours_per_credit": "2", "cap": "4"}})[0] in (200, 201)
    for i in range(a.learners):
        st, _ = req("POST", f"{base}/v1/learners", site, {"name": "l", "local_account": f"u{i}",
                    "document": {"kind": "passport", "number": f"PITR{os.getpid()}X{i:05d}"}})
        assert st in (200, 201), st
    st, pk = req("GET", f"{base}/v1/checkpoints/public-key", bank)
    public_hex = pk["public_key"]
    quarter = max(1, a.events // 4)
    first = load(base, site, 0, quarter, a.learners)

    # 1. The base backup, from the primary through HAProxy's write port.
    t = time.monotonic()
    as_pg(["pg_basebackup", "-h", "127.0.0.1", "-p", str(PG_BASE), "-U", "postgres", "-D", f"{work}/base",
           "-X", "stream", "-c", "fast", "--no-password"], check=True, capture_output=True)
    backup_s, backup_bytes = time.monotonic() - t, du(f"{work}/base")
    print(f"base backup: {backup_bytes} B in {backup_s:.1f} s ({len(first)} events before it)")

    # 2. Load A, sealed; the bank's copy of the latest checkpoint; the target time.
    if a.failover:
        kill_primary()
    acked_a = load(base, site, quarter, a.events, a.learners)
    acked_a.update(first)
    held = wait_sealed(base, bank, cluster_url)
    held_file = f"{work}/held-checkpoint.json"
    json.dump(held, open(held_file, "w"), indent=1)
    target = psql(cluster_url, "select clock_timestamp()")
    print(f"held checkpoint {held['number']} ({held['entries']} entries, root {held['root'][:16]}…) "
          f"saved to {held_file}; target time {target}")
    time.sleep(0.5)

    # 3. Load B after the target, sealed by a later checkpoint; its WAL archived.
    acked_b = load(base, site, a.events + quarter, quarter, a.learners)
    later = wait_sealed(base, bank, cluster_url, after_number=held["number"])
    stop(serve)
    segment = psql(cluster_url, "select pg_walfile_name(pg_switch_wal())")
    for _ in range(240):  # 60 s
        if os.path.exists(f"{HA_DIR}/wal-archive/{segment}"):
            break
        time.sleep(0.25)
    else:
        sys.exit(f"WAL segment {segment} was not archived within 60 s")
    archived = sorted(f for f in os.listdir(f"{HA_DIR}/wal-archive") if len(f) == 24)
    print(f"load B: {len(acked_b)} events after the target, sealed up to checkpoint {later['number']}; "
          f"WAL archive: {len(archived)} segments, {du(f'{HA_DIR}/wal-archive')} B")

    # 4. Restore a fresh instance from the base backup plus the archive, to the target time.
    as_pg(["cp", "-a", f"{work}/base", restore_dir], check=True)
    pg_port = free_port()
    # Patroni's postgresql.conf is not kept: it names the cluster's synchronous standby (every
    # commit would wait for it), its port and socket, and archives into the cluster's archive.
    conf = f"""listen_addresses = '127.0.0.1'
port = {pg_port}
unix_socket_directories = '{restore_dir}'
max_connections = 300
max_wal_senders = 10
max_replication_slots = 10
max_worker_processes = 8
max_prepared_transactions = 0
max_locks_per_transaction = 64
wal_level = replica
hot_standby = on
shared_buffers = 128MB
restore_command = 'cp {HA_DIR}/wal-archive/%f "%p"'
recovery_target_time = '{target}'
recovery_target_action = 'promote'
"""
    for name, text in (("postgresql.conf", conf), ("pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n"),
                       ("recovery.signal", ""), ("postgresql.auto.conf", "")):
        as_pg(["sh", "-c", f"cat > {restore_dir}/{name}"], input=text, text=True, check=True)
    for name in ("standby.signal", "postgresql.base.conf", "patroni.dynamic.json"):
        if os.path.exists(f"{restore_dir}/{name}"):
            as_pg(["rm", "-f", f"{restore_dir}/{name}"], check=True)
    t = time.monotonic()
    as_pg([f"{bindir()}/pg_ctl", "-D", restore_dir, "-l", f"{restore_dir}/restore.log", "-w", "-t", "300", "start"],
          check=True, capture_output=True)
    restored_url = f"postgres://postgres@127.0.0.1:{pg_port}/{DB}"
    for _ in range(1200):  # 300 s
        try:
            if psql(restored_url, "select pg_is_in_recovery()") == "f":
                break
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.25)
    else:
        sys.exit("the restored server was not promoted within 300 s")
    restore_s = time.monotonic() - t
    log = open(f"{restore_dir}/restore.log").read()
    replayed = log.count("restored log file")
    stop_line = next((l for l in log.split("\n") if "recovery stopping" in l), "")
    print(f"restore: {restore_s:.1f} s from start to promotion, {replayed} archived WAL segments replayed "
          f"({replayed * 16 * 1024 * 1024} B); {stop_line.split('LOG:')[-1].strip()}")

    # 5. The service on the restored instance, with the same keys; the checks.
    rport = free_port()
    rserve = start_serve(bin, rport, work, 1, dict(os.environ, DATABASE_URL=restored_url, XUEFEN_DATA_DIR=f"{work}/d1", **keys))
    procs.append(rserve)
    rbase = f"http://127.0.0.1:{rport}"
    bad = check_held(json.load(open(held_file)), public_hex, work)
    env = dict(os.environ, DATABASE_URL=restored_url, **keys)
    t = time.monotonic()
    v = subprocess.run([bin, "verify", "--public-key", public_hex], capture_output=True, text=True, env=env)
    verify_s = time.monotonic() - t
    print(f"xuefen verify --public-key (restored, {verify_s:.1f} s): rc={v.returncode} {v.stdout.strip()}")
    if v.returncode != 0 or "signatures verified" not in v.stdout:
        bad.append("xuefen verify --public-key failed on the restored ledger")
    st, served = req("GET", f"{rbase}/v1/checkpoints/{held['number']}", bank)
    if st != 200:
        bad.append(f"restored service: checkpoint {held['number']} answered {st}")
    else:
        bad += [f"restored checkpoint {held['number']}: {k} differs from the held copy" for k in SIGNED if served[k] != held[k]]
        if signed_bytes(served) != signed_bytes(held):
            bad.append("restored checkpoint: signed bytes differ from the held copy's")
    st, latest = req("GET", f"{rbase}/v1/checkpoints/latest", bank)
    if st != 200 or latest["number"] != held["number"]:
        bad.append(f"restored latest checkpoint is {latest.get('number') if latest else st}, not the held "
                   f"{held['number']} (checkpoint {later['number']} was made after the target)")
    bad += check_rows_reproduce(restored_url, held)
    # The same check must fail for a checkpoint made after the target: the restored ledger
    # cannot reproduce what the bank would hold from the lost writes.
    not_reproduced = check_rows_reproduce(restored_url, later)
    if not not_reproduced:
        bad.append(f"the check passed for checkpoint {later['number']}, made after the target")
    print(f"the cluster's checkpoint {later['number']} (after the target) is not reproduced by the restored "
          f"ledger, as it must not be: {len(not_reproduced)} chains differ")
    stored = {}
    for line in filter(None, psql(restored_url, "select event_id, chain_id, seq from ledger_entries where site_id = 'pitr'").split("\n")):
        e, c, s = line.split("|")
        stored[e] = (int(c), int(s))
    missing = [e for e in acked_a if stored.get(e) != acked_a[e]]
    present_b = [e for e in acked_b if e in stored]
    if missing:
        bad.append(f"{len(missing)} load-A events missing or moved in the restored ledger, e.g. {missing[:3]}")
    if present_b:
        bad.append(f"{len(present_b)} load-B events (written after the target) are in the restored ledger")
    probe = sorted(acked_b)[:5]
    if any(req("GET", f"{rbase}/v1/events/{e}", site)[0] != 404 for e in probe):
        bad.append("restored service: a load-B event is not 404")
    print(f"restored ledger: {len(stored)} entries; load A {len(acked_a)} acked, {len(missing)} missing or moved; "
          f"load B {len(acked_b)} acked, {len(present_b)} present")

    # 6. The sites re-send what they posted since the target (RUNBOOK, restore step 6).
    resent = load(base=rbase, site=site, first=a.events + quarter, count=quarter, learners=a.learners)
    sample = sorted(acked_a)[: min(100, len(acked_a))]
    st, b = req("POST", f"{rbase}/v1/events", site, [event(int(e[1:]), a.learners) for e in sample], timeout=60)
    dup_ok = 200 <= st < 300 and all(r["status"] == "duplicate" and (r["position"]["chain"], r["position"]["seq"]) == acked_a[r["event_id"]]
                               for r in b["results"])
    if not dup_ok:
        bad.append("re-sent load-A events did not answer duplicate at their original positions")
    after = wait_sealed(rbase, bank, restored_url, after_number=held["number"])
    v2 = subprocess.run([bin, "verify", "--public-key", public_hex], capture_output=True, text=True, env=env)
    st, cons = req("GET", f"{rbase}/v1/checkpoints/{after['number']}?from={held['number']}", bank)
    print(f"re-send: {len(resent)} load-B events accepted afresh, {len(sample)} load-A answered duplicate ({dup_ok}); "
          f"new checkpoint {after['number']} consistent from the held {held['number']} ({st}); verify rc={v2.returncode}")
    if v2.returncode != 0:
        bad.append("xuefen verify failed after the re-send")
    if st != 200 or cons["consistency_from"] != held["number"]:
        bad.append("the restored service gives no consistency proof from the held checkpoint")
    else:
        extends = check_extends(held, cons)
        bad += extends
        print(f"the restored ledger's checkpoint {cons['number']} extends the held {held['number']} on every chain "
              f"(RFC 9162 consistency proofs checked here): {not extends}")
    for b_ in bad:
        print(f"FAILED: {b_}")
    print(f"pitr: base_backup_bytes={backup_bytes} base_backup_s={backup_s:.1f} wal_segments_replayed={replayed} "
          f"restore_s={restore_s:.1f} verify_s={verify_s:.1f} entries_restored={len(stored)} held_checkpoint={held['number']}")
    print("pitr: PASS" if not bad else "pitr: FAIL")
    return not bad


if __name__ == "__main__":
    main()
