#!/usr/bin/env bash
# A replicated PostgreSQL cluster on one machine, for failover experiments and the HA scenario.
#   ops/ha/cluster.sh up|down|status|url
# up:     one etcd (127.0.0.1:$HA_ETCD_PORT) and three PostgreSQL nodes under Patroni
#         (PostgreSQL on $HA_PG_BASE+1..3, Patroni REST on $HA_REST_BASE+1..3), synchronous_mode on,
#         then prints the connection string the service uses.
# down:   stops everything and deletes the data (under $HA_DIR).
# status: patronictl list.
# url:    prints the connection strings (read-write and read-only).
#
# The service connects through HAProxy (127.0.0.1:$HA_PG_BASE for writes, :$((HA_PG_BASE+10)) for
# reads), not with a multi-host URL and target_session_attrs=read-write: the service's driver (sqlx
# 0.8) takes one host and ignores target_session_attrs, so a multi-host URL would not fail over.
# HAProxy asks each node's Patroni REST API (/primary, /replica) every second and routes only to
# the node that answers 200, so after a promotion the pool's next connect lands on the new primary
# with nothing reconfigured. PgBouncer was not chosen: it has no health check of its own and would
# need a Patroni callback rewriting its config on every promotion; the service already pools.
# PostgreSQL runs as the postgres user; run as root (installs Debian packages) or as postgres.
set -euo pipefail

HA_DIR=${HA_DIR:-/tmp/xuefen-ha}
HA_ETCD_PORT=${HA_ETCD_PORT:-23790}
HA_PG_BASE=${HA_PG_BASE:-25430}
HA_REST_BASE=${HA_REST_BASE:-28000}
NODES=(1 2 3)

die() { echo "cluster.sh: $*" >&2; exit 1; }
bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

ensure_packages() {
  local missing=()
  command -v patroni >/dev/null || missing+=(patroni)
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v etcdctl >/dev/null || missing+=(etcd-client)
  command -v haproxy >/dev/null || missing+=(haproxy)
  [ -n "$(bindir)" ] || missing+=(postgresql)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "cluster.sh: installing ${missing[*]} from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 \
      || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2; }
  else
    die "missing ${missing[*]} (run as root to install them from Debian)"
  fi
}

# Everything server-side runs as postgres.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then (cd "$HA_DIR" && runuser -u postgres -- "$@"); else (cd "$HA_DIR" && "$@"); fi
}

rw_url() { echo "postgres://postgres@127.0.0.1:$HA_PG_BASE/xuefen"; }
ro_url() { echo "postgres://postgres@127.0.0.1:$((HA_PG_BASE + 10))/xuefen"; }

write_haproxy() {
  local n srv_rw="" srv_ro=""
  for n in "${NODES[@]}"; do
    srv_rw+="    server node$n 127.0.0.1:$((HA_PG_BASE + n)) maxconn 500 check port $((HA_REST_BASE + n))"$'\n'
  done
  cat >"$HA_DIR/haproxy.cfg" <<CFG
global
    maxconn 2000
defaults
    mode tcp
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s
listen primary
    bind 127.0.0.1:$HA_PG_BASE
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
$srv_rw
listen replicas
    bind 127.0.0.1:$((HA_PG_BASE + 10))
    balance roundrobin
    option httpchk GET /replica
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
$srv_rw
CFG
}

write_config() {
  local n=$1 pgport=$((HA_PG_BASE + $1)) rest=$((HA_REST_BASE + $1))
  cat >"$HA_DIR/node$n.yml" <<YML
scope: xuefen-ha
name: node$n
restapi:
  listen: 127.0.0.1:$rest
  connect_address: 127.0.0.1:$rest
etcd3:
  hosts: 127.0.0.1:$HA_ETCD_PORT
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 4
    maximum_lag_on_failover: 0
    synchronous_mode: true
    synchronous_mode_strict: false
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        synchronous_commit: "on"
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 300
        shared_buffers: 128MB
        fsync: "on"
        archive_mode: "on"
        archive_command: "test ! -f $HA_DIR/wal-archive/%f && cp %p $HA_DIR/wal-archive/%f"
        archive_timeout: 10
  initdb:
    - encoding: UTF8
    - locale: C
    - auth: trust
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$pgport
  connect_address: 127.0.0.1:$pgport
  data_dir: $HA_DIR/node$n/data
  bin_dir: $(bindir)
  pgpass: $HA_DIR/node$n/pgpass
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
  parameters:
    unix_socket_directories: $HA_DIR/node$n
tags:
  nofailover: false
  noloadbalance: false
YML
}

leader_port() {
  local n
  for n in "${NODES[@]}"; do
    if curl -fsS -o /dev/null "http://127.0.0.1:$((HA_REST_BASE + n))/primary" 2>/dev/null; then
      echo $((HA_PG_BASE + n)); return 0
    fi
  done
  return 1
}

up() {
  ensure_packages
  [ -d "$HA_DIR" ] && [ -f "$HA_DIR/etcd.pid" ] && kill -0 "$(cat "$HA_DIR/etcd.pid")" 2>/dev/null \
    && die "already up ($HA_DIR); run down first"
  rm -rf "$HA_DIR"; mkdir -p "$HA_DIR/wal-archive"
  [ "$(id -u)" -eq 0 ] && chown -R postgres: "$HA_DIR"
  as_pg sh -c 'echo $$ >"$0"; exec "$@"' "$HA_DIR/etcd.pid" etcd --name ha --data-dir "$HA_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$HA_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$HA_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((HA_ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((HA_ETCD_PORT + 1))" \
    --initial-cluster "ha=http://127.0.0.1:$((HA_ETCD_PORT + 1))" >"$HA_DIR/etcd.log" 2>&1 &
  for i in $(seq 40); do
    ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$HA_ETCD_PORT" endpoint health >/dev/null 2>&1 && break
    [ "$i" -eq 40 ] && { tail "$HA_DIR/etcd.log" >&2; die "etcd did not start"; }
    sleep 0.5
  done
  local n
  for n in "${NODES[@]}"; do
    mkdir -p "$HA_DIR/node$n"; write_config "$n"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$HA_DIR/node$n" "$HA_DIR/node$n.yml"
    # exec keeps the pid in the file Patroni's own (runuser would otherwise sit in between).
    as_pg sh -c 'echo $$ >"$1"; exec patroni "$2"' sh "$HA_DIR/node$n/patroni.pid" "$HA_DIR/node$n.yml" \
      >"$HA_DIR/node$n/patroni.log" 2>&1 &
    [ "$n" -eq 1 ] && wait_leader 60 || true
  done
  wait_members 90
  write_haproxy
  [ "$(id -u)" -eq 0 ] && chown postgres: "$HA_DIR/haproxy.cfg"
  as_pg haproxy -f "$HA_DIR/haproxy.cfg" -p "$HA_DIR/haproxy.pid" -D >"$HA_DIR/haproxy.log" 2>&1
  for _ in $(seq 20); do pg_isready -q -h 127.0.0.1 -p "$HA_PG_BASE" && break; sleep 0.5; done
  local port; port=$(leader_port)
  psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc "select 1 from pg_database where datname='xuefen'" \
    | grep -q 1 || psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c 'CREATE DATABASE xuefen'
  status
  echo "DATABASE_URL=$(rw_url)"
  echo "DATABASE_READ_URL=$(ro_url)"
}

wait_leader() {
  for _ in $(seq "$1"); do leader_port >/dev/null && return 0; sleep 1; done
  die "no leader after $1 s (see $HA_DIR/node*/patroni.log)"
}

# All three running and one of them a synchronous standby.
wait_members() {
  for _ in $(seq "$1"); do
    local out; out=$(patronictl -c "$HA_DIR/node1.yml" list -f json 2>/dev/null || true)
    if [ "$(grep -o '"State": "\(running\|streaming\)"' <<<"$out" | wc -l)" -eq 3 ] \
       && grep -q '"Role": "Sync Standby"' <<<"$out"; then return 0; fi
    sleep 1
  done
  patronictl -c "$HA_DIR/node1.yml" list >&2 || true
  die "cluster did not reach 3 members with a sync standby in $1 s"
}

down() {
  [ -d "$HA_DIR" ] || { echo "cluster.sh: nothing at $HA_DIR"; return 0; }
  local n pid
  for n in "${NODES[@]}"; do
    pid=$(cat "$HA_DIR/node$n/patroni.pid" 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for n in "${NODES[@]}"; do
    pid=$(cat "$HA_DIR/node$n/patroni.pid" 2>/dev/null || true)
    for _ in $(seq 30); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    # A postmaster orphaned by a killed Patroni: stop it by its pid file.
    if [ -f "$HA_DIR/node$n/data/postmaster.pid" ]; then
      pid=$(head -1 "$HA_DIR/node$n/data/postmaster.pid"); kill -9 "$pid" 2>/dev/null || true
    fi
  done
  pid=$(cat "$HA_DIR/haproxy.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  pid=$(cat "$HA_DIR/etcd.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  for _ in $(seq 20); do [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  rm -rf "$HA_DIR"
  echo "cluster.sh: down"
}

status() { patronictl -c "$HA_DIR/node1.yml" list; }

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  url) echo "DATABASE_URL=$(rw_url)"; echo "DATABASE_READ_URL=$(ro_url)" ;;
  leader-port) leader_port ;;
  *) die "usage: $0 up|down|status|url|leader-port" ;;
esac
