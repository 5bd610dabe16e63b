#!/usr/bin/env python3
"""Backup and point-in-time recovery on the cluster of ops/ha/cluster.sh, checked against a
checkpoint held outside the database.

    ops/ha/cluster.sh up && ops/ha/pitr.py [--events 2000] [--bin target/debug/xuefen] [--failover] [--keep]

1. A service instance on the cluster (its own database, `xuefen_pitr`, fixed identity and
   checkpoint keys) takes a first load; then a base backup (`pg_basebackup -X stream`) of the
   primary through HAProxy, while the cluster archives its WAL to $HA_DIR/wal-archive.
2. Load A. Once the log seals all of it, the credit bank's copy of the checkpoint is saved from
   `GET /checkpoint` (the signed note, docs/ledger-format.md section 7) to a file held outside the
   database, and the restore target time T is read from the primary's clock.
3. Load B, written after T, sealed by later checkpoints; the WAL segment is switched and archived.
4. A fresh PostgreSQL is restored from the base backup plus the archived WAL to T
   (`recovery_target_time`, then promote), and `xuefen serve` is started on it.
5. Checks: the held note on its own (its key ID and Ed25519 signature, with openssl);
   `xuefen verify --public-key K --checkpoint held.note` passes on the restored ledger (entries,
   segments, tiles, the latest checkpoint's signature, and the log's root at the held size is the
   held root); the restored service's `GET /checkpoint` is the held note byte for byte; the
   restored rows, placed at their log indexes, rebuild the held root (recomputed here, not by
   the service); every load-A event is there at its acknowledged position; no load-B event is
   there. The same row check and `verify --checkpoint` fail, as they must, for the cluster's
   checkpoint made after T. Then the sites' re-send (RUNBOOK step 6): load B is accepted afresh,
   load A answers duplicate at its old positions, and `xuefen verify --checkpoint held.note`
   passes again on the grown log (it extends the held checkpoint).
With --failover, the primary is killed right after the base backup, so that the restore replays
the WAL across the timeline switch of the promotion (recovery_target_timeline 'latest', the
default). Prints the restore figures (base backup bytes and seconds, WAL segments replayed, seconds from
start to promotion). Every loop is bounded by count and by time."""
import argparse, base64, hashlib, os, secrets, shutil, signal, socket, subprocess, sys, tempfile, time

from halib import HA_DIR, PG_BASE, get_text, log_size, req, start_serve

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


# ---------------------------------------------------------------- the held checkpoint
# docs/ledger-format.md section 7, written out again here so that these checks do not rest on
# the service's own code; `xuefen verify --checkpoint` makes the same checks in Rust.

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


def parse_note(note):
    """A checkpoint note: (signed text, origin, size, root, [(key name, key ID, signature)])."""
    body, _, sigs = note.partition("\n\n")
    origin, size, root = body.split("\n")
    lines = []
    for line in filter(None, sigs.split("\n")):
        dash, name, payload = line.split(" ")
        raw = base64.b64decode(payload)
        assert dash == "\u2014" and len(raw) == 68, line
        lines.append((name, raw[:4], raw[4:]))
    return body + "\n", origin, int(size), base64.b64decode(root), lines


def ed25519_ok(public_hex, message, signature, work):
    """Checks the signature with openssl (RFC 8032, raw message)."""
    der = bytes.fromhex("302a300506032b6570032100" + public_hex)  # SubjectPublicKeyInfo, Ed25519
    for name, data in (("pub.der", der), ("msg", message), ("sig", signature)):
        open(f"{work}/{name}", "wb").write(data)
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", f"{work}/pub.der",
                        "-rawin", "-in", f"{work}/msg", "-sigfile", f"{work}/sig"], capture_output=True, text=True)
    return r.returncode == 0


def check_held(note, public_hex, work):
    """The held checkpoint on its own: its form, its key ID and its signature. Returns the failures."""
    text, origin, size, root, sigs = parse_note(note)
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + bytes.fromhex(public_hex)).digest()[:4]
    mine = [sig for name, kid, sig in sigs if name == origin and kid == key_id]
    if len(root) != 32 or size < 1:
        return ["held checkpoint: not a checkpoint of a non-empty log"]
    if not mine:
        return [f"held checkpoint: no signature line by {origin} with key ID {key_id.hex()}"]
    if not shutil.which("openssl"):
        print("held checkpoint: signature NOT checked here (no openssl); `xuefen verify --checkpoint` checks it")
    elif not ed25519_ok(public_hex, text.encode(), mine[0], work):
        return ["held checkpoint: the Ed25519 signature does not verify"]
    return []


def check_rows_reproduce(url, note):
    """The restored ledger's rows, placed at their log indexes by the segments, rebuild the root
    of the checkpoint's tree at its size."""
    _, _, size, root, _ = parse_note(note)
    rows = psql(url, "select s.start + (e.seq - s.first_seq), encode(e.hash, 'hex') from log_segments s "
                     "join ledger_entries e on e.chain_id = s.chain_id and e.seq >= s.first_seq "
                     f"and e.seq < s.first_seq + s.count where s.start < {size} order by 1")
    hashes = [line.split("|") for line in rows.split("\n") if line]
    hashes = [(int(i), h) for i, h in hashes if int(i) < size]
    if [i for i, _ in hashes] != list(range(size)):
        return [f"the restored ledger does not hold log indexes 0..{size - 1} ({len(hashes)} of them)"]
    if mth([hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for _, h in hashes]) != root:
        return [f"the restored ledger's root at size {size} differs from the checkpoint's"]
    return []


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


def wait_sealed(base, url, after_size=0, seconds=60):
    """Waits until the log's checkpoint (`GET /checkpoint`, a signed note) seals every entry and is
    larger than after_size; returns the note."""
    total = int(psql(url, "select count(*) from ledger_entries"))
    for _ in range(int(seconds * 4)):
        st, note = get_text(f"{base}/checkpoint")
        if st == 200 and log_size(note) == total and total > after_size:
            return note
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
    held = wait_sealed(base, cluster_url)
    held_file = f"{work}/held-checkpoint.note"
    open(held_file, "w").write(held)
    target = psql(cluster_url, "select clock_timestamp()")
    held_size = log_size(held)
    print(f"held checkpoint: log size {held_size}, root {held.split(chr(10))[2]}, saved to {held_file}; "
          f"target time {target}")
    time.sleep(0.5)

    # 3. Load B after the target, sealed by a later checkpoint; its WAL archived.
    acked_b = load(base, site, a.events + quarter, quarter, a.learners)
    later = wait_sealed(base, cluster_url, after_size=held_size)
    later_file = f"{work}/later-checkpoint.note"
    open(later_file, "w").write(later)
    stop(serve)
    segment = psql(cluster_url, "select pg_walfile_name(pg_switch_wal())")
    for _ in range(240):  # 60 s
        if os.path.exists(f"{HA_DIR}/wal-archive/{segment}"):
            break
        time.sleep(0.25)
    else:
        sys.exit(f"WAL segment {segment} was not archived within 60 s")
    archived = sorted(f for f in os.listdir(f"{HA_DIR}/wal-archive") if len(f) == 24)
    print(f"load B: {len(acked_b)} events after the target, sealed up to log size {log_size(later)}; "
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
    bad = check_held(open(held_file).read(), public_hex, work)
    env = dict(os.environ, DATABASE_URL=restored_url, **keys)

    def verify(note_file):
        t = time.monotonic()
        v = subprocess.run([bin, "verify", "--public-key", public_hex, "--checkpoint", note_file],
                           capture_output=True, text=True, env=env)
        return v, time.monotonic() - t

    v, verify_s = verify(held_file)
    print(f"xuefen verify --public-key K --checkpoint held (restored, {verify_s:.1f} s): rc={v.returncode} "
          f"{' / '.join(v.stdout.strip().split(chr(10)))}")
    if v.returncode != 0 or "signature verified" not in v.stdout or f"held checkpoint of size {held_size}" not in v.stdout:
        bad.append("xuefen verify --public-key --checkpoint (the held one) failed on the restored ledger")
    st, served = get_text(f"{rbase}/checkpoint")
    if st != 200 or served != held:
        bad.append(f"the restored service's checkpoint is not the held one byte for byte ({st}): "
                   f"log size {log_size(served) if served else None}, held {held_size} "
                   f"(log size {log_size(later)} was reached after the target)")
    bad += check_rows_reproduce(restored_url, held)
    # The same checks must fail for a checkpoint made after the target: the restored ledger
    # cannot reproduce what the bank would hold from the lost writes.
    not_reproduced = check_rows_reproduce(restored_url, later)
    v_later, _ = verify(later_file)
    if not not_reproduced:
        bad.append(f"the row check passed for the checkpoint of size {log_size(later)}, made after the target")
    if v_later.returncode == 0:
        bad.append(f"xuefen verify --checkpoint passed for the checkpoint of size {log_size(later)}, made after the target")
    print(f"the cluster's checkpoint of size {log_size(later)} (after the target) is not reproduced by the restored "
          f"ledger, as it must not be: {not_reproduced[:1]}; verify rc={v_later.returncode} "
          f"{v_later.stdout.strip().split(chr(10))[-1]}")
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
    after = wait_sealed(rbase, restored_url, after_size=held_size)
    v2, _ = verify(held_file)
    again = check_rows_reproduce(restored_url, held)
    print(f"re-send: {len(resent)} load-B events accepted afresh, {len(sample)} load-A answered duplicate ({dup_ok}); "
          f"new log size {log_size(after)} contains the held {held_size} (xuefen verify --checkpoint held rc={v2.returncode}; "
          f"rows rebuild the held root: {not again})")
    if v2.returncode != 0 or f"held checkpoint of size {held_size}" not in v2.stdout:
        bad.append("xuefen verify --checkpoint (the held one) failed after the re-send")
    bad += again
    for b_ in bad:
        print(f"FAILED: {b_}")
    print(f"pitr: base_backup_bytes={backup_bytes} base_backup_s={backup_s:.1f} wal_segments_replayed={replayed} "
          f"restore_s={restore_s:.1f} verify_s={verify_s:.1f} entries_restored={len(stored)} held_log_size={held_size}")
    print("pitr: PASS" if not bad else "pitr: FAIL")
    return not bad


if __name__ == "__main__":
    main()
