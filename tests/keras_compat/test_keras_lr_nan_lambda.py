"""Keras 3 compatibility: LearningRateScheduler, TerminateOnNaN and LambdaCallback.

Written from Keras 3's documented behaviour and its callback tests (keras/src/callbacks/
*_test.py); the expected numbers and messages are Keras's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks


def make_model(optimizer="sgd", seed=0):
    torch.manual_seed(seed)
    model = cadence.Sequential(nn.Linear(3, 5), nn.Linear(5, 2))
    model.compile(optimizer=optimizer, loss="mse", device="cpu")
    return model


def data(n=10):
    rng = np.random.default_rng(0)
    x = rng.random((n, 3), dtype=np.float32)
    return x, np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]


# ----------------------------------------------------------------- LearningRateScheduler
def test_lr_scheduler_sets_the_learning_rate():
    """Keras: schedule `1 / (2 + epoch)` for one epoch leaves lr 0.5."""
    model = make_model()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda step: 1.0 / (2.0 + step))])
    assert model.optimizer.learning_rate == 0.5


def test_lr_scheduler_verbose_message(capsys):
    """Keras: `Epoch 1: LearningRateScheduler setting learning rate to 1.0.` with verbose=1."""
    x, y = data()
    make_model().fit(x, y, epochs=1, verbose=0,
                     callbacks=[callbacks.LearningRateScheduler(lambda step: 1.0 / (1.0 + step), verbose=1)])
    assert capsys.readouterr().out == "\nEpoch 1: LearningRateScheduler setting learning rate to 1.0.\n"


def test_lr_scheduler_depends_on_the_previous_rate():
    """Keras: `lr / 2` from Adam(0.03) for two epochs leaves 0.03 / 4."""
    model = make_model(cadence.optimizers.Adam(learning_rate=0.03))
    x, y = data()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda step, lr: lr / 2)])
    assert model.optimizer.learning_rate == pytest.approx(0.03 / 4.0)


def test_lr_scheduler_logs_the_rate_as_a_float():
    """Keras: history['learning_rate'] holds Python floats: [0.5]."""
    x, y = data()
    history = make_model().fit(x, y, epochs=1, verbose=0,
                               callbacks=[callbacks.LearningRateScheduler(lambda step, lr: 0.5)])
    assert history.history["learning_rate"] == [0.5] and type(history.history["learning_rate"][0]) is float


def test_lr_scheduler_refuses_a_learning_rate_schedule():
    """Keras: TypeError `This optimizer was created with a LearningRateSchedule` ..."""
    schedule = cadence.optimizers.schedules.PolynomialDecay(initial_learning_rate=0.1, decay_steps=10)
    model = make_model(cadence.optimizers.Adam(learning_rate=schedule))
    x, y = data()
    with pytest.raises(TypeError, match="This optimizer was created with a `LearningRateSchedule`"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.LearningRateScheduler(lambda step, lr: lr / 2)])


# ----------------------------------------------------------------- TerminateOnNaN
def test_terminate_on_nan_stops_after_the_first_epoch(capsys):
    """Keras: an infinite loss in the first batch stops training; history has one non-finite loss."""
    x, y = data()
    history = make_model().fit(x, np.full_like(y, np.inf), batch_size=4, epochs=20, verbose=0,
                               validation_data=(x, y), callbacks=[callbacks.TerminateOnNaN()])
    assert len(history.history["loss"]) == 1 and not np.isfinite(history.history["loss"][0])
    assert capsys.readouterr().out == "Batch 0: Invalid loss, terminating training\n"


def test_terminate_on_nan_raise_error_message_and_no_on_train_end():
    """Keras: raise_error=True raises `NaN or Inf loss encountered at batch 1. Loss value: ...` at once."""
    ended = []
    tracking = callbacks.LambdaCallback(on_train_end=lambda logs: ended.append(True))
    x = np.array([[1.0, 0, 0], [2.0, 0, 0]], dtype=np.float32)
    y = np.array([[1.0, 1.0], [np.inf, np.inf]], dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"^NaN or Inf loss encountered at batch 1\. Loss value: (inf|nan)\. "
                                           r"Terminating training immediately\."):
        make_model().fit(x, y, batch_size=1, epochs=1, verbose=0, shuffle=False,
                         callbacks=[tracking, callbacks.TerminateOnNaN(raise_error=True)])
    assert ended == []


@pytest.mark.parametrize("raise_error", [False, True])
def test_terminate_on_nan_leaves_normal_training_alone(raise_error):
    """Keras: finite losses train all epochs."""
    x, y = data()
    history = make_model().fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.TerminateOnNaN(raise_error=raise_error)])
    assert len(history.history["loss"]) == 2


# ----------------------------------------------------------------- LambdaCallback
def test_lambda_callback_epoch_and_train_hooks():
    """Keras: on_train_begin(logs), on_epoch_begin/end(epoch, logs), on_train_end(logs) are called."""
    calls = []
    callback = callbacks.LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: calls.append(f"epoch_begin {epoch}"),
        on_epoch_end=lambda epoch, logs: calls.append(f"epoch_end {epoch}"),
        on_train_end=lambda logs: calls.append("train_end"),
    )
    x, y = data(16)
    make_model().fit(x, y, batch_size=4, epochs=2, verbose=0, validation_split=0.2, callbacks=[callback])
    assert calls == ["train_begin", "epoch_begin 0", "epoch_end 0", "epoch_begin 1", "epoch_end 1", "train_end"]


def test_lambda_callback_batch_hooks():
    """Keras: on_train_batch_begin/end(batch, logs) are called for every batch."""
    calls = []
    callback = callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: calls.append(("begin", batch)),
        on_train_batch_end=lambda batch, logs: calls.append(("end", batch, sorted(logs))),
    )
    x, y = data(8)
    make_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])
    assert calls == [("begin", 0), ("end", 0, ["loss"]), ("begin", 1), ("end", 1, ["loss"])]


def test_lambda_callback_other_hooks_by_keyword():
    """Keras: any Callback hook can be given by keyword (on_test_begin, on_predict_begin)."""
    calls = []
    callback = callbacks.LambdaCallback(on_test_begin=lambda logs: calls.append("test_begin"),
                                        on_predict_begin=lambda logs: calls.append("predict_begin"))
    model = make_model()
    x, y = data(8)
    model.evaluate(x, y, verbose=0, callbacks=[callback])
    model.predict(x, verbose=0, callbacks=[callback])
    assert calls == ["test_begin", "predict_begin"]


def test_lambda_callback_without_arguments_and_with_extra_keywords():
    """Keras: LambdaCallback() is valid; an extra keyword becomes an attribute."""
    assert isinstance(callbacks.LambdaCallback(), callbacks.LambdaCallback)

    def custom_callback(logs):
        return logs

    assert callbacks.LambdaCallback(custom_method=custom_callback).custom_method is custom_callback
