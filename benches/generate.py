#!/usr/bin/env python3
"""Generates the event files for the reference benchmark scenarios.

Usage: benches/generate.py OUT_DIR [--events N ...]

Writes OUT_DIR/<scenario>-<N>.jsonl for every scenario in benches/scenarios/
and every N (default 100000 and 1000000). Events are JSON lines with an
epoch-millisecond `timestamp`, generated from a fixed seed so every run of a
benchmark reads the same input. With --evt it also writes the same events as
OUT_DIR/<scenario>-<N>.evt (`@<t>ms Type { field: value, ... }`).
"""
import argparse
import json
import os
import random


def filter_events(rng, n):
    # Sensor readings; about 10% are above the filter's threshold.
    for i in range(n):
        yield {"event_type": "Reading", "timestamp": i,
               "sensor": f"s{rng.randrange(100)}", "value": round(rng.uniform(0, 100), 2)}


def vwap_events(rng, n):
    # Trades over 1,000 symbols for the partitioned count-window VWAP.
    for i in range(n):
        yield {"event_type": "Trade", "timestamp": i, "symbol": f"SYM{rng.randrange(1000)}",
               "price": round(rng.uniform(10, 500), 2), "volume": rng.randrange(1, 1000)}


def login_events(rng, n):
    # Logins followed by transactions of the same user within a few seconds.
    t = 0
    for i in range(n):
        t += rng.randrange(1, 5)
        user = f"u{rng.randrange(10000)}"
        if i % 2 == 0:
            yield {"event_type": "Login", "timestamp": t, "user": user, "ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"}
        else:
            yield {"event_type": "Transaction", "timestamp": t, "user": user, "amount": round(rng.uniform(1, 20000), 2)}


def ema_events(rng, n):
    # A random walk per symbol for the EMA crossover.
    prices = {}
    for i in range(n):
        sym = f"SYM{rng.randrange(50)}"
        p = prices.get(sym, 100.0) * (1 + rng.uniform(-0.01, 0.01))
        prices[sym] = p
        yield {"event_type": "Tick", "timestamp": i, "symbol": sym, "price": round(p, 4)}


def sensors_events(rng, n):
    # Temperature and pressure readings from 500 machines to correlate.
    for i in range(n):
        machine = f"m{rng.randrange(500)}"
        if rng.random() < 0.5:
            yield {"event_type": "Temperature", "timestamp": i, "machine": machine, "celsius": round(rng.uniform(20, 120), 1)}
        else:
            yield {"event_type": "Pressure", "timestamp": i, "machine": machine, "bar": round(rng.uniform(1, 12), 2)}


def sequence_events(rng, n):
    # A then B per key, 1,000 open keys.
    for i in range(n):
        key = f"k{rng.randrange(1000)}"
        kind = "A" if rng.random() < 0.5 else "B"
        yield {"event_type": kind, "timestamp": i, "key": key, "value": rng.randrange(100)}


def kleene_events(rng, n):
    # Prices per symbol that rise in runs, for the rising-price Kleene pattern.
    prices = {}
    for i in range(n):
        sym = f"SYM{rng.randrange(100)}"
        p = prices.get(sym, 100.0) + rng.uniform(-1.0, 1.5)
        prices[sym] = p
        yield {"event_type": "StockTick", "timestamp": i * 10, "symbol": sym, "price": round(p, 2)}


SCENARIOS = {
    "filter": filter_events,
    "vwap": vwap_events,
    "login_join": login_events,
    "ema_crossover": ema_events,
    "multi_sensor": sensors_events,
    "sequence_ab": sequence_events,
    "kleene_rising": kleene_events,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--only", nargs="*", help="scenario names to generate")
    ap.add_argument("--evt", action="store_true", help="also write the events as .evt files")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, gen in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        for n in args.events:
            write(os.path.join(args.out_dir, f"{name}-{n}.jsonl"), gen, n, json_line)
            if args.evt:
                write(os.path.join(args.out_dir, f"{name}-{n}.evt"), gen, n, evt_line)


def write(path, gen, n, line):
    """Writes the n events of `gen` (from the fixed seed) to path, one `line(event)` each."""
    if os.path.exists(path):
        return
    rng = random.Random(42)
    with open(path, "w") as f:
        for ev in gen(rng, n):
            f.write(line(ev))
    print(f"wrote {path}")


def json_line(ev):
    return json.dumps(ev, separators=(",", ":")) + "\n"


def evt_line(ev):
    """One event as an .evt line: the same type, time and fields as its JSON line."""
    ev = dict(ev)
    kind = ev.pop("event_type")
    t = ev.pop("timestamp")
    fields = ", ".join(f"{k}: {json.dumps(v)}" for k, v in ev.items())
    return f"@{t}ms {kind} {{ {fields} }}\n"


if __name__ == "__main__":
    main()
