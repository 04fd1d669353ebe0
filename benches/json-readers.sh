#!/usr/bin/env bash
# Side-by-side trial of JSON readers (benches/json-readers): for each reference scenario's input,
# the current one-pass reader (varpulis_program::json::parse_json_event, on serde_json), sonic-rs
# and simd-json each read every line into the same RawEvent; the tool first checks the three
# agree on every line, then prints the best of five rounds per reader (ns per line) and the ratio
# to the current reader. The SIMD readers only handle the flat shape the inputs use, so they do
# less work than the real reader: their figures are an upper bound.
#
# Usage: benches/json-readers.sh [EVENTS] [--native]   (default 100000; --native builds with
# -C target-cpu=native, which sonic-rs needs for its SIMD paths; release binaries are not.)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100000}"
target="$(bash scripts/target-dir)/json-readers"
if [ "${2:-}" = "--native" ]; then
    export RUSTFLAGS="-C target-cpu=native"
    target="$target-native"
fi
data="${BENCH_DATA:-$HOME/.cache/varpulis-bench}"
mkdir -p "$data"
python3 benches/generate.py "$data" --events "$n" --only filter vwap login_join kleene_rising >/dev/null
CARGO_TARGET_DIR="$target" cargo build --release --quiet --manifest-path benches/json-readers/Cargo.toml
for s in filter vwap login_join kleene_rising; do
    "$target/release/json-readers" "$data/$s-$n.jsonl"
done
