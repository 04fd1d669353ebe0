#!/usr/bin/env python3
"""Feeds an http ingest endpoint at a steady rate for benches/soak.sh.

Sends JSON lines in batches over one keep-alive connection on loopback: RATE events per
second, BATCH events per POST, each batch due at its own time on a fixed schedule (a late
batch is sent at once, never skipped, so the achieved rate shows any shortfall). Events carry
epoch-millisecond timestamps at the schedule's time, over SENSORS keys, with values that make
a small fraction pass the soak program's filter. Stops after SECONDS or on SIGTERM, then prints
one line: sent, rejected (503 answers), errors, seconds, achieved events/s.

Usage: soak_feed.py URL RATE SECONDS [BATCH] [SENSORS]
"""
import http.client
import json
import signal
import sys
import time
import urllib.parse


def main():
    url = urllib.parse.urlsplit(sys.argv[1])
    rate = int(sys.argv[2])
    seconds = float(sys.argv[3])
    batch = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    sensors = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    # Per-sensor line prefixes, built once: only the value and the timestamp change.
    prefixes = ['{"event_type":"Reading","sensor":"s%d","v":' % i for i in range(sensors)]
    interval = batch / rate
    start = time.monotonic()
    wall0 = int(time.time() * 1000)
    sent = rejected = errors = 0
    n = 0
    k = 0
    while not stop:
        due = start + n * interval
        now = time.monotonic()
        if now - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        ts = wall0 + int(n * interval * 1000)
        lines = []
        for _ in range(batch):
            k += 1
            # Each sensor's value climbs 0.0, 0.1, ... 99.9 and starts again (one cycle per
            # 1000 of its events), so filters, windows and sequences all see matches.
            j = k // sensors
            lines.append('%s%d.%d,"timestamp":%d}\n' % (prefixes[k % sensors], (j // 10) % 100, j % 10, ts))
        body = "".join(lines).encode()
        try:
            conn.request("POST", url.path or "/", body, {"Content-Type": "application/x-ndjson"})
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status == 202:
                sent += batch
            elif resp.status == 503:
                # The queue stayed full: the first `accepted` events went in, the rest did not.
                accepted = json.loads(answer).get("accepted", 0)
                sent += accepted
                rejected += batch - accepted
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            time.sleep(0.1)
        n += 1
    elapsed = time.monotonic() - start
    print("sent %d rejected %d errors %d seconds %.1f rate %.0f"
          % (sent, rejected, errors, elapsed, sent / elapsed if elapsed > 0 else 0))


if __name__ == "__main__":
    main()
