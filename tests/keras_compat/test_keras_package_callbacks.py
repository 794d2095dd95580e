"""Callbacks of the ``keras`` package itself (Keras 3, torch backend) on a cadence fit.

Keras's ``CallbackList`` takes any object with the callback protocol; so does cadence's. These
tests run a ``keras.callbacks.Callback`` subclass and Keras's own ``EarlyStopping``,
``CSVLogger`` and ``LambdaCallback`` in ``cadence.Model.fit`` and check what Keras documents:
the hooks, their arguments, and the effects (a stop, a CSV file, lambdas called).
"""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import torch

os.environ["KERAS_BACKEND"] = "torch"  # Read when keras is first imported; no TensorFlow.

import keras  # noqa: E402  (the `dev` extra installs it)

import cadence  # noqa: E402

X = np.random.default_rng(0).random((16, 3), dtype=np.float32)
Y = (X @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)).astype(np.float32)


def _model(learning_rate=0.1):
    torch.manual_seed(0)
    model = cadence.Sequential(torch.nn.Linear(3, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=learning_rate), loss="mse",
                  metrics=["mae"])
    return model


class Spy(keras.callbacks.Callback):
    """A Keras callback that records its hooks with the arguments exactly as received."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, *args, **kwargs):
        self.calls.append(("on_train_begin", args, kwargs))

    def on_epoch_begin(self, *args, **kwargs):
        self.calls.append(("on_epoch_begin", args, kwargs))

    def on_train_batch_begin(self, *args, **kwargs):
        self.calls.append(("on_train_batch_begin", args, kwargs))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("on_train_batch_end", (batch,), {"logs": sorted(logs)}))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("on_epoch_end", (epoch,), {"logs": list(logs)}))

    def on_train_end(self, logs=None):
        self.calls.append(("on_train_end", (), {"logs": list(logs)}))


def test_keras_runs_on_the_torch_backend():
    assert keras.backend.backend() == "torch"


def test_a_keras_callback_subclass_gets_keras_3_hook_calls():
    spy = Spy()
    model = _model()
    model.fit(X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[spy])
    assert spy.model is model
    assert spy.params["epochs"] == 2 and spy.params["steps"] == 2 and spy.params["verbose"] == 0
    keys = {"logs": ["loss", "mae"]}
    epoch = [
        ("on_train_batch_begin", (0,), {"logs": {}}),
        ("on_train_batch_end", (0,), keys),
        ("on_train_batch_begin", (1,), {"logs": {}}),
        ("on_train_batch_end", (1,), keys),
    ]
    assert spy.calls == [
        ("on_train_begin", ({},), {}),
        ("on_epoch_begin", (0, {}), {}),
        *epoch,
        ("on_epoch_end", (0,), keys),
        ("on_epoch_begin", (1, {}), {}),
        *epoch,
        ("on_epoch_end", (1,), keys),
        ("on_train_end", (), keys),
    ]


def test_keras_early_stopping_stops_a_cadence_fit():
    # A learning rate this large makes the loss grow from the first epoch on: with patience=2,
    # Keras's EarlyStopping counts one wait per epoch without improvement and stops when the
    # count reaches 2, after epoch index 2.
    early = keras.callbacks.EarlyStopping(monitor="loss", patience=2)
    history = _model(learning_rate=3.0).fit(X, Y, batch_size=16, epochs=10, verbose=0,
                                             callbacks=[early])
    losses = history.history["loss"]
    assert losses[1] > losses[0] and losses[2] > losses[0]
    assert history.epoch == [0, 1, 2] and early.stopped_epoch == 2 and early.wait == 2
    assert early.best == losses[0]


def test_keras_csv_logger_writes_every_epoch(tmp_path):
    path = tmp_path / "log.csv"
    history = _model().fit(X, Y, batch_size=8, epochs=3, verbose=0,
                           callbacks=[keras.callbacks.CSVLogger(str(path))])
    with open(path, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["0", "1", "2"]
    # Keras adds val_ columns (written "NA") when the first epoch has no validation values.
    assert list(rows[0]) == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert {row["val_loss"] for row in rows} == {"NA"}
    assert [float(row["loss"]) for row in rows] == pytest.approx(history.history["loss"], rel=1e-6)


def test_keras_lambda_callback_calls_its_functions_with_plain_floats():
    seen = []
    lambdas = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append((epoch, type(logs["loss"]), sorted(logs))),
        on_train_batch_end=lambda batch, logs: seen.append(("batch", batch)),
        on_train_end=lambda logs: seen.append(("end", sorted(logs))),
    )
    _model().fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[lambdas])
    assert seen == [("batch", 0), ("batch", 1), (0, float, ["loss", "mae"]), ("end", ["loss", "mae"])]
