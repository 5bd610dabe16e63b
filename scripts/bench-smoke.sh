#!/usr/bin/env bash
# A short run of the benchmark (loadtests/) against a throwaway PostgreSQL,
# so that it keeps building and working; the full run is documented in
# loadtests/README.md and is too long for CI on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p xuefen -p xuefen-loadtest
# A debug build on 2 cores needs more than the smoke default of 90 s since the
# verify_baseline and sealing lines; the run stays bounded.
scripts/with-postgres.sh target/debug/xuefen-loadtest --smoke --xuefen-bin target/debug/xuefen --deadline-seconds 300
