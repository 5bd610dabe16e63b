#!/usr/bin/env bash
# Dependency habits, checked in the README's test command:
# - `cargo deny check licenses bans sources` against deny.toml (permissive
#   licences only, crates.io only, no wildcard versions);
# - `cargo machete`: no dependency declared that no code uses.
# Both tools are installed from crates.io on first use (pinned versions, into
# the cargo home the rest of the build uses) and reused afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
MACHETE_VERSION=0.9.2
tools="${CARGO_HOME:-$HOME/.cargo}/bin"

need() {
    local bin=$1 crate=$2 version=$3
    if [ -x "$tools/$bin" ] && "$tools/$bin" --version 2>/dev/null | grep -q "$version"; then
        return
    fi
    echo "installing $crate $version (once per machine)"
    cargo install --locked --quiet --version "$version" "$crate"
}

need cargo-deny cargo-deny "$DENY_VERSION"
need cargo-machete cargo-machete "$MACHETE_VERSION"

"$tools/cargo-deny" --log-level error check licenses bans sources
"$tools/cargo-machete"
