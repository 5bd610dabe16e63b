#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster.
#   scripts/with-postgres.sh CMD [ARGS...]
# Exports DATABASE_URL, XUEFEN_TEST_DATABASE_URL and XUEFEN_TEST_PG_ADMIN_URL for CMD,
# then stops the cluster and deletes it. Exits with CMD's exit status.
# XUEFEN_PG_OPTIONS adds server options (e.g. "-c shared_preload_libraries=pg_stat_statements").
set -euo pipefail

die() { echo "with-postgres: $*" >&2; exit 1; }
[ $# -gt 0 ] || die "usage: $0 CMD [ARGS...]"

# An explicitly provided database wins: no cluster, no cleanup needed.
case "${DATABASE_URL:-}" in
  postgres://*|postgresql://*) exec "$@" ;;
esac

find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bindir=$(find_bindir || true)
if [ -z "$bindir" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "with-postgres: no PostgreSQL server found; running apt-get install -y postgresql" >&2
  apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
  bindir=$(find_bindir || true)
fi
[ -n "$bindir" ] && [ -x "$bindir/initdb" ] && [ -x "$bindir/pg_ctl" ] \
  || die "no initdb/pg_ctl under /usr/lib/postgresql/*/bin (install the postgresql package)"

# initdb/postgres refuse to run as root, so as root everything server-side runs as
# 'postgres'. The cd avoids "could not change directory" noise from an unreadable cwd.
is_root=false; [ "$(id -u)" -eq 0 ] && is_root=true
as_pg() {
  if $is_root; then (cd "$tmp" && runuser -u postgres -- "$@"); else "$@"; fi
}

# /tmp (not $TMPDIR) so that the postgres user can always traverse the parent.
tmp=$(mktemp -d /tmp/xuefen-pg.XXXXXX)
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -f "$tmp/data/postmaster.pid" ]; then
    # fast = roll back open transactions and stop; immediate only if that hangs.
    as_pg "$bindir/pg_ctl" -D "$tmp/data" -m fast -w -t 20 stop >/dev/null 2>&1 \
      || as_pg "$bindir/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
# Turn signals into a normal exit so the EXIT trap cleans up with a conventional status.
trap 'exit 130' INT
trap 'exit 143' TERM
$is_root && chown postgres: "$tmp"

as_pg "$bindir/initdb" -D "$tmp/data" --auth=trust -U postgres --encoding=UTF8 --locale=C \
  >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; die "initdb failed"; }

# Pick a free loopback port. The kernel's choice (port 0) avoids collisions best;
# the ss loop is a fallback when python3 is unavailable. Another process may still
# grab the port before postgres binds it, hence the retries below.
pick_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null && return
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 40000))
    [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] && { echo "$p"; return; }
  done
  return 1
}

started=false
for _ in 1 2 3; do
  port=$(pick_port) || die "could not find a free port"
  # fsync stays on on purpose: durability is part of what the tests check.
  if as_pg "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/postgres.log" -w -t 30 -o \
      "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$tmp -c fsync=on -c max_connections=300 -c shared_buffers=256MB ${XUEFEN_PG_OPTIONS:-}" \
      start >/dev/null; then
    started=true; break
  fi
done
$started || { tail -n 20 "$tmp/postgres.log" >&2 || true; die "postgres did not start"; }

# pg_ctl -w checks the socket; also make sure TCP answers before handing over (~30s max).
for i in $(seq 60); do
  pg_isready -q -h 127.0.0.1 -p "$port" -U postgres && break
  [ "$i" -eq 60 ] && die "postgres not ready on 127.0.0.1:$port"
  sleep 0.5
done

psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres \
  -c 'CREATE DATABASE xuefen' >/dev/null

export DATABASE_URL="postgres://postgres@127.0.0.1:$port/xuefen"
export XUEFEN_TEST_DATABASE_URL="$DATABASE_URL"
export XUEFEN_TEST_PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
echo "with-postgres: PostgreSQL $(basename "$(dirname "$bindir")") at 127.0.0.1:$port (data in $tmp)" >&2

# Not exec: the EXIT trap must still run to stop the cluster. '|| status' keeps
# set -e from exiting early so that CMD's status is what we return.
status=0
"$@" || status=$?
exit "$status"
