#!/usr/bin/env bash
# End-to-end benchmark of a live run: the filter scenario's events read by a `file` connector
# source (`Reading.from(In)`) instead of `--input`, through the same engine, to a JSONL file.
# The difference to `benches/run.sh --only filter` is the cost of the live path: source thread,
# channel, per-payload decoding and the event-time merge of sources.
#
# Usage: benches/live.sh [EVENTS]   (default 1000000; data shared with benches/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$(bash scripts/target-dir)"
n="${1:-1000000}"
data="${BENCH_DATA:-$HOME/.cache/varpulis-bench}"
mkdir -p "$data"
cargo build --release --quiet --bin varpulis
bin="$CARGO_TARGET_DIR/release/varpulis"
python3 benches/generate.py "$data" --events "$n" --only filter >/dev/null
input="$data/filter-$n.jsonl"
prog="$data/filter-live.vpl"
sed -e "s|^stream Hot = Reading$|connector In = file (path: \"$input\")\n\nstream Hot = Reading.from(In)|" \
    benches/scenarios/filter.vpl > "$prog"
printf '%-22s %9s %10s %12s %10s %9s\n' mode events seconds events/s peak_MB outputs
for mode in input live; do
    out="$data/filter-$mode.out.jsonl"
    if [ "$mode" = input ]; then
        args=(run benches/scenarios/filter.vpl --input "$input")
    else
        args=(run "$prog")
    fi
    /usr/bin/time -o "$data/time.txt" -f '%e %M' "$bin" "${args[@]}" --output "$out" --no-progress 2>/dev/null
    stats=$(tail -1 "$data/time.txt")
    secs=${stats% *}
    kb=${stats#* }
    outputs=$(wc -l <"$out")
    awk -v m="$mode" -v n="$n" -v t="$secs" -v kb="$kb" -v o="$outputs" \
        'BEGIN { printf "%-22s %9d %10.2f %12.0f %10.1f %9d\n", "filter (" m ")", n, t, (t > 0 ? n / t : 0), kb / 1024, o }'
done
