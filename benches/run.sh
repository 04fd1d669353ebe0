#!/usr/bin/env bash
# End-to-end benchmark of the reference scenarios: JSONL file -> varpulis run -> JSONL file.
# Prints events/s and peak memory (max RSS) per scenario and size.
#
# Usage: benches/run.sh [--sizes "100000 1000000"] [--only "filter vwap"]
# Data is generated once into $BENCH_DATA (default $HOME/.cache/varpulis-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$(bash scripts/target-dir)"
sizes="100000 1000000"
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
data="${BENCH_DATA:-$HOME/.cache/varpulis-bench}"
mkdir -p "$data"
cargo build --release --quiet --bin varpulis
bin="$CARGO_TARGET_DIR/release/varpulis"
# shellcheck disable=SC2086
python3 benches/generate.py "$data" --events $sizes ${only:+--only $only} >/dev/null

printf '%-16s %9s %10s %12s %10s %9s\n' scenario events seconds events/s peak_MB outputs
for vpl in benches/scenarios/*.vpl; do
    name=$(basename "$vpl" .vpl)
    if [ -n "$only" ] && ! grep -qw "$name" <<<"$only"; then continue; fi
    for n in $sizes; do
        input="$data/$name-$n.jsonl"
        out="$data/$name-$n.out.jsonl"
        /usr/bin/time -o "$data/time.txt" -f '%e %M' "$bin" run "$vpl" --input "$input" --output "$out" --no-sinks --no-progress 2>/dev/null
        stats=$(tail -1 "$data/time.txt")
        secs=${stats% *}
        kb=${stats#* }
        outputs=$(wc -l <"$out")
        awk -v s="$name" -v n="$n" -v t="$secs" -v kb="$kb" -v o="$outputs" \
            'BEGIN { printf "%-16s %9d %10.2f %12.0f %10.1f %9d\n", s, n, t, (t > 0 ? n / t : 0), kb / 1024, o }'
    done
done
