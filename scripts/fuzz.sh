#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that read outside bytes, with
# libFuzzer through cargo-fuzz (it needs a nightly toolchain for the
# sanitizer flags). Each target runs for FUZZ_SECONDS (default 20) from the
# seeds in fuzz/seeds/, the canonical entry examples of
# docs/ledger-format.md, and the corpus earlier runs left in
# target/fuzz-corpus/. A crash fails the run and leaves its input in
# target/fuzz-artifacts/<target>/ (printed). Without a nightly toolchain the
# run is skipped with a message. See docs/fuzzing.md.
#
#   scripts/fuzz.sh                      # every target, 20 s each
#   FUZZ_SECONDS=3600 scripts/fuzz.sh entry_decode   # one long run
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-20}"
all=(entry_decode event_body batch_body xapi_statement xapi_multipart checkpoint_note)
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: SKIPPED: no nightly toolchain here (cargo fuzz needs one for -Zsanitizer)"
    exit 0
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz --version 0.13.2
fi

corpus=target/fuzz-corpus
artifacts=target/fuzz-artifacts
mkdir -p "$corpus" "$artifacts"

# The canonical entries documented in docs/ledger-format.md seed the
# decoder, so the seeds follow the format as it is documented.
mkdir -p "$corpus/entry_decode"
python3 - "$corpus/entry_decode" <<'PY'
import re, sys, pathlib
doc = pathlib.Path("docs/ledger-format.md").read_text(encoding="utf-8")
blocks = re.findall(r"```hex canonical seq=[^\n]*\n(.*?)```", doc, re.S)
for i, block in enumerate(blocks):
    pathlib.Path(sys.argv[1], f"doc-example-{i}").write_bytes(bytes.fromhex("".join(block.split())))
print(f"fuzz: {len(blocks)} documented entries seed entry_decode")
PY

cargo +nightly fuzz build --fuzz-dir fuzz --target-dir target/fuzz
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$corpus/$t" "$artifacts/$t"
    echo "fuzz: $t for ${seconds}s"
    # Seed folders git keeps only when they hold files (entry_decode's come from the docs).
    seeds=()
    if [ -d "fuzz/seeds/$t" ]; then seeds=("fuzz/seeds/$t"); fi
    if ! cargo +nightly fuzz run --fuzz-dir fuzz --target-dir target/fuzz "$t" "$corpus/$t" "${seeds[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
        -artifact_prefix="$artifacts/$t/" -print_final_stats=1 >"$artifacts/$t.log" 2>&1; then
        failed+=("$t")
        tail -n 40 "$artifacts/$t.log"
        echo "fuzz: $t FAILED; the input is in $artifacts/$t/"
    else
        grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$artifacts/$t.log" | tr '\n' ' '
        echo
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash"
