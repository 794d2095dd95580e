"""The benchmark workloads: the same run in cadence and in a hand-written torch loop.

Rows (a) to (c) train; both sides train the same model on the same data with the same optimizer, shuffle every
epoch with one ``index_select`` per batch, compute the same loss and metric on the device as
running sums (one host transfer per epoch), validate on the last 20% of the samples, and do
the same per-epoch work as the callbacks (an early-stopping test, one CSV row, a checkpoint
when the validation loss improves).

An epoch's time is measured from the end of the previous epoch (its callbacks included) to
the end of this one, so everything the loop does between epochs is counted; the first epoch
of every run is a warm-up and is not counted.

Rows (d) and (e) are inference: ``model.predict`` and ``model.evaluate`` of a 784-128-10 MLP
over all 60,000 samples, against a hand-written ``torch.no_grad()`` loop that does the same
work (predict: every batch's output copied to the host, then one numpy array; evaluate: the
cross-entropy and the accuracy as running sums on the device, one host transfer at the end).
Each run makes ``epochs`` passes; the first is a warm-up and is not counted.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SAMPLES = 60_000
FEATURES = 784
BATCH_SIZE = 128
VALIDATION_SPLIT = 0.2

#: The clock every measurement reads: wall time by default; ``python -m benchmarks.run
#: --clock cpu`` sets ``time.process_time`` (the process's CPU time, steadier than wall time
#: on a machine shared with other work, and equal to it when the process runs alone).
clock = time.perf_counter


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark: a model, its loss/metric/optimizer, and the fit verbosity.

    Attributes:
        key: Short name printed in the table, ``"a"``, ``"b"`` or ``"c"``.
        title: What the workload is.
        kind: ``"linear"`` (seeds' model, MSE, RMSprop(0.1), MAE), ``"mlp"``
            (784-256-256-10, sparse cross-entropy from logits, Adam, accuracy) or ``"mlp128"``
            (784-128-10, for inference).
        verbose: ``fit``'s ``verbose`` (the progress bar writes to ``os.devnull``).
        task: ``"fit"``, ``"predict"`` or ``"evaluate"``.
    """

    key: str
    title: str
    kind: str
    verbose: int
    task: str = "fit"


WORKLOADS = (
    Workload("a", "Linear(784, 1), MSE, RMSprop(0.1), MAE, verbose=0", "linear", 0),
    Workload("b", "MLP 784-256-256-10, cross-entropy, Adam, accuracy, verbose=0", "mlp", 0),
    Workload("c", "Linear(784, 1), MSE, RMSprop(0.1), MAE, verbose=1", "linear", 1),
    Workload("d", "predict, MLP 784-128-10, 60,000 samples, verbose=0", "mlp128", 0, "predict"),
    Workload("e", "evaluate, MLP 784-128-10, cross-entropy, accuracy, verbose=0", "mlp128", 0,
             "evaluate"),
)


def make_data(kind: str, seed: int = 0, samples: int = SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """Return random ``(x, y)``: features in [0, 1); digit labels (float for the linear model)."""
    rng = np.random.default_rng(seed)
    x = rng.random((samples, FEATURES), dtype=np.float32)
    labels = rng.integers(0, 10, samples)
    y = labels.astype(np.float32) if kind == "linear" else labels.astype(np.int64)
    return x, y


def make_module(kind: str, seed: int = 0) -> nn.Module:
    """Return the torch module of a workload, with weights drawn from ``seed``."""
    torch.manual_seed(seed)
    if kind == "linear":
        return nn.Linear(FEATURES, 1)
    if kind == "mlp128":
        return nn.Sequential(nn.Linear(FEATURES, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(
        nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    )


def make_torch_optimizer(kind: str, module: nn.Module) -> torch.optim.Optimizer:
    """Return the hand-written loop's optimizer (the same as cadence's)."""
    if kind == "linear":
        # Keras's RMSprop: rho=0.9, epsilon=1e-7.
        return torch.optim.RMSprop(module.parameters(), lr=0.1, alpha=0.9, eps=1e-7)
    return torch.optim.Adam(module.parameters(), lr=1e-3, eps=1e-7)


@contextlib.contextmanager
def quiet_stdout():
    """Send ``sys.stdout`` to ``os.devnull`` (the progress bar's output costs its formatting)."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


class _EpochClock:
    """Records the time at the start of training and at the end of every epoch."""

    def __init__(self) -> None:
        self.marks: list[float] = []

    def start(self) -> None:
        self.marks = [clock()]

    def mark(self) -> None:
        self.marks.append(clock())

    def epoch_times(self) -> list[float]:
        """Per-epoch seconds, without the first (warm-up) epoch."""
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)][1:]


# --------------------------------------------------------------------- hand-written loop
def hand_written(
    kind: str, epochs: int, workdir: str, seed: int = 0, device: str = "cpu",
    batch_size: int = BATCH_SIZE,
) -> list[float]:
    """Train with a plain torch loop; return the per-epoch seconds (warm-up epoch excluded).

    On a GPU the whole data set lives on the device, as a hand-written loop would keep it
    (cadence is given the same tensors).
    """
    x, y = make_data(kind, seed)
    split = int(len(x) * (1 - VALIDATION_SPLIT))
    x_all, y_all = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    x_train, y_train, x_val, y_val = x_all[:split], y_all[:split], x_all[split:], y_all[split:]
    module = make_module(kind, seed).to(device)
    optimizer = make_torch_optimizer(kind, module)
    generator = torch.Generator(device=device).manual_seed(seed)
    if kind == "linear":
        def loss_and_metric(out: torch.Tensor, target: torch.Tensor) -> tuple[Any, Any]:
            target = target[:, None]
            return F.mse_loss(out, target), (out.detach() - target).abs().sum()
    else:
        def loss_and_metric(out: torch.Tensor, target: torch.Tensor) -> tuple[Any, Any]:
            return F.cross_entropy(out, target), (out.detach().argmax(-1) == target).sum()

    clock = _EpochClock()
    best = float("inf")
    wait = 0
    checkpoint = os.path.join(workdir, "hand_best.pt")
    with open(os.path.join(workdir, "hand_log.csv"), "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "loss", "metric", "val_loss", "val_metric"])
        clock.start()
        for epoch in range(epochs):
            module.train()
            order = torch.randperm(split, generator=generator, device=device)
            loss_sum = torch.zeros((), device=device)
            metric_sum = torch.zeros((), device=device)
            for begin in range(0, split, batch_size):
                rows = order[begin:begin + batch_size]
                xb, yb = x_train.index_select(0, rows), y_train.index_select(0, rows)
                out = module(xb)
                loss, metric = loss_and_metric(out, yb)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                loss_sum += loss.detach() * len(rows)
                metric_sum += metric
            module.eval()
            val_loss_sum = torch.zeros((), device=device)
            val_metric_sum = torch.zeros((), device=device)
            with torch.no_grad():
                for begin in range(0, len(x_val), batch_size):
                    xb, yb = x_val[begin:begin + batch_size], y_val[begin:begin + batch_size]
                    loss, metric = loss_and_metric(module(xb), yb)
                    val_loss_sum += loss * len(xb)
                    val_metric_sum += metric
            values = torch.stack([loss_sum, metric_sum, val_loss_sum, val_metric_sum]).tolist()
            logs = [values[0] / split, values[1] / split,
                    values[2] / len(x_val), values[3] / len(x_val)]
            writer.writerow([epoch, *logs])
            handle.flush()
            if logs[2] < best:
                best, wait = logs[2], 0
                torch.save(module.state_dict(), checkpoint)
            else:
                wait += 1
            clock.mark()
    return clock.epoch_times()


# --------------------------------------------------------------------- cadence
def cadence_callbacks(workdir: str) -> tuple[list[Any], list[str]]:
    """Return the benchmark's callbacks that exist in this checkout, and the names missing."""
    from cadence import callbacks

    wanted = {
        "EarlyStopping": lambda c: c.EarlyStopping(monitor="val_loss", patience=1000),
        "CSVLogger": lambda c: c.CSVLogger(os.path.join(workdir, "cadence_log.csv")),
        "ModelCheckpoint": lambda c: c.ModelCheckpoint(
            os.path.join(workdir, "cadence_best.pt"), monitor="val_loss", save_best_only=True
        ),
    }
    built: list[Any] = [callbacks.History()]
    missing = []
    for name, factory in wanted.items():
        if hasattr(callbacks, name):
            built.append(factory(callbacks))
        else:
            missing.append(name)
    return built, missing


def run_cadence(
    kind: str, epochs: int, workdir: str, verbose: int = 0, seed: int = 0, device: str = "cpu",
    batch_size: int = BATCH_SIZE, **fit_kwargs: Any,
) -> list[float]:
    """Train with cadence's ``fit``; return the per-epoch seconds (warm-up epoch excluded)."""
    import cadence

    x, y = make_data(kind, seed)
    if device != "cpu":  # The same device-resident tensors as the hand-written loop.
        x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    model = cadence.Model(make_module(kind, seed))
    if kind == "linear":
        model.compile(optimizer=cadence.optimizers.RMSprop(learning_rate=0.1),
                      loss="mean_squared_error", metrics=["mean_absolute_error"], device=device)
    else:
        model.compile(optimizer=cadence.optimizers.Adam(learning_rate=1e-3),
                      loss=cadence.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], device=device)
    clock = _EpochClock()

    class Clock(cadence.callbacks.Callback):
        def on_train_begin(self, logs=None):
            clock.start()

        def on_epoch_end(self, epoch, logs=None):
            clock.mark()

    callbacks, _ = cadence_callbacks(workdir)
    if verbose == 1:
        # The live bar, as in a terminal (stdout goes to os.devnull, which is not one).
        callbacks.append(cadence.callbacks.ProgbarLogger(interactive=True))
    callbacks.append(Clock())  # last: its epoch mark comes after the other callbacks' work
    context = quiet_stdout() if verbose else contextlib.nullcontext()
    torch.manual_seed(seed)
    with context:
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                  validation_split=VALIDATION_SPLIT, callbacks=callbacks, **fit_kwargs)
    return clock.epoch_times()


# --------------------------------------------------------------------- inference
def _inference_data(seed: int, device: str) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
    x, y = make_data("mlp", seed)
    return x, y, torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


def hand_inference(
    task: str, passes: int, seed: int = 0, device: str = "cpu", batch_size: int = BATCH_SIZE
) -> list[float]:
    """Predict or evaluate with a plain ``torch.no_grad()`` loop; return per-pass seconds.

    The first pass is a warm-up and is not returned.
    """
    _, _, x, y = _inference_data(seed, device)
    module = make_module("mlp128", seed).to(device).eval()
    seconds = []
    for _ in range(passes):
        start = clock()
        with torch.no_grad():
            if task == "predict":
                outputs = [module(x[b:b + batch_size]).cpu() for b in range(0, len(x), batch_size)]
                result: Any = torch.cat(outputs).numpy()
            else:
                loss_sum = torch.zeros((), device=device)
                hits = torch.zeros((), device=device)
                for begin in range(0, len(x), batch_size):
                    xb, yb = x[begin:begin + batch_size], y[begin:begin + batch_size]
                    out = module(xb)
                    loss_sum += F.cross_entropy(out, yb) * len(xb)
                    hits += (out.argmax(-1) == yb).sum()
                result = [value / len(x) for value in torch.stack([loss_sum, hits]).tolist()]
        seconds.append(clock() - start)
        del result
    return seconds[1:]


def cadence_inference(
    task: str, passes: int, seed: int = 0, device: str = "cpu", batch_size: int = BATCH_SIZE
) -> list[float]:
    """``model.predict`` or ``model.evaluate`` over the same data; return per-pass seconds.

    The first pass is a warm-up and is not returned.
    """
    import cadence

    x, y, x_device, y_device = _inference_data(seed, device)
    if device != "cpu":  # The same device-resident tensors as the hand-written loop.
        x, y = x_device, y_device
    model = cadence.Model(make_module("mlp128", seed))
    if task == "evaluate":
        model.compile(optimizer="adam",
                      loss=cadence.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], device=device)
    else:
        model.to(device)
    seconds = []
    for _ in range(passes):
        start = clock()
        if task == "predict":
            result: Any = model.predict(x, batch_size=batch_size, verbose=0)
        else:
            result = model.evaluate(x, y, batch_size=batch_size, verbose=0)
        seconds.append(clock() - start)
        del result
    return seconds[1:]


def runners(
    workload: Workload, device: str = "cpu", batch_size: int = BATCH_SIZE
) -> dict[str, Callable[[int, str], list[float]]]:
    """Return ``{"hand": fn, "cadence": fn}``, each ``fn(epochs, workdir) -> epoch seconds``."""
    if workload.task != "fit":
        return {
            "hand": lambda passes, workdir: hand_inference(
                workload.task, passes, device=device, batch_size=batch_size
            ),
            "cadence": lambda passes, workdir: cadence_inference(
                workload.task, passes, device=device, batch_size=batch_size
            ),
        }
    return {
        "hand": lambda epochs, workdir: hand_written(
            workload.kind, epochs, workdir, device=device, batch_size=batch_size
        ),
        "cadence": lambda epochs, workdir: run_cadence(
            workload.kind, epochs, workdir, verbose=workload.verbose, device=device,
            batch_size=batch_size,
        ),
    }


def interleaved(
    sides: dict[str, Callable[[int, str], list[float]]], rounds: int, epochs: int
) -> dict[str, list[float]]:
    """Run every side once per round, alternating which goes first; return each round's time.

    A round's time for a side is the median of its counted epochs.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for index in range(rounds):
        order = names if index % 2 == 0 else names[::-1]
        for name in order:
            with tempfile.TemporaryDirectory() as workdir:
                epoch_times = sides[name](epochs, workdir)
            times[name].append(float(np.median(epoch_times)))
    return times
