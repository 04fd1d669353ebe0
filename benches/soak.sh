#!/usr/bin/env bash
# Soak test of a live run: a release `varpulis run` of benches/soak.vpl (an http
# ingest source feeding a filter, a partitioned tumbling window and a sequence) fed at a steady
# SOAK_RATE events/s by benches/soak_feed.py over loopback, with --state-dir and a checkpoint
# every SOAK_CHECKPOINT. Every SOAK_SAMPLE seconds it records the process's resident memory
# (VmRSS), open file descriptors, threads, checkpoints and input records (from --metrics),
# prints the table, and at the end a verdict: each of RSS, fds and threads is flat when the
# average of the last third of the samples after the warm-up is within SOAK_TOLERANCE percent
# of the first third's (or below it).
#
# Usage: benches/soak.sh                      30 minutes at 100K events/s
#        SOAK_SECONDS=180 benches/soak.sh     a short run to check the set-up
# Other knobs: SOAK_RATE (100000), SOAK_SAMPLE (10), SOAK_WARMUP (60 s, not judged),
# SOAK_TOLERANCE (10), SOAK_CHECKPOINT (1s), SOAK_PORT (18941), SOAK_METRICS_PORT (18942),
# SOAK_DIR (a fresh temporary directory, removed at the end unless set).
# Exit status: 0 flat, 1 growth found or the run failed, 2 the feed missed the rate by >5%.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$(bash scripts/target-dir)"
seconds="${SOAK_SECONDS:-1800}"
rate="${SOAK_RATE:-100000}"
sample="${SOAK_SAMPLE:-10}"
warmup="${SOAK_WARMUP:-60}"
tolerance="${SOAK_TOLERANCE:-10}"
interval="${SOAK_CHECKPOINT:-1s}"
port="${SOAK_PORT:-18941}"
mport="${SOAK_METRICS_PORT:-18942}"
if [ -n "${SOAK_DIR:-}" ]; then
    dir="$SOAK_DIR"
    mkdir -p "$dir"
else
    dir="$(mktemp -d)"
fi
cargo build --release --quiet --bin varpulis
bin="$CARGO_TARGET_DIR/release/varpulis"

sed -e "s|@URL@|http://127.0.0.1:$port/ingest|" benches/soak.vpl >"$dir/soak.vpl"
rm -rf "$dir/state"
"$bin" run "$dir/soak.vpl" --state-dir "$dir/state" --checkpoint-interval "$interval" \
    --metrics "127.0.0.1:$mport" --output "$dir/out.jsonl" --no-progress \
    >"$dir/run.log" 2>&1 &
pid=$!
feed=""
cleanup() {
    [ -n "$feed" ] && kill "$feed" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "${SOAK_DIR:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT

metric() {
    # The value of one unlabelled metric, 0 when absent.
    curl -s --max-time 5 "http://127.0.0.1:$mport/metrics" |
        awk -v m="$1" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}
for _ in $(seq 1 100); do
    curl -s --max-time 1 -o /dev/null "http://127.0.0.1:$mport/metrics" && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/run.log" >&2; exit 1; }
    sleep 0.1
done

python3 benches/soak_feed.py "http://127.0.0.1:$port/ingest" "$rate" "$seconds" \
    >"$dir/feed.txt" 2>&1 &
feed=$!
start=$SECONDS
samples="$dir/samples.tsv"
printf 'secs\trss_mb\tfds\tthreads\tcheckpoints\trecords\tevents_per_s\n' >"$samples"
printf '%6s %9s %6s %8s %12s %12s %12s\n' secs rss_MB fds threads checkpoints records events/s
prev_records=0
prev_t=0
while kill -0 "$feed" 2>/dev/null; do
    sleep "$sample"
    kill -0 "$pid" 2>/dev/null || { echo "soak: varpulis exited early" >&2; cat "$dir/run.log" >&2; exit 1; }
    t=$((SECONDS - start))
    rss=$(awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$pid/status")
    fds=$(ls "/proc/$pid/fd" | wc -l)
    checkpoints=$(metric varpulis_checkpoints_total)
    records=$(metric varpulis_input_records_total)
    eps=$(awk -v a="$records" -v b="$prev_records" -v t="$t" -v p="$prev_t" \
        'BEGIN { printf "%.0f", (t > p ? (a - b) / (t - p) : 0) }')
    prev_records=$records
    prev_t=$t
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$rss" "$fds" "$threads" "$checkpoints" "$records" "$eps" >>"$samples"
    printf '%6s %9s %6s %8s %12s %12s %12s\n' "$t" "$rss" "$fds" "$threads" "$checkpoints" "$records" "$eps"
done
wait "$feed" || true
feed=""
echo "feed: $(cat "$dir/feed.txt")"
kill -TERM "$pid"
wait "$pid" || { echo "soak: varpulis did not stop cleanly" >&2; tail -20 "$dir/run.log" >&2; exit 1; }

python3 - "$samples" "$warmup" "$tolerance" "$rate" "$dir/feed.txt" <<'PY'
import sys

path, warmup, tolerance, rate, feed = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
rows = [line.rstrip("\n").split("\t") for line in open(path)][1:]
rows = [r for r in rows if float(r[0]) >= warmup]
if len(rows) < 3:
    print("verdict: too few samples after the warm-up (raise SOAK_SECONDS)")
    sys.exit(1)
third = len(rows) // 3
status = 0
for name, col in (("rss_MB", 1), ("fds", 2), ("threads", 3)):
    first = sum(float(r[col]) for r in rows[:third]) / third
    last = sum(float(r[col]) for r in rows[-third:]) / third
    change = (last - first) / first * 100 if first else 0.0
    grows = change > tolerance
    status |= 1 if grows else 0
    word = "GROWS" if grows else "flat" if change >= -tolerance else "shrinks"
    print("%-8s first third %9.1f  last third %9.1f  change %+6.1f%%  %s"
          % (name, first, last, change, word))
fields = dict(zip(*[iter(open(feed).read().split())] * 2))
achieved = float(fields.get("rate", 0))
short = achieved < rate * 0.95
print("feed     %.0f events/s of %.0f asked%s" % (achieved, rate, "  (SHORT of the rate)" if short else ""))
print("verdict: %s" % ("flat" if status == 0 else "growth"))
sys.exit(1 if status else (2 if short else 0))
PY
