#!/usr/bin/env bash
# Side by side: the live and --input paths of two binaries (BASE and CUR, paths to varpulis),
# alternating, on the data of benches/live.sh (run it first). Usage: BASE=... CUR=... benches/compare-live.sh
set -e
cd "$(dirname "$0")/.."
data=$HOME/.cache/varpulis-bench
base="${BASE:?path of the baseline binary}"
cur="${CUR:?path of the binary to compare}"
for round in 1 2 3; do
  for name in base cur; do
    bin=$base; [ $name = cur ] && bin=$cur
    for mode in input live; do
      if [ $mode = input ]; then args=(run benches/scenarios/filter.vpl --input $data/filter-1000000.jsonl); else args=(run $data/filter-live.vpl); fi
      /usr/bin/time -o "${TMPDIR:-/tmp}/compare-live.time" -f '%e' $bin "${args[@]}" --output "${TMPDIR:-/tmp}/compare-live.out" --no-progress 2>/dev/null
      echo "$round $name $mode $(tail -1 "${TMPDIR:-/tmp}/compare-live.time")"
    done
  done
done
