#!/usr/bin/env bash
# A short smoke of the replicated cluster for CI: etcd and three PostgreSQL
# nodes under Patroni, two service instances under load, one SIGKILL of the
# primary, and the checks of ops/ha/failover.py; before that, the replica-read
# consistency checks of ops/ha/replica-reads.py and a small backup and
# point-in-time restore (ops/ha/pitr.py). Skips, saying so, where the
# packages cannot be installed (not root, or no Debian mirror). About 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${XUEFEN_BIN:-target/debug/xuefen}
[ -x "$bin" ] || cargo build -p xuefen --locked --quiet

if ! ops/ha/cluster.sh up; then
    echo "ops/ha/smoke.sh: SKIPPED: the cluster could not be started here (packages missing or not installable)" >&2
    ops/ha/cluster.sh down >/dev/null 2>&1 || true
    exit 0
fi
trap 'ops/ha/cluster.sh down >/dev/null 2>&1 || true' EXIT
# Replica reads and the restore first, while all three nodes are up; then the failover.
timeout 180 ops/ha/replica-reads.py --seconds "${HA_SMOKE_SECONDS:-12}" --bin "$bin"
timeout 240 ops/ha/pitr.py --events "${HA_SMOKE_PITR_EVENTS:-400}" --bin "$bin"
timeout 300 ops/ha/failover.py --seconds "${HA_SMOKE_SECONDS:-12}" --bin "$bin"
