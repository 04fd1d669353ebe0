#!/usr/bin/env bash
# Bounded keyed state: EVENTS clicks, each from a new user, through a partitioned count window
# (`benches/bounded_keys.vpl`) with `max_keys: 100000`, and for comparison the same
# rules without the bound on a smaller number of keys. Prints events/s, peak RSS (VmHWM of the
# `varpulis run` process, from GNU time) and the outputs. The events are generated on the fly and
# piped to stdin, so no input file of gigabytes is written.
#
# Usage: benches/bounded.sh [EVENTS] [UNBOUNDED_EVENTS]   (defaults 10000000 and 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$(bash scripts/target-dir)"
n="${1:-10000000}"
m="${2:-1000000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --bin varpulis
bin="$CARGO_TARGET_DIR/release/varpulis"
bounded=benches/bounded_keys.vpl
unbounded="$work/unbounded_keys.vpl"
sed -e 's/\.partition_by(user, max_keys: 100000)/.partition_by(user)/' "$bounded" > "$unbounded"
# One click per millisecond, each from a user never seen before.
clicks() {
    awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "{\"event_type\":\"Click\",\"timestamp\":%d,\"user\":\"u%d\"}\n", i, i }'
}
printf '%-12s %10s %10s %12s %10s %9s\n' rules events seconds events/s peak_MB outputs
for mode in bounded unbounded; do
    if [ "$mode" = bounded ]; then prog="$bounded"; count="$n"; else prog="$unbounded"; count="$m"; fi
    clicks "$count" | /usr/bin/time -o "$work/time.txt" -f '%e %M' \
        "$bin" run "$prog" --input - --output "$work/out.jsonl" --no-progress 2>/dev/null
    stats=$(tail -1 "$work/time.txt")
    secs=${stats% *}
    kb=${stats#* }
    outputs=$(wc -l <"$work/out.jsonl")
    awk -v m="$mode" -v n="$count" -v t="$secs" -v kb="$kb" -v o="$outputs" \
        'BEGIN { printf "%-12s %10d %10.2f %12.0f %10.1f %9d\n", m, n, t, (t > 0 ? n / t : 0), kb / 1024, o }'
done
