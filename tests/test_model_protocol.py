"""The Keras 3 callback protocol through fit, evaluate and predict (seed 002's CustomCallback)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks


def get_model():
    model = cadence.Sequential(nn.Linear(784, 1))
    model.compile(
        optimizer=cadence.optimizers.RMSprop(learning_rate=0.1),
        loss="mean_squared_error",
        metrics=["mean_absolute_error"],
    )
    return model


class Recorder(callbacks.Callback):
    """Records every hook call with its argument and log keys."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _rec(self, name, *args, logs=None):
        self.calls.append((name, *args, sorted(logs.keys()) if logs is not None else None))


HOOKS_WITH_INDEX = [
    "on_epoch_begin", "on_epoch_end", "on_train_batch_begin", "on_train_batch_end",
    "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
]
HOOKS_PLAIN = [
    "on_train_begin", "on_train_end", "on_test_begin", "on_test_end",
    "on_predict_begin", "on_predict_end",
]
for _hook in HOOKS_WITH_INDEX:
    setattr(Recorder, _hook, lambda self, i, logs=None, _h=_hook: self._rec(_h, i, logs=logs))
for _hook in HOOKS_PLAIN:
    setattr(Recorder, _hook, lambda self, logs=None, _h=_hook: self._rec(_h, logs=logs))


def expected_fit_calls():
    keys = ["loss", "mean_absolute_error"]
    calls = [("on_train_begin", []), ("on_epoch_begin", 0, [])]
    for i in range(4):
        calls += [("on_train_batch_begin", i, []), ("on_train_batch_end", i, keys)]
    calls.append(("on_test_begin", []))
    for i in range(4):
        calls += [("on_test_batch_begin", i, []), ("on_test_batch_end", i, keys)]
    calls.append(("on_test_end", keys))
    all_keys = sorted(keys + ["val_loss", "val_mean_absolute_error"])
    calls += [("on_epoch_end", 0, all_keys), ("on_train_end", all_keys)]
    return calls


def test_seed_002_hook_sequence_fit_evaluate_predict(mnist_like):
    x_train, y_train, x_test, y_test = mnist_like
    model = get_model()
    recorder = Recorder()
    model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0, validation_split=0.5,
              callbacks=[recorder])
    assert recorder.calls == expected_fit_calls()

    recorder = Recorder()
    model.evaluate(x_test, y_test, batch_size=128, verbose=0, callbacks=[recorder])
    keys = ["loss", "mean_absolute_error"]
    expected = [("on_test_begin", [])]
    for i in range(8):
        expected += [("on_test_batch_begin", i, []), ("on_test_batch_end", i, keys)]
    expected.append(("on_test_end", keys))
    assert recorder.calls == expected

    recorder = Recorder()
    out = model.predict(x_test, batch_size=128, verbose=0, callbacks=[recorder])
    expected = [("on_predict_begin", [])]
    for i in range(8):
        expected += [("on_predict_batch_begin", i, []), ("on_predict_batch_end", i, ["outputs"])]
    expected.append(("on_predict_end", []))
    assert recorder.calls == expected
    assert isinstance(out, np.ndarray) and out.shape == (1000, 1)


def test_params_are_epochs_steps_verbose_and_tf_keras_2s_keys(mnist_like):
    x_train, y_train, _, _ = mnist_like
    seen = {}

    class Params(callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.update(self.params)
            seen["model_is"] = self.model

    model = get_model()
    model.fit(x_train, y_train, batch_size=128, epochs=3, verbose=0, callbacks=[Params()])
    assert {k: seen[k] for k in ("epochs", "steps", "verbose")} == {"epochs": 3, "steps": 8, "verbose": 0}
    # tf.keras 2's keys, where fit knows them (Keras 3 has only the three above).
    assert {k: seen[k] for k in ("batch_size", "samples", "do_validation")} == {
        "batch_size": 128, "samples": 1000, "do_validation": False}
    assert set(seen) == {"epochs", "steps", "verbose", "batch_size", "samples", "do_validation", "model_is"}
    assert seen["model_is"] is model


def test_batch_logs_are_running_averages_of_plain_floats(mnist_like):
    x_train, y_train, _, _ = mnist_like
    batch_logs, epoch_logs = [], []

    class Collect(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            assert type(logs) is dict
            assert all(type(v) is float for v in logs.values())
            json.dumps(logs)
            batch_logs.append(logs.copy())

        def on_epoch_end(self, epoch, logs=None):
            epoch_logs.append(dict(logs))

    torch.manual_seed(0)
    model = get_model()
    weights = model.get_weights()
    model.fit(x_train[:300], y_train[:300], batch_size=128, epochs=1, shuffle=False, verbose=0,
              callbacks=[Collect()])
    assert len(batch_logs) == 3
    assert batch_logs[-1] == epoch_logs[0]

    # Recompute each batch's loss by hand with the same weights and updates.
    reference = get_model()
    reference.set_weights(weights)
    losses, sizes = [], []
    for start in range(0, 300, 128):
        xb = torch.from_numpy(x_train[:300][start:start + 128])
        yb = torch.from_numpy(y_train[:300][start:start + 128])
        pred = reference(xb)
        loss = ((pred[:, 0] - yb) ** 2).mean()
        losses.append(loss.item())
        sizes.append(len(xb))
        reference.optimizer.zero_grad()
        loss.backward()
        reference.optimizer.step()
    for i, logs in enumerate(batch_logs):
        expected = np.average(losses[: i + 1], weights=sizes[: i + 1])
        assert logs["loss"] == pytest.approx(expected, rel=1e-5)


def test_stop_training_stops_after_current_batch_then_ends_epoch(mnist_like):
    x_train, y_train, _, _ = mnist_like
    events = []

    class StopAtBatch2(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            events.append(("batch", batch))
            if batch == 2:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            events.append(("train_end", sorted(logs)))

    model = get_model()
    history = model.fit(x_train, y_train, batch_size=128, epochs=5, verbose=0,
                        validation_split=0.5, callbacks=[StopAtBatch2()])
    keys = ["loss", "mean_absolute_error", "val_loss", "val_mean_absolute_error"]
    assert events == [("batch", 0), ("batch", 1), ("batch", 2), ("epoch_end", 0, keys),
                      ("train_end", keys)]
    assert history.epoch == [0]


def test_exception_in_callback_names_callback_and_hook(mnist_like):
    x_train, y_train, _, _ = mnist_like

    class Broken(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyError("val_accuracy")

    model = get_model()
    with pytest.raises(KeyError, match="Raised by callback Broken in on_epoch_end"):
        model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0, callbacks=[Broken()])


def test_on_train_end_not_called_after_exception(mnist_like):
    x_train, y_train, _, _ = mnist_like
    ended = []

    class Boom(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("boom")

        def on_train_end(self, logs=None):
            ended.append(True)

    with pytest.raises(RuntimeError, match="boom"):
        get_model().fit(x_train, y_train, batch_size=128, verbose=0, callbacks=[Boom()])
    assert ended == []


def test_legacy_on_batch_aliases_fire_for_training_batches(mnist_like):
    x_train, y_train, x_test, y_test = mnist_like
    seen = []

    class Legacy(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            seen.append(("end", batch, sorted(logs)))

    model = get_model()
    model.fit(x_train[:256], y_train[:256], batch_size=128, verbose=0, callbacks=[Legacy()])
    model.evaluate(x_test, y_test, verbose=0, callbacks=[Legacy()])
    assert seen == [("begin", 0), ("end", 0, ["loss", "mean_absolute_error"]),
                    ("begin", 1), ("end", 1, ["loss", "mean_absolute_error"])]


def test_logs_mutated_by_a_callback_reach_later_callbacks_and_history(mnist_like):
    x_train, y_train, _, _ = mnist_like

    class AddKey(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["extra"] = 1.5

    seen = []

    class Read(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(logs["extra"])

    history = get_model().fit(x_train[:256], y_train[:256], epochs=2, verbose=0,
                              callbacks=[AddKey(), Read()])
    assert seen == [1.5, 1.5]
    assert history.history["extra"] == [1.5, 1.5]


def test_predict_batch_end_outputs_are_tensors_on_every_batch(mnist_like):
    _, _, x_test, _ = mnist_like
    seen = []

    class Outputs(callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            seen.append((type(logs["outputs"]), tuple(logs["outputs"].shape)))

    out = get_model().predict(x_test, batch_size=128, verbose=0, callbacks=[Outputs()])
    assert seen == [(torch.Tensor, (128, 1))] * 7 + [(torch.Tensor, (104, 1))]
    assert out.shape == (1000, 1)
