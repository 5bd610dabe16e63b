#!/usr/bin/env bash
# A short run of the benchmark (loadtests/) against a throwaway PostgreSQL,
# so that it keeps building and working; the full run is documented in
# loadtests/README.md and is too long for CI on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p xuefen -p xuefen-loadtest
scripts/with-postgres.sh target/debug/xuefen-loadtest --smoke --xuefen-bin target/debug/xuefen
