"""Speed contracts that can be checked without a clock.

- An epoch with only the default callbacks (History, and ProgbarLogger at verbose=1) converts
  no device value to Python per batch: the number of conversions does not grow with the
  number of batches.
- Memory stays flat over a long run: resident memory after warm-up stays within a few MB,
  and nothing cadence allocates grows with the number of batches (two runs that differ only in
  their number of batches per epoch grow alike).
"""

from __future__ import annotations

import functools
import os
import tracemalloc
import types

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import logs as logs_module
from cadence.callbacks import Callback
from cadence.callbacks import progbar as progbar_module

CONVERSIONS = ("item", "tolist", "__float__", "__bool__", "__int__", "numpy", "cpu")


def _model(optimizer="sgd", metrics=("mae",)):
    torch.manual_seed(0)
    model = cadence.Model(nn.Linear(4, 1))
    model.compile(optimizer=optimizer, loss="mse", metrics=list(metrics), device="cpu")
    return model


def _data(samples):
    rng = np.random.default_rng(0)
    return rng.random((samples, 4), dtype=np.float32), rng.random(samples, dtype=np.float32)


def _count_conversions(monkeypatch, run) -> dict[str, int]:
    """Run ``run()`` with every Tensor-to-Python conversion counted; return the counts."""
    counts = dict.fromkeys(CONVERSIONS, 0)
    for name in CONVERSIONS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, functools.wraps(original)(counted))
    before = logs_module.conversions
    try:
        run()
    finally:
        monkeypatch.undo()
    counts["logs.conversions"] = logs_module.conversions - before
    return counts


@pytest.mark.parametrize("verbose", [0, 1])
@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop"])
def test_default_callbacks_convert_nothing_per_batch(monkeypatch, verbose, optimizer):
    # The bar reads the device values at its refresh interval; freeze its clock so that the
    # interval never passes, whatever the machine's speed.
    frozen = types.SimpleNamespace(monotonic=lambda: 0.0)
    results = []
    for batches in (10, 40):
        x, y = _data(batches * 8)
        model = _model(optimizer)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # build metrics and optimizer state

        def run(model=model, x=x, y=y):
            monkeypatch.setattr(progbar_module, "time", frozen)
            # The live bar, as in a terminal (pytest's captured stdout is not one).
            monkeypatch.setattr(progbar_module, "_is_interactive", lambda: True)
            model.fit(x, y, batch_size=8, epochs=2, verbose=verbose, validation_split=0.2)

        results.append(_count_conversions(monkeypatch, run))
    few, many = results
    assert few == many, (few, many)
    # Per epoch: the training logs and the validation logs, one transfer each.
    assert few["logs.conversions"] == 4


def test_the_count_grows_per_batch_when_a_user_callback_reads_batch_logs(monkeypatch):
    # The counter is sensitive: a user callback on every batch costs one conversion a batch.
    class Reader(Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    counts = []
    for batches in (10, 40):
        x, y = _data(batches * 8)
        model = _model()
        counts.append(_count_conversions(
            monkeypatch,
            lambda model=model, x=x, y=y: model.fit(x, y, batch_size=8, epochs=1, verbose=0,
                                                    callbacks=[Reader()]),
        ))
    assert counts[1]["logs.conversions"] - counts[0]["logs.conversions"] == 30
    assert counts[1]["tolist"] - counts[0]["tolist"] == 30


def _resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_resident_memory_stays_flat_over_a_hundred_thousand_steps():
    readings = []

    class Resident(Callback):
        def on_epoch_end(self, epoch, logs=None):
            readings.append(_resident_bytes())

    x, y = _data(2000)
    model = _model()
    model.fit(x, y, batch_size=1, epochs=50, verbose=0, shuffle=True, callbacks=[Resident()])
    assert len(readings) == 50  # 50 epochs of 2,000 steps
    growth = max(readings[2:]) - readings[1]
    assert growth < 4 * 2**20, [r / 2**20 for r in readings]


def _cadence_bytes(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes held by allocations made in the imported cadence package's own files."""
    folders = {os.path.dirname(cadence.__file__), os.path.dirname(os.path.realpath(cadence.__file__))}
    filters = [tracemalloc.Filter(True, os.path.join(folder, "*")) for folder in folders]
    return sum(stat.size for stat in snapshot.filter_traces(filters).statistics("filename"))


def _growth_over_two_epochs(batches_per_epoch: int) -> int:
    """What cadence's allocations grow by from the end of epoch 1 to the end of epoch 3."""
    sizes = []

    class Snap(Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.last = dict(logs)  # Batch logs read every batch, as a user callback would.

        def on_epoch_end(self, epoch, logs=None):
            if epoch in (0, 2):
                sizes.append(_cadence_bytes(tracemalloc.take_snapshot()))

    x, y = _data(batches_per_epoch * 4 // 3)  # A quarter of it for validation.
    model = _model()
    tracemalloc.start()
    try:
        model.fit(x, y, batch_size=1, epochs=3, verbose=0, validation_split=0.25, callbacks=[Snap()])
    finally:
        tracemalloc.stop()
    return sizes[1] - sizes[0]


def test_nothing_cadence_allocates_grows_with_the_number_of_batches():
    # Two runs alike but for the number of batches per epoch: what grows per epoch (History's
    # lists) grows alike in both, so any difference grows with the number of batches. Keeping
    # one 8-byte reference a batch would add 8 * 2 * 600 bytes; the bound is far above
    # allocator noise and far below that. Files are matched by the imported package's real
    # folder, so the checkout's name does not matter, and nothing depends on the clock.
    _growth_over_two_epochs(30)  # Warm-up: caches filled once per process land here.
    short = _growth_over_two_epochs(600)
    long = _growth_over_two_epochs(1200)
    assert long - short < 4 * 600, (short, long)


class _SyncWatch(Callback):
    """Turns torch's CUDA sync check to "error" from the first batch to the last one's end."""

    accepts_lazy_logs = True  # The batch logs stay on the device: reading them would sync.

    def __init__(self, batches):
        super().__init__()
        self.batches = batches
        self.watched = 0

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, batch, logs=None):
        self.watched += 1
        if batch == self.batches - 1:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
# torch warns, once per process, that its sync check is a prototype; the check itself is the test.
@pytest.mark.filterwarnings("ignore:Synchronization debug mode is a prototype:UserWarning")
@pytest.mark.parametrize("placement", ["host", "device"])
def test_a_training_epoch_on_cuda_makes_no_host_device_sync(placement):
    rng = np.random.default_rng(0)
    x = rng.random((64 * 8, 32), dtype=np.float32)
    y = rng.integers(0, 10, 64 * 8)
    if placement == "device":
        x, y = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    torch.manual_seed(0)
    model = cadence.Model(nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)))
    model.compile(optimizer="adam", loss=cadence.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], device="cuda")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # Builds the optimizer's state.
    watch = _SyncWatch(8)
    try:
        model.fit(x, y, batch_size=64, epochs=2, verbose=0, callbacks=[watch])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert watch.watched == 16
