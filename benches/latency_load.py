#!/usr/bin/env python3
"""Load generator and latency reader for benches/latency.sh.

  latency_load.py http URL --rate R --seconds S --batch B
      POSTs filter-scenario readings (JSON lines, B per request, no timestamp: event time is
      the arrival) to URL over one keep-alive connection, paced to R events/s for S seconds.
  latency_load.py kafka-topics BROKERS TOPIC...
      creates the topics (one partition each).
  latency_load.py kafka-produce BROKERS TOPIC --rate R --seconds S
      produces one reading per record, carrying `sent_us` (wall clock, microseconds); reports
      the send -> broker acknowledgement latency of every 100th record (ack_p50_ms, ack_p99_ms).
  latency_load.py kafka-consume BROKERS TOPIC --seconds S --out FILE
      reads the output topic from the start until S seconds pass or 3 s without a record, and
      writes `sent_us latency_us` (latency: arrival here - sent_us) per record to FILE.
  latency_load.py e2e FILE --since-us T
      prints the exact quantiles of the latencies in FILE of records sent at or after T.
  latency_load.py quantiles BEFORE AFTER
      reads two scrapes of /metrics and prints, per stream, the quantiles of the observations
      of `varpulis_latency_seconds` made between them.

Every load loop is bounded in time and talks to 127.0.0.1 only. The generators print one JSON
line: events sent, seconds, achieved rate, and problems (refused requests, produce errors).
"""
import http.client
import json
import random
import re
import sys
import time
import urllib.parse

QUANTILES = (0.5, 0.99, 0.999)


def readings(rng, n, extra=""):
    """`n` filter-scenario readings as JSON lines (about 10% above the 90.0 threshold)."""
    return [
        f'{{"event_type":"Reading","sensor":"s{rng.randrange(100)}","value":{rng.uniform(0, 100):.2f}{extra}}}'
        for _ in range(n)
    ]


def paced(rate, seconds, step):
    """Yields (i, due) every `step` events on the schedule of `rate` events/s, for `seconds`."""
    start = time.perf_counter()
    total = int(rate * seconds)
    sent = 0
    while sent < total:
        due = start + sent / rate
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        yield min(step, total - sent)
        sent += step
    return


def http_load(url, rate, seconds, batch):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    rng = random.Random(42)
    # Bodies are made ahead (a pool reused in turn) so the generator spends its time sending.
    pool = ["\n".join(readings(rng, batch)).encode() for _ in range(64)]
    sent = refused = 0
    start = time.perf_counter()
    for i, n in enumerate(paced(rate, seconds, batch)):
        body = pool[i % len(pool)] if n == batch else "\n".join(readings(rng, n)).encode()
        conn.request("POST", u.path, body=body, headers={"Content-Type": "application/x-ndjson"})
        resp = conn.getresponse()
        resp.read()
        if resp.status == 202:
            sent += n
        else:
            refused += n
    elapsed = time.perf_counter() - start
    conn.close()
    print(json.dumps({"sent": sent, "refused": refused, "seconds": round(elapsed, 2),
                      "rate": round(sent / elapsed)}))


def kafka_topics(brokers, topics):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})
    futures = admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1) for t in topics])
    for topic, f in futures.items():
        f.result(timeout=30)


def kafka_produce(brokers, topic, rate, seconds):
    from confluent_kafka import Producer

    # linger.ms 1: the producer sends within a millisecond instead of librdkafka's 5 ms.
    p = Producer({"bootstrap.servers": brokers, "linger.ms": 1, "acks": 1,
                  "queue.buffering.max.messages": 1_000_000})
    rng = random.Random(42)
    errors = 0
    # Send -> broker acknowledgement of every 100th record: the part of the end-to-end latency
    # spent before the run could see the record (the producer's queue and the broker's append).
    acked = []

    def report(err, _msg):
        nonlocal errors
        if err is not None:
            errors += 1

    def sampled(sent_us):
        def on_delivery(err, msg):
            report(err, msg)
            if err is None:
                acked.append(time.time_ns() // 1000 - sent_us)
        return on_delivery

    sent = 0
    start = time.perf_counter()
    step = max(1, rate // 1000)
    for n in paced(rate, seconds, step):
        for line in readings(rng, n, ""):
            # The send time goes in last, as late as possible before the record is handed over.
            now_us = time.time_ns() // 1000
            p.produce(topic, f'{line[:-1]},"sent_us":{now_us}}}'.encode(),
                      on_delivery=sampled(now_us) if sent % 100 == 0 else report)
            sent += 1
        p.poll(0)
    p.flush(30)
    elapsed = time.perf_counter() - start
    acked.sort()

    def ack_ms(q):
        return round(acked[min(len(acked) - 1, int(q * len(acked)))] / 1000, 3) if acked else None

    print(json.dumps({"sent": sent, "errors": errors, "seconds": round(elapsed, 2),
                      "rate": round(sent / elapsed), "ack_p50_ms": ack_ms(0.5),
                      "ack_p99_ms": ack_ms(0.99)}))


def kafka_consume(brokers, topic, seconds, out):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": f"latency-{topic}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    # The partition is assigned, not subscribed: joining a group can take a broker many
    # seconds, which would show up as latency.
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    pairs = []
    bad = 0
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        msgs = c.consume(num_messages=1000, timeout=0.2)
        now_us = time.time_ns() // 1000
        if not msgs:
            if last is not None and time.monotonic() - last > 3:
                break
            continue
        last = time.monotonic()
        for m in msgs:
            if m.error():
                bad += 1
                continue
            try:
                sent = int(json.loads(m.value())["sent_us"])
                pairs.append(f"{sent} {now_us - sent}")
            except (ValueError, KeyError, TypeError):
                bad += 1
    c.close()
    with open(out, "w") as f:
        f.write("\n".join(pairs))
        f.write("\n")
    if bad:
        print(f"kafka-consume: {bad} records without a readable sent_us", file=sys.stderr)


def e2e(path, since_us):
    """Exact quantiles (seconds) of the end-to-end latencies of records sent at or after
    `since_us`, from the `sent_us latency_us` lines kafka-consume wrote."""
    values = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and int(parts[0]) >= since_us:
                values.append(int(parts[1]))
    values.sort()
    result = {"observations": len(values)}
    for q in QUANTILES:
        result[f"p{q * 100:g}"] = values[min(len(values) - 1, int(q * len(values)))] / 1e6 if values else None
    print(json.dumps(result))


def parse_metrics(path):
    """stream -> ([(le, cumulative count)], count) of `varpulis_latency_seconds`."""
    streams = {}
    pat = re.compile(r'^varpulis_latency_seconds_bucket\{stream="([^"]*)",le="([^"]+)"\} (\d+)')
    with open(path) as f:
        for line in f:
            m = pat.match(line)
            if m:
                le = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
                streams.setdefault(m.group(1), []).append((le, int(m.group(3))))
    return streams


def bucket_quantile(buckets, q):
    """The `q` quantile of cumulative buckets, interpolated within its bucket (as the server's
    status does), or None when empty."""
    total = buckets[-1][1] if buckets else 0
    if total == 0:
        return None
    rank = q * total
    low, seen = 0.0, 0
    for le, cum in buckets:
        if cum >= rank and cum > seen:
            if le == float("inf"):
                return low
            return low + (le - low) * (rank - seen) / (cum - seen)
        low, seen = le, cum
    return low


def quantiles(before_path, after_path):
    before, after = parse_metrics(before_path), parse_metrics(after_path)
    result = {}
    for stream, buckets in after.items():
        old = dict(before.get(stream, []))
        diff = [(le, cum - old.get(le, 0)) for le, cum in sorted(buckets)]
        result[stream] = {"observations": diff[-1][1] if diff else 0,
                          **{f"p{q * 100:g}": bucket_quantile(diff, q) for q in QUANTILES}}
    print(json.dumps(result))


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2

    def opt(name, default=None):
        if name in args:
            return args[args.index(name) + 1]
        return default

    cmd = args[0]
    if cmd == "http":
        http_load(args[1], int(opt("--rate")), float(opt("--seconds")), int(opt("--batch", 100)))
    elif cmd == "kafka-topics":
        kafka_topics(args[1], args[2:])
    elif cmd == "kafka-produce":
        kafka_produce(args[1], args[2], int(opt("--rate")), float(opt("--seconds")))
    elif cmd == "kafka-consume":
        kafka_consume(args[1], args[2], float(opt("--seconds")), opt("--out"))
    elif cmd == "e2e":
        e2e(args[1], int(opt("--since-us")))
    elif cmd == "quantiles":
        quantiles(args[1], args[2])
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
