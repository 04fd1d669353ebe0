#!/usr/bin/env bash
# End-to-end benchmark of the reference scenarios: JSONL file -> varpulis run -> JSONL file.
# Prints events/s and peak memory (max RSS) per scenario and size, and beside them jq's time on the
# same input in the same run and the ratio jq seconds / varpulis seconds (absolute figures drift on
# a shared machine; a ratio taken side by side does not). Two jq figures:
#   jq_secs, x_jq    benches/jq/<scenario>.jq, the same work written in jq (same outputs, checked
#                    by benches/jq-check.sh); `-` for a scenario without one.
#   jqc_secs, x_jqc  `jq -c .` on the same input, for every scenario: read every event and write it
#                    back, less than any jq program for the scenario does, so a lower bound.
#
# With --evt, varpulis reads the same events from an .evt file (jq still reads the JSON lines).
#
# Usage: benches/run.sh [--sizes "100000 1000000"] [--only "filter vwap"] [--workers N] [--evt] [--no-jq]
#   VARPULIS_BIN=/path/to/varpulis  measure that binary instead of building the release one with cargo.
# Data is generated once into $BENCH_DATA (default $HOME/.cache/varpulis-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
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
bin="$(bash benches/varpulis-bin.sh)"
evt_flag=()
[ "$evt" = 1 ] && evt_flag=(--evt)
# shellcheck disable=SC2086
python3 benches/generate.py "$data" --events $sizes ${only:+--only $only} "${evt_flag[@]}" >/dev/null

printf '%-16s %9s %10s %12s %10s %9s %8s %7s %8s %7s\n' \
    scenario events seconds events/s peak_MB outputs jq_secs x_jq jqc_secs x_jqc
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
        # "-" where a figure is not measured: no jq program for the scenario, or --no-jq.
        jq_secs=-
        jqc_secs=-
        if [ "$jq" = 1 ]; then
            if [ -f "benches/jq/$name.jq" ]; then
                /usr/bin/time -o "$data/time.txt" -f '%e' jq -c -n -f "benches/jq/$name.jq" <"$input" >"$data/$name-$n.jq.jsonl"
                jq_secs=$(tail -1 "$data/time.txt")
            fi
            /usr/bin/time -o "$data/time.txt" -f '%e' jq -c . <"$input" >"$data/$name-$n.jq.jsonl"
            jqc_secs=$(tail -1 "$data/time.txt")
            rm -f "$data/$name-$n.jq.jsonl"
        fi
        awk -v s="$name" -v n="$n" -v t="$secs" -v kb="$kb" -v o="$outputs" -v j="$jq_secs" -v c="$jqc_secs" '
            function secs(x) { return x == "-" ? sprintf("%8s", "-") : sprintf("%8.2f", x) }
            function ratio(x) { return (x == "-" || t <= 0) ? sprintf("%7s", "-") : sprintf("%6.1fx", x / t) }
            BEGIN { printf "%-16s %9d %10.2f %12.0f %10.1f %9d %s %s %s %s", s, n, t, (t > 0 ? n / t : 0),
                           kb / 1024, o, secs(j), ratio(j), secs(c), ratio(c) }'
        echo "$note"
    done
done
