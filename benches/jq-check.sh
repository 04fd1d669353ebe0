#!/usr/bin/env bash
# Checks that each jq counterpart benches/jq/<scenario>.jq does the same work as
# benches/scenarios/<scenario>.vpl: runs `varpulis run` (one engine) and `jq -c -n -f` on the same
# generated JSON lines and compares the two outputs line by line. They match when they have the
# same number of lines and each pair of lines is the same JSON object: the same keys in the same
# order, equal strings, and numbers equal within a relative 1e-9. Numbers are compared by value
# because the two sides may write them differently: a float sum may round differently when jq adds
# in another order, and jq 1.6 writes a whole float as an integer (18800 where varpulis writes
# 18800.0). Prints one line per scenario and size: `match` or the first difference; exits 1 when
# any differs.
#
# Usage: benches/jq-check.sh [--sizes "100000 1000000"] [--only "vwap kleene_rising"]
#   VARPULIS_BIN=/path/to/varpulis  use that binary instead of building the release one with cargo.
# Data is generated once into $BENCH_DATA (default $HOME/.cache/varpulis-bench), as benches/run.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="100000"
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
if ! command -v jq >/dev/null; then
    echo "jq is not installed (apt-get install jq)" >&2
    exit 2
fi
bin="$(bash benches/varpulis-bin.sh)"
data="${BENCH_DATA:-$HOME/.cache/varpulis-bench}"
mkdir -p "$data"

names=()
for prog in benches/jq/*.jq; do
    name=$(basename "$prog" .jq)
    [ -f "benches/scenarios/$name.vpl" ] || continue
    if [ -n "$only" ] && ! grep -qw "$name" <<<"$only"; then continue; fi
    names+=("$name")
done
if [ ${#names[@]} -eq 0 ]; then
    echo "no scenario with a jq program selected" >&2
    exit 2
fi
# shellcheck disable=SC2086
python3 benches/generate.py "$data" --events $sizes --only "${names[@]}" >/dev/null

status=0
for name in "${names[@]}"; do
    for n in $sizes; do
        input="$data/$name-$n.jsonl"
        ours="$data/$name-$n.check.vp.jsonl"
        theirs="$data/$name-$n.check.jq.jsonl"
        if ! "$bin" run "benches/scenarios/$name.vpl" --input "$input" --output "$ours" \
            --no-sinks --no-progress 2>"$data/check-stderr.txt"; then
            printf '%-16s %9s  varpulis failed:\n' "$name" "$n"
            cat "$data/check-stderr.txt" >&2
            status=1
            continue
        fi
        if ! jq -c -n -f "benches/jq/$name.jq" <"$input" >"$theirs" 2>"$data/check-stderr.txt"; then
            printf '%-16s %9s  jq failed:\n' "$name" "$n"
            cat "$data/check-stderr.txt" >&2
            status=1
            continue
        fi
        if ! python3 - "$name" "$n" "$ours" "$theirs" <<'PY'
import itertools
import json
import sys

name, n, ours, theirs = sys.argv[1:]


def diff(a, b, where):
    """The first difference between two decoded JSON values, or None."""
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        if a == b or abs(a - b) <= 1e-9 * max(abs(a), abs(b)):
            return None
        return f"{where}: {a!r} vs {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{where or 'object'}: keys {list(a)} vs {list(b)}"
        for k in a:
            d = diff(a[k], b[k], f"{where}.{k}" if where else k)
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} vs {len(b)} elements"
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, f"{where}[{i}]")
            if d:
                return d
        return None
    if type(a) is not type(b) or a != b:
        return f"{where}: {a!r} vs {b!r}"
    return None


lines = 0
with open(ours) as fa, open(theirs) as fb:
    for i, (la, lb) in enumerate(itertools.zip_longest(fa, fb), 1):
        if la is None or lb is None:
            rest = sum(1 for _ in (fb if la is None else fa))
            longer = "jq" if la is None else "varpulis"
            print(f"{name:<16} {n:>9}  DIFFER: {longer} has {rest + 1} more lines from line {i}")
            sys.exit(1)
        try:
            a, b = json.loads(la), json.loads(lb)
        except ValueError as e:
            print(f"{name:<16} {n:>9}  DIFFER: line {i} is not JSON: {e}")
            sys.exit(1)
        d = diff(a, b, "")
        if d:
            print(f"{name:<16} {n:>9}  DIFFER at line {i}: {d} (varpulis vs jq)")
            sys.exit(1)
        lines = i
print(f"{name:<16} {n:>9}  match ({lines} lines)")
PY
        then
            status=1
        fi
        rm -f "$ours" "$theirs" "$data/check-stderr.txt"
    done
done
exit "$status"
