"""``make bench``: cadence's fit against a hand-written torch loop, interleaved, medians.

Usage: ``python -m benchmarks.run [--rounds 5] [--epochs 4] [--threads 2] [--only a,b,c,d,e]
[--device cuda] [--batch-size 1024]``.

On a GPU (``--device cuda``) both sides keep the whole data set on the device and the ratio to
watch is issue 6's: (b) at batch 1024 with at least 0.97 of the hand-written loop's throughput,
i.e. a time ratio of at most 1/0.97 = 1.031.

For each workload the hand-written loop and cadence run once per round, in alternating order;
each run trains ``--epochs`` epochs (rows (d) and (e): makes ``--epochs`` predict or evaluate
passes over the data), the first being a warm-up. A round's time is the median of its counted
epochs or passes; the table shows the median over rounds and the ratio cadence / hand-written
with its target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from benchmarks import fsdp, workloads

TARGETS = {"a": 1.05, "b": 1.02, "c": 1.10, "d": 1.05, "e": 1.05}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--epochs", type=int, default=4,
                        help="epochs per run, the first one a warm-up (default 4)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--only", default="a,b,c,d,e,fsdp",
                        help="workloads to run, e.g. 'a,c,d' ('fsdp': FSDP against DDP, 2 ranks)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. 'cuda' (default cpu)")
    parser.add_argument("--batch-size", type=int, default=workloads.BATCH_SIZE,
                        help=f"batch size (default {workloads.BATCH_SIZE})")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="what is timed: wall time (default), or the process's CPU time, "
                             "steadier on a loaded machine (use with --threads 1)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.epochs < 2 or args.threads < 1 or args.batch_size < 1:
        parser.error(
            f"need rounds >= 1, epochs >= 2, threads >= 1, batch-size >= 1; received "
            f"rounds={args.rounds}, epochs={args.epochs}, threads={args.threads}, "
            f"batch-size={args.batch_size}"
        )
    unknown = sorted(set(args.only.split(",")) - {w.key for w in workloads.WORKLOADS} - {"fsdp"})
    if unknown:
        parser.error(f"--only takes workloads among a, b, c, d, e, fsdp; received {args.only!r}")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        parser.error(f"--device must be a torch device such as 'cpu' or 'cuda'; received {args.device!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device!r}: this torch build sees no CUDA device")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; return 0 (targets are reported, not enforced)."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        workloads.clock = time.process_time
    wanted = set(args.only.split(","))
    _, missing = workloads.cadence_callbacks(".")
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds of "
          f"{args.epochs} epochs (first is warm-up), device {args.device}, batch {args.batch_size}, "
          f"{workloads.SAMPLES} samples, validation_split={workloads.VALIDATION_SPLIT}, "
          f"{args.clock} clock")
    print("callbacks: History, EarlyStopping, CSVLogger, ModelCheckpoint(save_best_only)"
          + (f" (missing here: {', '.join(missing)})" if missing else ""))
    header = f"{'':3}{'workload':<62}{'hand ms':>9}{'cadence ms':>12}{'ratio':>8}{'target':>8}"
    print(header)
    for workload in workloads.WORKLOADS:
        if workload.key not in wanted:
            continue
        sides = workloads.runners(workload, device=args.device, batch_size=args.batch_size)
        times = workloads.interleaved(sides, args.rounds, args.epochs)
        hand = statistics.median(times["hand"])
        ours = statistics.median(times["cadence"])
        ratio = ours / hand
        target = TARGETS[workload.key]
        flag = "" if ratio <= target else "  (over target)"
        print(f"({workload.key}) {workload.title:<62}{hand * 1e3:>9.1f}{ours * 1e3:>12.1f}"
              f"{ratio:>8.3f}{target:>8.2f}{flag}", flush=True)
    if "fsdp" in wanted and args.device == "cpu":  # 2 gloo ranks: columns DDP ms, FSDP ms, ratio.
        print(fsdp.row(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
