#!/usr/bin/env bash
# Latency of a live run under a sustained load: p50 / p99 / p99.9 from an event's arrival at a
# source to the hand-off of its outputs to the sinks (the run's own `varpulis_latency_seconds`
# histogram, read from `--metrics`), and through Kafka also end to end (producer's wall clock
# in the payload -> a consumer reading the output topic).
#
#   (a) http: the filter scenario behind the `http` ingest source; the generator POSTs JSON
#       lines, BATCH events per request over one keep-alive connection, paced to RATE events/s.
#   (b) kafka: the filter scenario reading one Kafka topic (tansu on 127.0.0.1, started by
#       scripts/brokers if not running) and writing its outputs to another; the producer sends
#       one event per record at RATE events/s, with `sent_us` in the payload.
#
# Each leg warms up for 3 s at the full rate, waits until the run has taken every warm-up event,
# then measures SECONDS seconds (the histogram is diffed between the two scrapes, so start-up and
# warm-up are left out). Not part of CI: this measures the machine as much as the engine.
#
# Usage: [VARPULIS_BIN=PATH] benches/latency.sh [--only http|kafka] [--rate 100000] [--seconds 20]
#            [--batch 100] [--nice]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="$(bash scripts/target-dir)"
rate=100000
seconds=20
batch=100
only=""
prio=()
while [ $# -gt 0 ]; do
    case "$1" in
        --only) only="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --seconds) seconds="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        # The run (not the generator) at the highest CPU priority: on a machine shared with
        # other work, this approximates the cores a production host would give it.
        --nice) prio=(nice -n -20); shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

# The Kafka leg needs the kafka feature (librdkafka; scripts/setup installs what it needs) and
# a Kafka client for the producer and the consumer. VARPULIS_BIN=PATH measures that binary
# instead of building one.
if [ -z "${VARPULIS_BIN:-}" ]; then
    cargo build --release --quiet --features kafka --bin varpulis
fi
if want kafka && ! python3 -c "import confluent_kafka" 2>/dev/null; then
    echo "latency: installing confluent-kafka (the bench's producer and consumer)"
    python3 -m pip install --quiet --disable-pip-version-check confluent-kafka
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/varpulis-latency.XXXXXX")"
# A copy, so a build elsewhere in this checkout cannot change the binary under the run.
bin="$work/varpulis"
cp "${VARPULIS_BIN:-$CARGO_TARGET_DIR/release/varpulis}" "$bin"
run_pid=""
cleanup() {
    if [ -n "$run_pid" ]; then kill "$run_pid" 2>/dev/null || true; fi
    if [ -n "${VARPULIS_BROKER_PIDS:-}" ]; then bash scripts/brokers stop; fi
    rm -rf "$work"
}
trap cleanup EXIT
load="python3 benches/latency_load.py"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "latency: nothing listens on 127.0.0.1:$1; the run's log:" >&2
    cat "$work"/*.log >&2
    exit 1
}
# The run's count of input records (all sources).
records() {
    curl -sf "http://127.0.0.1:$1/metrics" | awk '/^varpulis_input_records_total / { print $2 }'
}
# Waits (60 s at most) until the run has taken at least $2 records.
wait_records() {
    for _ in $(seq 1 600); do
        if [ "$(records "$1")" -ge "$2" ] 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "latency: the run took only $(records "$1") of $2 warm-up records" >&2
    exit 1
}
# CPU seconds the run has used (user + system).
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}
# Cores the run used between two cpu_seconds readings over $3 seconds.
cores() {
    awk -v a="$1" -v b="$2" -v s="$3" 'BEGIN { printf "%.2f", (b - a) / s }'
}
# The filter scenario (benches/scenarios/filter.vpl) reading from connector In.
program() {
    local extra_field=$1 extra_emit=$2 to=$3
    sed -n '/^event Reading:/,$p' benches/scenarios/filter.vpl |
        sed -e "s|^    value: float$|    value: float${extra_field}|" \
            -e "s|^stream Hot = Reading$|stream Hot = Reading.from(In)|" \
            -e "s|emit(sensor: sensor, value: value)$|emit(sensor: sensor, value: value${extra_emit})${to}|"
}
# Prints one row of the table from the quantiles JSON of a stream.
row() {
    python3 - "$@" <<'PY'
import json, sys
leg, what, rate, cores, doc = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
def ms(key):
    v = doc.get(key)
    return "-" if v is None else f"{v * 1000:.3f}"
n = doc.get("observations", 0)
print(f"{leg:<7} {what:<18} {rate:>9} {cores or '-':>6} {n:>9} {ms('p50'):>9} {ms('p99'):>9} {ms('p99.9'):>9}")
PY
}

rows=()
if want http; then
    port=$(free_port)
    mport=$(free_port)
    {
        echo "connector In = http (url: \"http://127.0.0.1:$port/ingest\")"
        echo
        program "" "" ""
    } > "$work/http.vpl"
    "${prio[@]}" "$bin" run "$work/http.vpl" --output "$work/http.out.jsonl" --no-progress \
        --metrics "127.0.0.1:$mport" 2> "$work/http.log" &
    run_pid=$!
    wait_port "$port"
    wait_port "$mport"
    $load http "http://127.0.0.1:$port/ingest" --rate "$rate" --seconds 3 --batch "$batch" > "$work/warm.json"
    wait_records "$mport" "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sent"])' "$work/warm.json")"
    curl -sf "http://127.0.0.1:$mport/metrics" > "$work/before.prom"
    cpu0=$(cpu_seconds "$run_pid")
    $load http "http://127.0.0.1:$port/ingest" --rate "$rate" --seconds "$seconds" --batch "$batch" > "$work/http.json"
    cpu1=$(cpu_seconds "$run_pid")
    curl -sf "http://127.0.0.1:$mport/metrics" > "$work/after.prom"
    kill -INT "$run_pid"
    wait "$run_pid" || true
    run_pid=""
    achieved=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(d["rate"], d["refused"])' "$work/http.json")
    echo "http: generator $(cat "$work/http.json")"
    q=$($load quantiles "$work/before.prom" "$work/after.prom")
    rows+=("$(row http "in-process (Hot)" "${achieved% *}" "$(cores "$cpu0" "$cpu1" "$seconds")" "$(python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])["Hot"]))' "$q")")")
fi

if want kafka; then
    if [ -z "${VARPULIS_TEST_KAFKA:-}" ]; then
        export VARPULIS_BROKER_PIDS="$work/broker.pids"
        bash scripts/brokers start >/dev/null
        eval "$(bash scripts/brokers env)"
    fi
    brokers="$VARPULIS_TEST_KAFKA"
    id="$(date +%s)-$$"
    in_topic="latency-in-$id"
    out_topic="latency-out-$id"
    $load kafka-topics "$brokers" "$in_topic" "$out_topic"
    mport=$(free_port)
    {
        echo "connector In = kafka (brokers: \"$brokers\", topic: \"$in_topic\", group_id: \"latency-$id\", start: earliest, session_timeout: 6s)"
        # linger_ms 1: outputs leave within a millisecond instead of librdkafka's 5 ms.
        echo "connector Out = kafka (brokers: \"$brokers\", topic: \"$out_topic\", linger_ms: 1, acks: 1)"
        echo
        program '\n    sent_us: int' ", sent_us: sent_us" '\n    .to(Out)'
    } > "$work/kafka.vpl"
    "${prio[@]}" "$bin" run "$work/kafka.vpl" --output /dev/null --no-progress --metrics "127.0.0.1:$mport" 2> "$work/kafka.log" &
    run_pid=$!
    wait_port "$mport"
    $load kafka-consume "$brokers" "$out_topic" --seconds $((seconds + 120)) --out "$work/e2e.txt" &
    consumer_pid=$!
    $load kafka-produce "$brokers" "$in_topic" --rate "$rate" --seconds 3 > "$work/warm.json"
    wait_records "$mport" "$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sent"])' "$work/warm.json")"
    curl -sf "http://127.0.0.1:$mport/metrics" > "$work/before.prom"
    since_us=$(python3 -c 'import time; print(time.time_ns() // 1000)')
    cpu0=$(cpu_seconds "$run_pid")
    $load kafka-produce "$brokers" "$in_topic" --rate "$rate" --seconds "$seconds" > "$work/kafka.json"
    cpu1=$(cpu_seconds "$run_pid")
    # Let the last events through before reading the histogram.
    sleep 2
    curl -sf "http://127.0.0.1:$mport/metrics" > "$work/after.prom"
    wait "$consumer_pid" || true
    kill -INT "$run_pid"
    wait "$run_pid" || true
    run_pid=""
    achieved=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["rate"])' "$work/kafka.json")
    echo "kafka: producer $(cat "$work/kafka.json")"
    q=$($load quantiles "$work/before.prom" "$work/after.prom")
    rows+=("$(row kafka "in-process (Hot)" "$achieved" "$(cores "$cpu0" "$cpu1" "$seconds")" "$(python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])["Hot"]))' "$q")")")
    rows+=("$(row kafka "end to end" "$achieved" "" "$($load e2e "$work/e2e.txt" --since-us "$since_us")")")
fi

printf '%-7s %-18s %9s %6s %9s %9s %9s %9s\n' leg latency events/s cores outputs p50_ms p99_ms p99.9_ms
printf '%s\n' "${rows[@]}"
