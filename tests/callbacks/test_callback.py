"""The callback contract: Keras 3's hook calls, tf.keras 2's signatures, logs, params, run, policy."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import distributed
from cadence.callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    TerminateOnNaN,
)
from cadence.distributed import core
from cadence.trainer.state import TrainState

X = np.arange(12, dtype=np.float32).reshape(6, 2) / 10
Y = np.arange(6, dtype=np.float32).reshape(6, 1) / 10


def model():
    torch.manual_seed(0)
    built = cadence.Model(nn.Linear(2, 1))
    built.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    return built


class Spy(Callback):
    """Records every hook with its arguments exactly as received (positional and keyword)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _record(self, hook, args, kwargs):
        plain = lambda v: sorted(v) if isinstance(v, dict) else v  # noqa: E731
        self.calls.append((hook, tuple(plain(a) for a in args), {k: plain(v) for k, v in kwargs.items()}))


for _hook in ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
              "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin",
              "on_test_batch_end", "on_predict_begin", "on_predict_end", "on_predict_batch_begin"):
    setattr(Spy, _hook, (lambda name: lambda self, *args, **kwargs: self._record(name, args, kwargs))(_hook))


def test_fit_calls_hooks_the_keras_3_way_in_keras_order():
    spy = Spy()
    model().fit(X[:4], Y[:4], batch_size=2, epochs=1, verbose=0, validation_data=(X[4:], Y[4:]),
                callbacks=[spy])
    logs, val = ["loss", "mae"], ["loss", "mae", "val_loss", "val_mae"]
    assert spy.calls == [
        ("on_train_begin", ([],), {}),
        ("on_epoch_begin", (0, []), {}),
        ("on_train_batch_begin", (0,), {"logs": []}),
        ("on_train_batch_end", (0,), {"logs": logs}),
        ("on_train_batch_begin", (1,), {"logs": []}),
        ("on_train_batch_end", (1,), {"logs": logs}),
        ("on_test_begin", ([],), {}),
        ("on_test_batch_begin", (0,), {"logs": []}),
        ("on_test_batch_end", (0,), {"logs": logs}),
        ("on_test_end", (logs,), {}),
        ("on_epoch_end", (0, val), {}),
        ("on_train_end", (val,), {}),
    ]


def test_evaluate_and_predict_call_their_hooks_the_keras_3_way():
    spy = Spy()
    fitted = model()
    fitted.evaluate(X, Y, batch_size=6, verbose=0, callbacks=[spy])
    fitted.predict(X, batch_size=6, verbose=0, callbacks=[spy])
    assert spy.calls == [
        ("on_test_begin", ([],), {}),
        ("on_test_batch_begin", (0,), {"logs": []}),
        ("on_test_batch_end", (0,), {"logs": ["loss", "mae"]}),
        ("on_test_end", (["loss", "mae"],), {}),
        ("on_predict_begin", ([],), {}),
        ("on_predict_batch_begin", (0,), {"logs": []}),
        ("on_predict_end", ([],), {}),
    ]


def test_tf_keras_2_signatures_work():
    seen = []

    class Old(Callback):
        def on_epoch_begin(self, *args):
            seen.append(("epoch_begin", args))

        def on_epoch_end(self, epoch, log=None):
            seen.append(("epoch_end", epoch, sorted(log)))

        def on_train_batch_end(self, batch, logs):
            seen.append(("batch_end", batch, sorted(logs)))

        def on_test_batch_end(self, batch, log):  # Not named logs: passed positionally.
            seen.append(("test_batch_end", batch, sorted(log)))

        def on_batch_begin(self, batch, log):  # The legacy alias, tf.keras 2 style.
            seen.append(("batch_begin", batch, log))

    model().fit(X, Y, batch_size=6, epochs=1, verbose=0, validation_data=(X, Y), callbacks=[Old()])
    assert seen == [
        ("epoch_begin", (0, {})),
        ("batch_begin", 0, {}),
        ("batch_end", 0, ["loss", "mae"]),
        ("test_batch_end", 0, ["loss", "mae"]),
        ("epoch_end", 0, ["loss", "mae", "val_loss", "val_mae"]),
    ]


def test_logs_are_sorted_plain_floats_also_for_a_subclass_of_a_built_in():
    seen = []

    class Mine(TerminateOnNaN):  # TerminateOnNaN itself reads the lazy device view.
        def on_train_batch_end(self, batch, logs=None):
            super().on_train_batch_end(batch, logs)
            seen.append(json.dumps(logs))

    callbacks = CallbackList([Mine(), TerminateOnNaN()])
    callbacks.on_train_batch_end(0, {"mae": torch.tensor(0.25), "loss": torch.tensor(0.5),
                                     "acc": np.float32(0.75)})
    assert seen == ['{"acc": 0.75, "loss": 0.5, "mae": 0.25}']
    lazy = {"loss": torch.tensor(1.0)}
    received = []

    class Lazy(TerminateOnNaN):
        accepts_lazy_logs = True  # Said again by the subclass itself: it reads the lazy view.

        def on_train_batch_end(self, batch, logs=None):
            received.append(logs)

    CallbackList([Lazy()]).on_train_batch_end(0, lazy)
    assert received[0] is lazy


def test_params_hold_tf_keras_2_keys_where_known():
    params = []

    class Reader(Callback):
        def on_train_begin(self, logs=None):
            params.append(dict(self.params))

    model().fit(X, Y, batch_size=4, epochs=3, verbose=0, validation_split=0.5, callbacks=[Reader()])
    assert params == [{"epochs": 3, "steps": 1, "verbose": 0, "batch_size": 4, "samples": 3,
                       "do_validation": True}]


def test_any_object_with_the_callback_protocol_is_a_callback():
    class Plain:  # No base class: the hooks it has are called, set_model when present.
        def __init__(self):
            self.calls = []

        def set_model(self, model):
            self.calls.append(("set_model", type(model).__name__))

        def on_epoch_end(self, epoch, logs=None):
            self.calls.append(("on_epoch_end", epoch, sorted(logs)))

    plain = Plain()
    model().fit(X, Y, batch_size=6, epochs=2, verbose=0, callbacks=[plain])
    assert plain.calls == [("set_model", "Model"), ("on_epoch_end", 0, ["loss", "mae"]),
                           ("on_epoch_end", 1, ["loss", "mae"])]


def test_what_is_not_a_callback_is_refused_with_what_was_received():
    with pytest.raises(TypeError, match=re.escape(
        "callbacks must be callback instances; received the class EarlyStopping. Pass an instance, "
        "such as EarlyStopping()."
    )):
        CallbackList([EarlyStopping])
    with pytest.raises(TypeError, match=re.escape(
        "Every callback must have the callback protocol (set_model, set_params and hooks such as "
        "on_epoch_end); received str: 'early'."
    )):
        CallbackList(["early"])


def test_the_run_is_given_to_callbacks_as_self_run_during_fit():
    seen = []

    class Reader(Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((type(self.run).__name__, self.run.epoch, self.run.step_in_epoch,
                         self.run.global_step))

    reader = Reader()
    assert reader.run is None
    model().fit(X, Y, batch_size=3, epochs=2, verbose=0, callbacks=[reader])
    assert seen == [("TrainState", 0, 1, 1), ("TrainState", 0, 2, 2), ("TrainState", 1, 1, 3),
                    ("TrainState", 1, 2, 4)]
    state = TrainState()
    callbacks = CallbackList([reader])
    callbacks.set_run(state)
    assert reader.run is state and state.callbacks is callbacks


def test_state_key_is_the_class_name_plus_what_identifies_the_instance(tmp_path):
    assert Callback().state_key == "Callback"
    assert EarlyStopping(monitor="val_mae").state_key == "EarlyStopping(monitor='val_mae')"
    path = str(tmp_path / "best.pt")
    assert ModelCheckpoint(path, monitor="loss").state_key == f"ModelCheckpoint(filepath={path!r}, monitor='loss')"
    log = str(tmp_path / "log.csv")
    assert CSVLogger(log).state_key == f"CSVLogger(filename={log!r})"

    class Named(Callback):
        state_key_attributes = ("name",)

        def __init__(self, name):
            super().__init__()
            self.name = name

    assert Named("a").state_key == "Named(name='a')"


class Writer(Callback):
    writes_files = True


class Saver(Callback):
    writes_files = frozenset({"on_epoch_end"})


class Stopper(Callback):
    def on_train_batch_end(self, batch, logs=None):
        self.model.stop_training = True


class Quiet(Stopper):
    may_stop_training = False


def test_a_user_callback_declares_that_it_writes_files(monkeypatch, tmp_path):
    monkeypatch.setattr(core, "rank", lambda: 1)
    monkeypatch.setattr(core, "world_size", lambda: 2)
    runs = distributed.runs_on_this_rank
    assert not runs(Writer(), "on_train_begin") and not runs(Writer(), "on_epoch_end")
    assert runs(Saver(), "on_train_begin") and not runs(Saver(), "on_epoch_end")
    assert runs(Callback(), "on_epoch_end")
    assert not runs(CSVLogger(str(tmp_path / "log.csv")), "on_train_begin")

    class Wrong(Callback):
        writes_files = "on_epoch_end"

    with pytest.raises(TypeError, match=re.escape(
        "Wrong.writes_files / rank_zero_only must be True, False or a set of hook names; received "
        "the string 'on_epoch_end'."
    )):
        runs(Wrong(), "on_epoch_end")


def test_stop_is_agreed_per_batch_only_when_a_callback_that_may_stop_has_a_batch_hook(tmp_path):
    quiet = [cadence.callbacks.ProgbarLogger(), cadence.callbacks.History(), EarlyStopping(),
             cadence.callbacks.BackupAndRestore(str(tmp_path)),
             cadence.callbacks.TensorBoard(str(tmp_path / "tb")), Quiet()]
    assert not CallbackList(quiet).may_stop_each_batch()
    assert CallbackList([*quiet, TerminateOnNaN()]).may_stop_each_batch()
    assert CallbackList([Stopper()]).may_stop_each_batch()
    assert CallbackList([Stopper()]).needs_plain_logs("on_train_batch_end")
    assert not CallbackList([cadence.callbacks.ProgbarLogger(), TerminateOnNaN()]).needs_plain_logs(
        "on_train_batch_end")

    class Idle(Stopper):  # Overrides the hook but says its settings ignore it.
        def wants_hook(self, hook):
            return False

    assert not CallbackList([Idle()]).needs_plain_logs("on_train_batch_end")
