#!/usr/bin/env bash
# Runs every check and test of the workspace on a fresh machine: formatting,
# lints, the core's no-I/O rule, then all tests against a throwaway
# PostgreSQL (started by scripts/with-postgres.sh unless DATABASE_URL is
# already a postgres URL) and the embedded SQLite default.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

echo "== dependency policy (cargo deny, cargo machete)"
scripts/deps-check.sh

echo "== the core does no I/O"
if cargo tree -p xuefen-core -e normal --prefix none | grep -E '^(tokio|sqlx|axum|reqwest|hyper|tracing-subscriber) '; then
    echo "xuefen-core must not depend on I/O crates" >&2
    exit 1
fi

echo "== README try-it lines"
scripts/try-it.sh

echo "== schemathesis against openapi/xuefen.json (both backends)"
scripts/with-postgres.sh scripts/schemathesis.sh

echo "== tests"
exec scripts/with-postgres.sh cargo test --workspace --locked --no-fail-fast "$@"
