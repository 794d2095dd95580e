"""TerminateOnNaN: stop (or raise) at the first non-finite batch loss, reading lazy logs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import logs as logs_module
from cadence.callbacks import LambdaCallback, TerminateOnNaN


def make_model():
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.01), loss="mse")
    return model


def data(bad_value=np.nan, bad_batch=2):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    if bad_value is not None:
        y[bad_batch * 8] = bad_value  # one sample of batch `bad_batch` (batches of 8, no shuffle)
    return x, y


class Recorder(LambdaCallback):
    def __init__(self):
        self.calls = []
        super().__init__(
            on_train_batch_end=lambda batch, logs: self.calls.append(("batch", batch)),
            on_epoch_end=lambda epoch, logs: self.calls.append(("epoch", epoch)),
            on_train_end=lambda logs: self.calls.append(("end",)),
        )


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_stops_after_the_first_invalid_batch(capsys, bad_value):
    x, y = data(bad_value)
    recorder = Recorder()
    history = make_model().fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False,
                               callbacks=[TerminateOnNaN(), recorder])
    assert capsys.readouterr().out == "Batch 2: Invalid loss, terminating training\n"
    assert recorder.calls == [("batch", 0), ("batch", 1), ("batch", 2), ("epoch", 0), ("end",)]
    assert len(history.history["loss"]) == 1 and not np.isfinite(history.history["loss"][0])


def test_raise_error_raises_at_once_and_skips_on_train_end():
    x, y = data(np.nan)
    recorder = Recorder()
    with pytest.raises(RuntimeError, match=r"^NaN or Inf loss encountered at batch 2\. Loss value: nan\. "
                       r"Terminating training immediately\."):
        make_model().fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False,
                         callbacks=[TerminateOnNaN(raise_error=True), recorder])
    assert recorder.calls == [("batch", 0), ("batch", 1)]


def test_finite_losses_run_every_epoch(capsys):
    x, y = data(None)
    history = make_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[TerminateOnNaN()])
    assert len(history.history["loss"]) == 2
    assert capsys.readouterr().out == ""


def test_reads_lazy_logs_without_converting_them():
    x, y = data(None)
    before = logs_module.conversions
    make_model().fit(x, y, batch_size=8, epochs=2, verbose=0)
    plain = logs_module.conversions - before
    before = logs_module.conversions
    make_model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[TerminateOnNaN()])
    assert logs_module.conversions - before == plain  # no per-batch dict of floats is built


@pytest.mark.parametrize("logs", [
    {"loss": float("nan")}, {"loss": float("-inf")}, {"loss": torch.tensor(float("nan"))},
    {"loss": np.float32("inf")},
])
def test_plain_dicts_from_a_custom_train_step(logs, capsys):
    class Holder:
        stop_training = False

    callback = TerminateOnNaN()
    callback.set_model(Holder())
    callback.on_train_batch_end(7, logs)
    assert callback.model.stop_training
    assert capsys.readouterr().out == "Batch 7: Invalid loss, terminating training\n"


@pytest.mark.parametrize("logs", [None, {}, {"mae": float("nan")}, {"loss": 1.0}, {"loss": torch.tensor(0.5)}])
def test_nothing_to_do(logs):
    class Holder:
        stop_training = False

    callback = TerminateOnNaN()
    callback.set_model(Holder())
    callback.on_train_batch_end(0, logs)
    assert not callback.model.stop_training


def test_state_free():
    assert TerminateOnNaN().state_dict() == {}
    assert TerminateOnNaN.accepts_lazy_logs is True
