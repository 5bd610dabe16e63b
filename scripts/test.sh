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

echo "== @digitalbazaar/vc for the record test"
# crates/xuefen/tests/api/record.rs verifies an issued record with Digital
# Bazaar's verifier (node). Its packages go into a folder of this run
# (bounded in time); without node/npm the test skips that part visibly.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    NODE_VC_DIR="${CARGO_TARGET_DIR:-target}/node-vc"
    mkdir -p "$NODE_VC_DIR"
    if timeout 300 npm install --prefix "$NODE_VC_DIR" --no-audit --no-fund --silent \
        @digitalbazaar/vc@7.3.0 @digitalbazaar/data-integrity@2.5.0 \
        @digitalbazaar/eddsa-rdfc-2022-cryptosuite@1.3.0 @digitalbazaar/eddsa-jcs-2022-cryptosuite@1.0.0 \
        @digitalbazaar/multikey-context@2.0.1 \
        did-context@3.1.1 >/dev/null; then
        XUEFEN_NODE_VC_DIR="$(cd "$NODE_VC_DIR" && pwd)"
        export XUEFEN_NODE_VC_DIR XUEFEN_REQUIRE_NODE_VC=1
    else
        echo "SKIPPED: npm could not install @digitalbazaar/vc; the record test skips its node part"
    fi
else
    echo "SKIPPED: no node/npm; the record test skips its @digitalbazaar/vc part"
fi

echo "== tests"
exec scripts/with-postgres.sh cargo test --workspace --locked --no-fail-fast "$@"
