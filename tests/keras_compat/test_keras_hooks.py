"""Keras 3 compatibility: the fit / evaluate / predict hook contract, History, ProgbarLogger, SwapEMAWeights.

Written from Keras 3's trainer and CallbackList (keras/src/backend/torch/trainer.py,
keras/src/callbacks/callback_list.py, keras/src/utils/python_utils.pythonify_logs) and its
callback tests; what each test pins is said in its docstring.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks
from cadence.callbacks.callback import HOOKS


def make_model(lr=0.0, metrics=("mae",), seed=0):
    torch.manual_seed(seed)
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=lr), loss="mse", metrics=list(metrics), device="cpu")
    return model


def data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 3), dtype=np.float32), rng.random((n, 1), dtype=np.float32)


class Recorder:
    """Any object with the callback protocol (Keras's CallbackList does not ask for a subclass)."""

    def __init__(self):
        self.calls = []
        self.model = None
        self.params = None

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params


def _recording_hook(name):
    def hook(self, *args, **kwargs):
        self.calls.append((name, args, kwargs))

    return hook


for _hook in HOOKS:
    setattr(Recorder, _hook, _recording_hook(_hook))


def names(calls):
    return [(name, args[0]) if name.endswith(("batch_begin", "batch_end", "epoch_begin", "epoch_end")) else name
            for name, args, _ in calls]


def test_fit_hook_order():
    """Keras 3 fit: train_begin, per epoch epoch_begin, batches, validation as test_*, epoch_end; train_end."""
    recorder = Recorder()
    x, y = data()
    make_model().fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=data(4, seed=1), callbacks=[recorder])
    epoch = lambda e: [("on_epoch_begin", e), ("on_train_batch_begin", 0), ("on_train_batch_end", 0),  # noqa: E731
                       ("on_train_batch_begin", 1), ("on_train_batch_end", 1), "on_test_begin",
                       ("on_test_batch_begin", 0), ("on_test_batch_end", 0), "on_test_end", ("on_epoch_end", e)]
    assert names(recorder.calls) == ["on_train_begin", *epoch(0), *epoch(1), "on_train_end"]


def test_how_logs_are_passed_to_each_hook():
    """Keras 3: logs positionally to epoch and begin/end hooks, by keyword `logs=` to batch hooks; begin hooks get {}."""
    recorder = Recorder()
    x, y = data()
    model = make_model()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=data(4, seed=1), callbacks=[recorder])
    model.predict(x, batch_size=4, verbose=0, callbacks=[recorder])
    for name, args, kwargs in recorder.calls:
        if "batch" in name:
            assert len(args) == 1 and set(kwargs) == {"logs"}, (name, args, kwargs)
        elif "epoch" in name:
            assert len(args) == 2 and kwargs == {}, (name, args, kwargs)
        else:
            assert len(args) == 1 and kwargs == {}, (name, args, kwargs)
    logs = {name: (args[-1] if args and isinstance(args[-1], dict) else kwargs.get("logs"))
            for name, args, kwargs in recorder.calls}
    assert logs["on_train_begin"] == {} and logs["on_epoch_begin"] == {} and logs["on_train_batch_begin"] == {}
    assert sorted(logs["on_predict_batch_end"]) == ["outputs"]


def test_logs_are_sorted_dicts_of_python_floats():
    """Keras 3 pythonify_logs: every hook's logs are sorted by key, values Python floats (JSON-ready)."""
    recorder = Recorder()
    x, y = data()
    history = make_model(metrics=("mse", "mae")).fit(x, y, batch_size=4, epochs=1, verbose=0,
                                                      validation_data=data(4, seed=1), callbacks=[recorder])
    epoch_logs = next(args[1] for name, args, _ in recorder.calls if name == "on_epoch_end")
    assert list(epoch_logs) == ["loss", "mae", "mse", "val_loss", "val_mae", "val_mse"]
    assert all(type(v) is float for v in epoch_logs.values())
    json.dumps(epoch_logs)
    batch_logs = next(kwargs["logs"] for name, _, kwargs in recorder.calls if name == "on_train_batch_end")
    assert list(batch_logs) == ["loss", "mae", "mse"] and all(type(v) is float for v in batch_logs.values())
    train_end = next(args[0] for name, args, _ in recorder.calls if name == "on_train_end")
    assert train_end == {key: values[-1] for key, values in history.history.items()}


def test_batch_end_logs_are_running_averages():
    """Keras 3: on_train_batch_end's logs are the metrics since the epoch began (a running mean)."""
    recorder = Recorder()
    x, y = data()
    model = make_model(lr=0.0)  # The weights never move: each batch's loss is computed here by hand.
    with torch.no_grad():
        out = model.module(torch.from_numpy(x))
        losses = [float(((out[i:i + 4] - torch.from_numpy(y[i:i + 4])) ** 2).mean()) for i in (0, 4)]
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[recorder])
    seen = [kwargs["logs"]["loss"] for name, _, kwargs in recorder.calls if name == "on_train_batch_end"]
    assert seen == pytest.approx([losses[0], (losses[0] + losses[1]) / 2], rel=1e-6)


def test_legacy_on_batch_hooks_run_for_training_batches_only():
    """Keras 3 Callback: on_train_batch_* call on_batch_*; test and predict batches do not."""
    seen = []

    class Legacy(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            seen.append(("end", batch))

    x, y = data()
    model = make_model()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=data(4, seed=1), callbacks=[Legacy()])
    model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[Legacy()])
    assert seen == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1)]


def test_tf_keras_2_positional_batch_hooks_work():
    """tf.keras 2 idiom: `def on_train_batch_end(self, batch, logs)` (positional, no default) works."""
    seen = []

    class Old(callbacks.Callback):
        def on_train_batch_end(self, batch, logs):
            seen.append(sorted(logs))

        def on_epoch_end(self, epoch, log=None):  # A parameter not named `logs`.
            seen.append(epoch)

    x, y = data()
    make_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Old()])
    assert seen == [["loss", "mae"], ["loss", "mae"], 0]


def test_params():
    """Keras 3 params: epochs, steps, verbose; tf.keras 2's batch_size, samples, do_validation, metrics too."""
    recorder = Recorder()
    x, y = data()
    make_model().fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=data(4, seed=1), callbacks=[recorder])
    assert {k: recorder.params[k] for k in ("epochs", "steps", "verbose")} == {"epochs": 2, "steps": 2, "verbose": 0}
    assert recorder.params["batch_size"] == 4 and recorder.params["samples"] == 8
    assert recorder.params["do_validation"] is True
    assert recorder.params["metrics"] == ["loss", "mae", "val_loss", "val_mae"]


def test_stop_training_in_a_batch_ends_the_epoch_after_validation():
    """Keras 3: stop_training set in a batch ends the epoch there; validation and on_epoch_end still run."""
    class Stop(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    recorder = Recorder()
    x, y = data()
    history = make_model().fit(x, y, batch_size=4, epochs=3, verbose=0, validation_data=data(4, seed=1),
                               callbacks=[Stop(), recorder])
    assert history.epoch == [0] and "val_loss" in history.history
    assert [n for n in names(recorder.calls) if n != "on_train_begin"][:3] == [
        ("on_epoch_begin", 0), ("on_train_batch_begin", 0), ("on_train_batch_end", 0)]
    assert names(recorder.calls)[-2:] == [("on_epoch_end", 0), "on_train_end"]


def test_stop_evaluating_and_stop_predicting():
    """Keras 3: model.stop_evaluating / stop_predicting set in a batch hook end evaluate / predict there."""
    class Stop(callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            self.model.stop_evaluating = True

        def on_predict_batch_end(self, batch, logs=None):
            self.model.stop_predicting = True

    recorder = Recorder()
    x, y = data(12)
    model = make_model()
    model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[Stop(), recorder])
    model.predict(x, batch_size=4, verbose=0, callbacks=[Stop(), recorder])
    batches = [n for n in names(recorder.calls) if isinstance(n, tuple)]
    assert batches == [("on_test_batch_begin", 0), ("on_test_batch_end", 0),
                       ("on_predict_batch_begin", 0), ("on_predict_batch_end", 0)]


def test_verbose_accepts_booleans(capsys):
    """Keras: fit(verbose=False) is silent, verbose=True is 1."""
    x, y = data()
    make_model().fit(x, y, batch_size=4, epochs=2, verbose=False)
    assert capsys.readouterr().out == ""
    make_model().fit(x, y, batch_size=4, epochs=2, verbose=True)
    assert capsys.readouterr().out.startswith("Epoch 1/2\n")


# ----------------------------------------------------------------- History
def test_history():
    """Keras History: history.history[key] per epoch, history.epoch, history.params, model.history."""
    x, y = data()
    model = make_model()
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, validation_data=data(4, seed=1))
    assert history.epoch == [0, 1, 2] and model.history is history
    assert sorted(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert all(len(v) == 3 and all(type(e) is float for e in v) for v in history.history.values())
    assert {k: history.params[k] for k in ("epochs", "steps", "verbose")} == {"epochs": 3, "steps": 2, "verbose": 0}


# ----------------------------------------------------------------- ProgbarLogger
def test_progbar_logger_given_explicitly_is_not_doubled(capsys):
    """Keras 3: ProgbarLogger() takes no arguments; one given in callbacks replaces the default one."""
    x, y = data()
    make_model().fit(x, y, batch_size=4, epochs=2, verbose=2, validation_data=data(4, seed=1),
                     callbacks=[callbacks.ProgbarLogger()])
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/2", "Epoch 2/2"]
    assert len(lines) == 4 and all(
        re.fullmatch(r"2/2 - \d+s - \d+(us|ms|s)/step - loss: \S+ - mae: \S+ - val_loss: \S+ - val_mae: \S+", line)
        for line in lines[1::2])


def test_progbar_logger_one_epoch_has_no_epoch_line(capsys):
    """Keras 3 ProgbarLogger: `Epoch i/n` is printed only when epochs > 1."""
    x, y = data()
    make_model().fit(x, y, batch_size=4, epochs=1, verbose=2)
    assert re.fullmatch(r"2/2 - \d+s - \d+(us|ms|s)/step - loss: \S+ - mae: \S+\n", capsys.readouterr().out)


# ----------------------------------------------------------------- SwapEMAWeights
def test_swap_ema_weights_validation_equals_evaluate_after_fit():
    """Keras swap_ema_weights_test: with SwapEMAWeights the last val metric equals evaluate after fit."""
    x, y = data(10)
    model = make_model(lr=0.1, metrics=("mse",))
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(x, y),
                        callbacks=[callbacks.SwapEMAWeights()])
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert history.history["val_mse"][-1] == pytest.approx(logs["mse"], rel=1e-6)
