"""ProgbarLogger: reads device logs at its refresh rate only; Keras's verbose 0/1/2 output."""

from __future__ import annotations

import re
import types

import numpy as np
import torch
from torch import nn

import cadence
from cadence import logs as logs_module
from cadence import metrics
from cadence.callbacks import ProgbarLogger
from cadence.callbacks import progbar as progbar_module
from cadence.logs import MetricLogs


class FakeClock:
    def __init__(self, step):
        self.now = 0.0
        self.step = step

    def monotonic(self):
        self.now += self.step
        return self.now


def _drive(monkeypatch, clock_step, batches=50, refresh=1.0):
    monkeypatch.setattr(progbar_module, "time", types.SimpleNamespace(monotonic=FakeClock(clock_step).monotonic))
    loss = metrics.Mean(name="loss")
    loss.update_state(torch.tensor([0.5]))
    bar = ProgbarLogger(refresh_seconds=refresh, interactive=True)
    bar.set_params({"epochs": 1, "steps": batches, "verbose": 1})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    before = logs_module.conversions
    for batch in range(batches):
        bar.on_train_batch_end(batch, MetricLogs([loss]))
    reads = logs_module.conversions - before
    bar.on_epoch_end(0, {"loss": 0.5})
    bar.on_train_end()
    return reads


def test_the_bar_reads_no_logs_between_refreshes(monkeypatch, capsys):
    assert _drive(monkeypatch, clock_step=0.0) == 0
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1\n")
    assert "50/50" in out and "loss: 0.5000" in out


def test_the_bar_reads_once_per_refresh_interval(monkeypatch, capsys):
    # Every clock reading advances 0.25 s: with a 1 s refresh, one read every 4 batches.
    assert _drive(monkeypatch, clock_step=0.25, batches=40) == 10
    capsys.readouterr()


def _fit(verbose, epochs=2):
    torch.manual_seed(0)
    model = cadence.Model(nn.Linear(2, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 2), dtype=np.float32), rng.random(16, dtype=np.float32)
    return model.fit(x, y, batch_size=4, epochs=epochs, verbose=verbose)


def test_verbose_0_prints_nothing(capsys):
    _fit(0)
    assert capsys.readouterr().out == ""


def test_verbose_2_prints_one_line_per_epoch(capsys):
    history = _fit(2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    for line, loss in zip(lines[1::2], history.history["loss"], strict=True):
        assert re.fullmatch(r"4/4 - \d+s - loss: \d\.\d{4}", line)
        assert line.endswith(f"loss: {loss:.4f}")


def test_verbose_1_closes_each_epoch_bar_with_the_epoch_values(capsys):
    history = _fit(1)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 2
    for loss in history.history["loss"]:
        assert f"loss: {loss:.4f}" in out


def test_format_logs_keeps_numbers_only():
    assert progbar_module.format_logs({"loss": 0.5, "lr": 1, "name": "x"}) == (
        "loss: 0.5000 - lr: 1.0000"
    )


def test_non_interactive_output_gets_one_final_line_per_epoch(capsys):
    # capsys's stdout is not a terminal: no carriage-return bar, one Keras-like line an epoch.
    before = logs_module.conversions
    history = _fit(verbose=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2"
    for line, loss in zip((lines[1], lines[3]), history.history["loss"], strict=True):
        assert re.fullmatch(r"4/4 - \d+s - loss: \d\.\d{4}", line)
        assert line.endswith(f"loss: {loss:.4f}")
    assert logs_module.conversions - before == 2  # The epoch ends' logs, nothing per batch.
