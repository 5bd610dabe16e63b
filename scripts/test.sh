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

echo "== coverage-guided fuzzing (cargo fuzz on nightly, bounded per target; docs/fuzzing.md)"
FUZZ_SECONDS="${FUZZ_SECONDS:-15}" scripts/fuzz.sh

echo "== headless Chromium for the page tests"
# The page tests (crates/xuefen/tests/api/pages.rs) load /me and /admin in
# Debian's chromium. Installed here when root with apt-get (bounded in
# time); found on PATH or through XUEFEN_CHROMIUM otherwise. Where there is
# none, the browser half of those tests skips with a SKIPPED line.
if [ -z "${XUEFEN_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        timeout 900 apt-get install -y --no-install-recommends chromium fonts-wqy-zenhei >/dev/null \
            || { timeout 300 apt-get update >/dev/null && timeout 900 apt-get install -y --no-install-recommends chromium fonts-wqy-zenhei >/dev/null; } \
            || echo "SKIPPED: could not install chromium; the page tests will skip their browser half"
    else
        echo "SKIPPED: no chromium and not root; the page tests will skip their browser half"
    fi
fi
if [ -n "${XUEFEN_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
    export XUEFEN_REQUIRE_BROWSER=1
fi

echo "== tests"
exec scripts/with-postgres.sh cargo test --workspace --locked --no-fail-fast "$@"
