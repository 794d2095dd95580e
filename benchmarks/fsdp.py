"""FSDP against DDP: 2 gloo ranks on the CPU training workload (b), the time ratio printed.

Usage: ``python -m benchmarks.fsdp [--rounds 3] [--epochs 3] [--samples 8192]`` (also a row of
``make bench``). Each round launches the two ranks once with ``compile(strategy="ddp")`` and
once with ``strategy="fsdp"``, in alternating order; a launch's time is the median of its epochs
after the first (warm-up) on rank 0. The table shows the medians over rounds and the ratio
FSDP / DDP: on one CPU machine FSDP pays an all-gather per sharded module in the forward and
backward, so this is a figure to catch regressions, not a claim about many GPUs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import workloads

BATCH_PER_RANK = 64  # A global batch of 128, as workload (b).


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per launch, the first one a warm-up (default 3)")
    parser.add_argument("--samples", type=int, default=8192, help="training samples (default 8192)")
    parser.add_argument("--worker", nargs=2, metavar=("STRATEGY", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.epochs < 2 or args.samples < 2 * BATCH_PER_RANK:
        parser.error(f"need rounds >= 1, epochs >= 2, samples >= {2 * BATCH_PER_RANK}; received "
                     f"rounds={args.rounds}, epochs={args.epochs}, samples={args.samples}")
    return args


def worker(strategy: str, out: str, epochs: int, samples: int) -> None:
    """One rank: train workload (b) under ``strategy``; rank 0 writes its epoch times to ``out``."""
    import cadence

    cadence.distributed.init_process_group("gloo", init_method=os.environ["BENCH_INIT"],
                                           rank=int(os.environ["RANK"]),
                                           world_size=int(os.environ["WORLD_SIZE"]))
    torch.set_num_threads(1)
    x, y = workloads.make_data("mlp", samples=samples)
    model = cadence.Model(workloads.make_module("mlp"))
    model.compile(optimizer=cadence.optimizers.Adam(learning_rate=1e-3),
                  loss=cadence.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], device="cpu", strategy=strategy)
    marks: list[float] = []

    class Clock(cadence.callbacks.Callback):
        def on_train_begin(self, logs=None):
            marks.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            marks.append(time.perf_counter())

    torch.manual_seed(0)
    model.fit(x, y, batch_size=BATCH_PER_RANK, epochs=epochs, verbose=0, callbacks=[Clock()])
    if cadence.distributed.is_rank_zero():
        Path(out).write_text(json.dumps([b - a for a, b in zip(marks, marks[1:], strict=False)][1:]))
    torch.distributed.destroy_process_group()


def launch(strategy: str, epochs: int, samples: int) -> float:
    """Run 2 ranks of :func:`worker`; return rank 0's median epoch seconds."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "times.json")
        init = Path(folder, "rendezvous").as_uri()
        command = [sys.executable, "-m", "benchmarks.fsdp", "--epochs", str(epochs),
                   "--samples", str(samples), "--worker", strategy, out]
        procs = [subprocess.Popen(command, env=dict(os.environ, BENCH_INIT=init, RANK=str(rank),
                                                    WORLD_SIZE="2", OMP_NUM_THREADS="1"))
                 for rank in range(2)]
        codes = [proc.wait() for proc in procs]
        if codes != [0, 0]:
            raise RuntimeError(f"the {strategy} ranks exited with {codes}")
        return statistics.median(json.loads(Path(out).read_text()))


def row(rounds: int = 3, epochs: int = 3, samples: int = 8192) -> str:
    """Return the table row: DDP and FSDP milliseconds per epoch and their ratio."""
    times: dict[str, list[float]] = {"ddp": [], "fsdp": []}
    for index in range(rounds):
        for strategy in ("ddp", "fsdp") if index % 2 == 0 else ("fsdp", "ddp"):
            times[strategy].append(launch(strategy, epochs, samples))
    ddp, fsdp = statistics.median(times["ddp"]), statistics.median(times["fsdp"])
    title = f"(b) MLP, 2 gloo ranks, {samples} samples: FSDP vs DDP"
    return f"{'':3}{title:<62}{ddp * 1e3:>9.1f}{fsdp * 1e3:>12.1f}{fsdp / ddp:>8.3f}"


def main(argv: list[str] | None = None) -> int:
    """Print the FSDP/DDP row (or run one rank with ``--worker``)."""
    args = parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], args.epochs, args.samples)
        return 0
    print(f"{'':3}{'workload':<62}{'DDP ms':>9}{'FSDP ms':>12}{'ratio':>8}")
    print(row(args.rounds, args.epochs, args.samples), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
