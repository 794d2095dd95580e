"""``make bench-peers``: the benchmark's workloads in cadence and its peers, side by side.

Usage: ``benchmarks/peers/.venv/bin/python -m benchmarks.peers.run [--rounds 3] [--epochs 3]
[--threads 2] [--only a,b,c] [--sides cadence,poutyne,...]``.

Each side (the hand-written loop, cadence, Keras 3 on TensorFlow, Keras 3 on PyTorch, Poutyne,
Lightning) runs in its own process, once per round, the order rotating between rounds; a
process trains every workload for ``--epochs`` epochs (the first a warm-up). The table shows
each side's median epoch time over rounds and its ratio to the hand-written loop. A side that
cannot be imported or fails is reported and skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
from typing import Any

from benchmarks import workloads
from benchmarks.peers.workers import SIDES

NEEDS = {
    "keras-tensorflow": ("keras", "tensorflow"),
    "keras-torch": ("keras",),
    "poutyne": ("poutyne",),
    "lightning": ("lightning",),
}


def available(side: str) -> str | None:
    """Return why ``side`` cannot run here, or ``None`` if its packages are installed."""
    missing = [name for name in NEEDS.get(side, ()) if importlib.util.find_spec(name) is None]
    return f"not installed: {', '.join(missing)}" if missing else None


def run_side(side: str, epochs: int, threads: int, keys: str, timeout: float) -> dict[str, Any]:
    """Run one side in a fresh process; return ``{key: epoch seconds or "error: ..."}``."""
    command = [sys.executable, "-m", "benchmarks.peers.workers", side, str(epochs), str(threads),
               keys]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict.fromkeys(keys.split(","), f"error: timed out after {timeout:.0f}s")
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT "):])
            for key, value in result.items():
                if isinstance(value, str):
                    tail = done.stderr.strip().splitlines()[-1:] or [""]
                    print(f"  {side} ({key}): {value} {tail[0][:200]}", flush=True)
            return result
    reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
    return dict.fromkeys(keys.split(","), f"error: exit {done.returncode}: {reason}")


def main(argv: list[str] | None = None) -> int:
    """Run every available side and print the table of ratios to the hand-written loop."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default="a,b,c")
    parser.add_argument("--sides", default=",".join(SIDES))
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per process")
    args = parser.parse_args(argv)
    keys = [k for k in args.only.split(",") if k]
    sides = []
    for side in args.sides.split(","):
        reason = available(side)
        if reason:
            print(f"skipping {side}: {reason}", flush=True)
        else:
            sides.append(side)
    if "hand-written" not in sides:
        sides.insert(0, "hand-written")
    print(f"{args.rounds} rounds of {args.epochs} epochs (first is warm-up), {args.threads} "
          f"threads, batch {workloads.BATCH_SIZE}; sides: {', '.join(sides)}", flush=True)
    times: dict[str, dict[str, list[float]]] = {s: {k: [] for k in keys} for s in sides}
    failed: dict[tuple[str, str], str] = {}
    for index in range(args.rounds):
        order = sides[index % len(sides):] + sides[:index % len(sides)]
        for side in order:
            result = run_side(side, args.epochs, args.threads, ",".join(keys), args.timeout)
            for key in keys:
                value = result.get(key, "error: no result")
                if isinstance(value, str):
                    failed[(side, key)] = value
                elif value:
                    times[side][key].append(statistics.median(value))
        print(f"round {index + 1}/{args.rounds} done", flush=True)
    titles = {workload.key: workload.title for workload in workloads.WORKLOADS}
    for key in keys:
        print(f"\n({key}) {titles[key]}")
        print(f"    {'side':<20}{'median epoch ms':>16}{'ratio to hand-written':>24}")
        hand = times["hand-written"][key]
        base = statistics.median(hand) if hand else None
        for side in sides:
            if not times[side][key]:
                print(f"    {side:<20}{'--':>16}{'--':>24}   {failed.get((side, key), '')[:80]}")
                continue
            median = statistics.median(times[side][key])
            ratio = f"{median / base:.2f}" if base else "--"
            print(f"    {side:<20}{median * 1e3:>16.1f}{ratio:>24}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
