"""MonitorCallback: direction from names and metrics, min_delta comparisons, missing-key warning."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from cadence.callbacks.monitor import MonitorCallback, direction_from_name, to_float


class Probe(MonitorCallback):
    """A minimal subclass that counts resets."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resets = 0

    def _reset(self):
        self.resets += 1


class FakeMetric:
    def __init__(self, name, **attrs):
        self.name = name
        self.__dict__.update(attrs)


class FakeModel:
    def __init__(self, metrics=()):
        self.metrics = list(metrics)


@pytest.mark.parametrize("name", [
    "loss", "val_loss", "mse", "val_mae", "mean_squared_error", "root_mean_squared_error",
    "binary_crossentropy", "sparse_categorical_crossentropy", "mean_absolute_percentage_error",
    "kl_divergence", "hinge", "false_positives", "output_1_loss", "myloss",
])
def test_loss_like_names_are_minimized(name):
    assert direction_from_name(name) == "min"


@pytest.mark.parametrize("name", [
    "accuracy", "val_acc", "val_accuracy", "auc", "precision", "recall", "f1_score",
    "categorical_accuracy", "sparse_top_k_categorical_accuracy", "true_positives", "r2_score",
    "val_binary_accuracy", "top5acc",
])
def test_accuracy_like_names_are_maximized(name):
    assert direction_from_name(name) == "max"


@pytest.mark.parametrize("name", ["foo", "val_lr", "learning_rate", "epoch_time"])
def test_unknown_names_have_no_direction(name):
    assert direction_from_name(name) is None


def test_auto_mode_that_cannot_decide_raises_naming_the_monitor_before_training():
    probe = Probe(monitor="val_foo")
    probe.set_model(FakeModel())
    with pytest.raises(ValueError, match=r"received monitor='val_foo' with mode='auto', but cannot tell "
                       r"whether 'val_foo' should be minimized or maximized\. Pass mode='min'"):
        probe.on_train_begin()
    assert probe.resets == 0


@pytest.mark.parametrize(("attrs", "expected"), [
    ({"higher_is_better": True}, "max"), ({"higher_is_better": False}, "min"),
    ({"_direction": "up"}, "max"), ({"_direction": "down"}, "min"),
])
def test_auto_mode_asks_the_compiled_metric_when_the_name_does_not_decide(attrs, expected):
    probe = Probe(monitor="val_foo")
    probe.set_model(FakeModel([FakeMetric("bar"), FakeMetric("foo", **attrs)]))
    probe.on_train_begin()
    assert probe.monitor_op == expected


def test_auto_mode_reads_a_wrapped_torchmetrics_metric():
    wrapped = FakeMetric("inner", higher_is_better=True)
    probe = Probe(monitor="jaccard")
    probe.set_model(FakeModel([FakeMetric("jaccard", metric=wrapped)]))
    probe.on_train_begin()
    assert probe.monitor_op == "max"


def test_explicit_mode_overrides_the_name():
    assert Probe(monitor="val_loss", mode="max").monitor_op == "max"
    assert Probe(monitor="accuracy", mode="min").monitor_op == "min"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"monitor": ""}, r"Probe monitor must be a non-empty log key; received: monitor=''\."),
    ({"min_delta": float("nan")}, r"Probe min_delta must be a finite number; received: min_delta=nan\."),
    ({"min_delta": "0.1"}, r"received: min_delta='0.1'\."),
    ({"baseline": "x"}, r"Probe baseline must be a number or None; received: baseline='x'\."),
])
def test_invalid_arguments_raise_with_the_received_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Probe(**kwargs)


@pytest.mark.parametrize("mode", ["avg", None])
def test_an_unknown_mode_warns_as_keras_and_falls_back_to_auto(mode):
    with pytest.warns(UserWarning, match=rf"^Probe mode '{mode}' is unknown, fallback to auto mode\.$"):
        probe = Probe(monitor="val_loss", mode=mode)
    assert probe.mode == "auto" and probe.monitor_op == "min"


def test_min_delta_sign_is_ignored():
    assert Probe(min_delta=-0.25).min_delta == 0.25


def test_is_improvement_in_min_mode_needs_more_than_min_delta():
    probe = Probe(monitor="loss", min_delta=0.25)
    assert probe._is_improvement(0.5, 1.0)
    assert not probe._is_improvement(0.75, 1.0)  # exactly min_delta is not enough
    assert not probe._is_improvement(1.0, 1.0)
    assert probe._is_improvement(123.0, None)
    assert not probe._is_improvement(float("nan"), 1.0)
    assert not probe._is_improvement(float("nan"), None)


def test_is_improvement_in_max_mode():
    probe = Probe(monitor="accuracy", min_delta=0.25)
    assert probe._is_improvement(1.5, 1.0)
    assert not probe._is_improvement(1.25, 1.0)
    assert not probe._is_improvement(0.5, 1.0)
    assert probe._is_improvement(-math.inf + 1, None)


def test_missing_key_warns_once_per_run_naming_the_available_keys():
    probe = Probe(monitor="val_acc", mode="max")
    probe.on_train_begin()
    logs = {"loss": 1.0, "val_loss": 2.0}
    with pytest.warns(UserWarning) as record:
        assert probe.get_monitor_value(logs) is None
        assert probe.get_monitor_value(logs) is None
        assert probe.get_monitor_value({}) is None
    assert [str(w.message) for w in record] == [
        "Probe is conditioned on metric 'val_acc', which is not available. "
        "Available metrics are: loss, val_loss."
    ]
    probe.on_train_begin()  # a new run warns again
    with pytest.warns(UserWarning, match=r"Available metrics are: val_loss\.$"):
        probe.get_monitor_value({"val_loss": 1.0})


def test_no_keys_at_all_are_named_none():
    probe = Probe(monitor="acc", mode="max")
    with pytest.warns(UserWarning, match=r"Available metrics are: \(none\)\.$"):
        probe.get_monitor_value(None)


def test_val_monitor_on_epochs_without_validation_waits_for_the_end_of_training():
    probe = Probe(monitor="val_loss")
    probe.on_train_begin()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert probe.get_monitor_value({"loss": 1.0}) is None  # validation_freq=2: epoch 0
        assert probe.get_monitor_value({"loss": 1.0, "val_loss": 0.5}) == 0.5
        assert probe.get_monitor_value({"loss": 1.0}) is None
        probe.on_train_end()  # the key did appear: nothing to say


def test_val_monitor_that_never_appears_warns_once_at_the_end():
    probe = Probe(monitor="val_loss")
    probe.on_train_begin()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe.get_monitor_value({"loss": 1.0})
        probe.get_monitor_value({"loss": 2.0, "mae": 1.0})
    with pytest.warns(UserWarning) as record:
        probe.on_train_end()
    assert [str(w.message) for w in record] == [
        "Probe is conditioned on metric 'val_loss', which is not available. "
        "Available metrics are: loss, mae."
    ]


def test_present_key_gives_a_float_without_warning():
    probe = Probe(monitor="loss")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert probe.get_monitor_value({"loss": torch.tensor(0.5)}) == 0.5
        assert probe.get_monitor_value({"loss": np.float32(0.25)}) == 0.25
        assert probe.get_monitor_value({"loss": 2}) == 2.0


def test_non_scalar_monitored_value_is_refused():
    probe = Probe(monitor="loss")
    with pytest.raises(ValueError, match=r"Probe monitors 'loss', which must be a scalar"):
        probe.get_monitor_value({"loss": np.array([1.0, 2.0])})


def test_to_float():
    assert to_float(torch.tensor([3.5])) == 3.5
    assert to_float(np.array(1.5)) == 1.5
    assert to_float("text") == "text"
    assert to_float(True) is True


def test_on_train_begin_keeps_a_restored_state_once():
    probe = Probe(monitor="loss")
    probe.on_train_begin()
    assert probe.resets == 1
    probe.load_state_dict({"best": 0.5})
    probe.on_train_begin()
    assert probe.resets == 1 and probe.best == 0.5
    probe.on_train_begin()
    assert probe.resets == 2


def test_a_state_restored_during_a_run_does_not_survive_into_the_next_fit():
    probe = Probe(monitor="loss")
    probe.on_train_begin()
    probe.load_state_dict({"best": 0.5})  # restored after this callback's on_train_begin
    probe.on_train_end()
    probe.on_train_begin()
    assert probe.resets == 2
