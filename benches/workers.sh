#!/usr/bin/env bash
# Partition-parallel speed-up: EVENTS readings from KEYS sensors through a partitioned sliding
# aggregation (`benches/workers_agg.vpl`), run with `--workers 1` and `--workers 2` (and, for
# reference, without `--workers`). Prints events/s per run and the 1 → 2 ratio, and checks that
# both worker counts wrote byte-identical output. The input is written once to a temporary file
# so the runs read the same bytes from the page cache. Then the same program reads the same file
# as a live run (a `file` connector source, `--idle-timeout 0`), again without workers, with 1
# and with 2, and the live worker outputs are checked against each other and the --input ones.
#
# Usage: benches/workers.sh [EVENTS] [KEYS]   (defaults 2000000 and 1000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$(bash scripts/target-dir)"
n="${1:-2000000}"
keys="${2:-1000}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet --bin varpulis
bin="$CARGO_TARGET_DIR/release/varpulis"
prog=benches/workers_agg.vpl
# One reading per millisecond, sensors in turn, temperatures cycling through 0..99.
awk -v n="$n" -v k="$keys" 'BEGIN {
    for (i = 0; i < n; i++)
        printf "{\"event_type\":\"Reading\",\"timestamp\":%d,\"sensor\":\"s%d\",\"temp\":%d.5}\n", i, i % k, (i * 7) % 100
}' >"$work/in.jsonl"
printf '%-10s %10s %10s %12s %9s\n' workers events seconds events/s outputs
run() {
    local label="$1"
    shift
    /usr/bin/time -o "$work/time.txt" -f '%e' \
        "$bin" run "$prog" --input "$work/in.jsonl" --output "$work/out-$label.jsonl" \
        --no-progress "$@" 2>/dev/null
    local secs
    secs=$(tail -1 "$work/time.txt")
    echo "$secs" >"$work/secs-$label"
    awk -v l="$label" -v n="$n" -v t="$secs" -v o="$(wc -l <"$work/out-$label.jsonl")" \
        'BEGIN { printf "%-10s %10d %10.2f %12.0f %9d\n", l, n, t, (t > 0 ? n / t : 0), o }'
}
run none
run 1 --workers 1
run 2 --workers 2
if cmp -s "$work/out-1.jsonl" "$work/out-2.jsonl"; then
    echo "outputs of --workers 1 and --workers 2: identical"
else
    echo "outputs of --workers 1 and --workers 2 DIFFER" >&2
    exit 1
fi
awk -v a="$(cat "$work/secs-1")" -v b="$(cat "$work/secs-2")" \
    'BEGIN { printf "speed-up 1 -> 2 workers: %.2fx (on %d cores)\n", (b > 0 ? a / b : 0), '"$(nproc)"' }'

# The same program over a file connector source: a live run to the end of the file.
sed -e "s|^stream Stats = Reading\$|connector In = file (path: \"$work/in.jsonl\")\n\nstream Stats = Reading.from(In)|" \
    "$prog" >"$work/live.vpl"
live() {
    local label="live-$1"
    shift
    /usr/bin/time -o "$work/time.txt" -f '%e' \
        "$bin" run "$work/live.vpl" --idle-timeout 0 --output "$work/out-$label.jsonl" "$@" 2>/dev/null
    local secs
    secs=$(tail -1 "$work/time.txt")
    echo "$secs" >"$work/secs-$label"
    awk -v l="$label" -v n="$n" -v t="$secs" -v o="$(wc -l <"$work/out-$label.jsonl")" \
        'BEGIN { printf "%-10s %10d %10.2f %12.0f %9d\n", l, n, t, (t > 0 ? n / t : 0), o }'
}
live none
live 1 --workers 1
live 2 --workers 2
if cmp -s "$work/out-live-1.jsonl" "$work/out-live-2.jsonl" &&
    cmp -s "$work/out-live-1.jsonl" "$work/out-1.jsonl"; then
    echo "outputs of live --workers 1, live --workers 2 and --input --workers 1: identical"
else
    echo "live outputs DIFFER" >&2
    exit 1
fi
awk -v a="$(cat "$work/secs-live-1")" -v b="$(cat "$work/secs-live-2")" \
    'BEGIN { printf "live speed-up 1 -> 2 workers: %.2fx (on %d cores)\n", (b > 0 ? a / b : 0), '"$(nproc)"' }'
