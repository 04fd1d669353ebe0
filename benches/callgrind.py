#!/usr/bin/env python3
"""Instruction-count regression check of the reference scenarios (callgrind).

Usage: benches/callgrind.py [--update] [--bin PATH] [--only NAME ...] [--runs N]

Runs `varpulis run SCENARIO --input INPUT --output /dev/null --no-sinks --no-progress`
under `valgrind --tool=callgrind` for every benches/scenarios/*.vpl, on a fixed input made
by benches/generate.py (seeded, EVENTS events per scenario), and reads the total number of
instructions executed (Ir). Instruction counts, unlike times, barely move on a loaded
machine, so CI can compare them with the committed baseline (benches/callgrind-baseline.json)
and fail when a scenario costs more than 10% more instructions than it did.

  --update   measure and rewrite the baseline instead of comparing (after an intended
             change of cost, a new scenario, or a new toolchain or valgrind)
  --runs N   measure each scenario N times and report the spread between runs (the
             comparison uses the highest count)

Exit codes: 0 within the threshold, 1 a regression (or a scenario without a baseline, or
an input that no longer matches the baseline's), 2 usage or a failed run.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINE = os.path.join(ROOT, "benches", "callgrind-baseline.json")
SCENARIOS = os.path.join(ROOT, "benches", "scenarios")
# Events per scenario: a few seconds per run under callgrind (about 50x slower than native).
EVENTS = 20000
# A scenario fails when it costs more than this much more than its baseline.
THRESHOLD = 0.10


def tool_versions():
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
            return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            return "unknown"

    return {"valgrind": first_line(["valgrind", "--version"]), "rustc": first_line(["rustc", "--version"])}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def measure(binary, vpl, events_file, work):
    """Total instructions (Ir) of one run under callgrind, all threads together."""
    out = os.path.join(work, "callgrind.out")
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        binary, "run", vpl, "--input", events_file,
        "--output", "/dev/null", "--no-sinks", "--no-progress",
    ]
    # A fixed environment: no colour or log settings of the caller change the code paths.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        sys.stderr.write(run.stderr[-3000:])
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {run.returncode}")
    total = None
    with open(out) as f:
        for line in f:
            m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
            if m:
                total = int(m.group(1))
    os.remove(out)
    if total is None:
        raise RuntimeError(f"no instruction total in callgrind's output for {vpl}")
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--update", action="store_true", help="rewrite the baseline with this run's counts")
    ap.add_argument("--bin", help="the varpulis binary (default: the release build of this checkout)")
    ap.add_argument("--only", nargs="+", help="scenario names to measure")
    ap.add_argument("--runs", type=int, default=1, help="measurements per scenario (default 1)")
    ap.add_argument("--baseline", default=BASELINE, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be at least 1")

    binary = args.bin
    if binary is None:
        target = subprocess.run(["bash", os.path.join(ROOT, "scripts", "target-dir")],
                                capture_output=True, text=True, check=True).stdout.strip()
        binary = os.path.join(target, "release", "varpulis")
    if not os.access(binary, os.X_OK):
        print(f"callgrind: no varpulis binary at {binary}; run `cargo build --release --bin varpulis`",
              file=sys.stderr)
        return 2

    names = sorted(f[:-4] for f in os.listdir(SCENARIOS) if f.endswith(".vpl"))
    if args.only:
        unknown = [n for n in args.only if n not in names]
        if unknown:
            print(f"callgrind: no scenario {', '.join(unknown)} in benches/scenarios", file=sys.stderr)
            return 2
        names = [n for n in names if n in args.only]

    baseline = None
    if os.path.exists(args.baseline):
        with open(args.baseline) as f:
            baseline = json.load(f)
    elif not args.update:
        print(f"callgrind: no baseline at {args.baseline}; make one with --update", file=sys.stderr)
        return 1

    tools = tool_versions()
    with tempfile.TemporaryDirectory(prefix="varpulis-callgrind.") as work:
        subprocess.run([sys.executable, os.path.join(ROOT, "benches", "generate.py"), work,
                        "--events", str(EVENTS), "--only", *names],
                       check=True, stdout=subprocess.DEVNULL)
        inputs, counts = {}, {}
        for name in names:
            events_file = os.path.join(work, f"{name}-{EVENTS}.jsonl")
            inputs[name] = sha256(events_file)
            try:
                counts[name] = [measure(binary, os.path.join(SCENARIOS, f"{name}.vpl"), events_file, work)
                                for _ in range(args.runs)]
            except RuntimeError as e:
                print(f"callgrind: {e}", file=sys.stderr)
                return 2

    if args.update:
        old = baseline if baseline and baseline.get("events") == EVENTS else {}
        new = {
            "events": EVENTS,
            "tools": tools,
            "inputs": {**old.get("inputs", {}), **inputs},
            "instructions": {**old.get("instructions", {}), **{n: max(c) for n, c in counts.items()}},
        }
        with open(args.baseline, "w") as f:
            json.dump(new, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"callgrind: wrote {os.path.relpath(args.baseline, ROOT)} ({tools['rustc']}, {tools['valgrind']})")
        baseline = new

    problems = []
    if baseline.get("events") != EVENTS:
        problems.append(f"the baseline was measured on {baseline.get('events')} events per scenario, "
                        f"this script uses {EVENTS}: run it with --update")
    for key, now in tools.items():
        then = baseline.get("tools", {}).get(key)
        if then != now:
            print(f"callgrind: note: the baseline was measured with {then}, this is {now}; "
                  "counts can shift with the toolchain (re-baseline with --update if they do)")

    print(f"{'scenario':<16} {'baseline Ir':>15} {'now Ir':>15} {'ratio':>7} {'spread':>8}")
    for name in names:
        now = max(counts[name])
        spread = (max(counts[name]) - min(counts[name])) / min(counts[name])
        then = baseline.get("instructions", {}).get(name)
        if then is None:
            print(f"{name:<16} {'-':>15} {now:>15,} {'-':>7} {spread:>8.3%}")
            problems.append(f"`{name}` has no baseline: run with --update")
            continue
        ratio = now / then
        flag = ""
        if ratio > 1 + THRESHOLD:
            flag = "  REGRESSION"
            problems.append(f"`{name}` costs {ratio - 1:.1%} more instructions than its baseline "
                            f"(limit {THRESHOLD:.0%})")
        elif ratio < 1 - THRESHOLD:
            flag = "  faster: re-baseline with --update to keep the gain"
        if baseline.get("inputs", {}).get(name) not in (None, inputs[name]):
            problems.append(f"the input of `{name}` differs from the baseline's (benches/generate.py "
                            "or Python changed): run with --update")
        print(f"{name:<16} {then:>15,} {now:>15,} {ratio:>7.3f} {spread:>8.3%}{flag}")
    for p in problems:
        print(f"callgrind: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
