#!/usr/bin/env bash
# End-to-end benchmark of the reference scenarios: JSONL file -> varpulis run -> JSONL file.
# Prints events/s and peak memory (max RSS) per scenario and size, and beside them jq's time on the
# same input in the same run and the ratio jq seconds / varpulis seconds (absolute figures drift on
# a shared machine; a ratio taken side by side does not). The jq side is benches/jq/<scenario>.jq
# when it exists (the same work written in jq: filter), else `jq -c .` (read every event and write
# it back: less than any jq program for that scenario does, so the ratio is a lower bound).
#
# With --evt, varpulis reads the same events from an .evt file (jq still reads the JSON lines).
#
# Usage: benches/run.sh [--sizes "100000 1000000"] [--only "filter vwap"] [--workers N] [--evt] [--no-jq]
# Data is generated once into $BENCH_DATA (default $HOME/.cache/varpulis-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$(bash scripts/target-dir)"
sizes="100000 1000000"
only=""
workers=""
jq=1
evt=0
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        --no-jq) jq=0; shift ;;
        --evt) evt=1; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
data="${BENCH_DATA:-$HOME/.cache/varpulis-bench}"
mkdir -p "$data"
if [ "$jq" = 1 ] && ! command -v jq >/dev/null; then
    echo "jq is not installed (apt-get install jq, or pass --no-jq)" >&2
    exit 2
fi
cargo build --release --quiet --bin varpulis
bin="$CARGO_TARGET_DIR/release/varpulis"
# shellcheck disable=SC2086
python3 benches/generate.py "$data" --events $sizes ${only:+--only $only} $([ "$evt" = 1 ] && echo --evt) >/dev/null

printf '%-16s %9s %10s %12s %10s %9s %8s %7s\n' scenario events seconds events/s peak_MB outputs jq_secs x_jq
for vpl in benches/scenarios/*.vpl; do
    name=$(basename "$vpl" .vpl)
    if [ -n "$only" ] && ! grep -qw "$name" <<<"$only"; then continue; fi
    for n in $sizes; do
        input="$data/$name-$n.jsonl"
        ours="$input"
        [ "$evt" = 1 ] && ours="$data/$name-$n.evt"
        out="$data/$name-$n.out.jsonl"
        note=""
        # shellcheck disable=SC2086
        if ! /usr/bin/time -o "$data/time.txt" -f '%e %M' "$bin" run "$vpl" --input "$ours" --output "$out" \
            --no-sinks --no-progress ${workers:+--workers $workers} 2>"$data/stderr.txt"; then
            if [ -z "$workers" ]; then
                cat "$data/stderr.txt" >&2
                exit 1
            fi
            # Some programs cannot run partition-parallel (a join): measure them on one engine.
            /usr/bin/time -o "$data/time.txt" -f '%e %M' "$bin" run "$vpl" --input "$ours" --output "$out" \
                --no-sinks --no-progress 2>/dev/null
            note="  (no --workers: $(grep -o 'cannot run partition-parallel[^;]*' "$data/stderr.txt" | head -1))"
        fi
        stats=$(tail -1 "$data/time.txt")
        secs=${stats% *}
        kb=${stats#* }
        outputs=$(wc -l <"$out")
        jq_secs=0
        if [ "$jq" = 1 ]; then
            if [ -f "benches/jq/$name.jq" ]; then
                /usr/bin/time -o "$data/time.txt" -f '%e' jq -c -n -f "benches/jq/$name.jq" <"$input" >"$data/$name-$n.jq.jsonl"
            else
                /usr/bin/time -o "$data/time.txt" -f '%e' jq -c . <"$input" >"$data/$name-$n.jq.jsonl"
            fi
            jq_secs=$(tail -1 "$data/time.txt")
            rm -f "$data/$name-$n.jq.jsonl"
        fi
        awk -v s="$name" -v n="$n" -v t="$secs" -v kb="$kb" -v o="$outputs" -v j="$jq_secs" \
            'BEGIN { printf "%-16s %9d %10.2f %12.0f %10.1f %9d %8.2f %6.1fx", s, n, t, (t > 0 ? n / t : 0), kb / 1024, o, j, (t > 0 ? j / t : 0) }'
        echo "$note"
    done
done
