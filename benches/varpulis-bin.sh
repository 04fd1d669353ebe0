#!/usr/bin/env bash
# Prints the path of the varpulis binary the bench scripts measure: $VARPULIS_BIN when set (a
# given build, measured as it is), else this checkout's release build, built first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${VARPULIS_BIN:-}" ]; then
    echo "$VARPULIS_BIN"
    exit 0
fi
CARGO_TARGET_DIR="$(bash scripts/target-dir)"
export CARGO_TARGET_DIR
cargo build --release --quiet --bin varpulis >&2
echo "$CARGO_TARGET_DIR/release/varpulis"
