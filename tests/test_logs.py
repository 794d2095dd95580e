"""cadence.logs: MetricLogs stays on the device; to_python converts every key with one transfer; plain_numbers and plain_logs make plain Python."""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from cadence import logs as logs_module
from cadence import metrics
from cadence.logs import MetricLogs, plain_logs, plain_numbers, to_python


def _mean(name, values):
    metric = metrics.Mean(name=name)
    metric.update_state(torch.tensor(values))
    return metric


def test_metric_logs_is_a_lazy_read_only_mapping_of_device_tensors():
    view = MetricLogs([_mean("loss", [1.0, 2.0]), _mean("mae", [0.5])])
    before = logs_module.conversions
    assert list(view) == ["loss", "mae"] and len(view) == 2
    value = view["loss"]
    assert isinstance(value, torch.Tensor) and value.ndim == 0
    assert logs_module.conversions == before
    with pytest.raises(KeyError, match="acc"):
        view["acc"]
    with pytest.raises(TypeError):
        view["loss"] = 1.0  # type: ignore[index]


def test_metric_logs_reads_the_current_state_at_every_access():
    loss = _mean("loss", [1.0])
    view = MetricLogs([loss])
    loss.update_state(torch.tensor([3.0]))
    assert view.to_python() == {"loss": 2.0}


def test_to_python_converts_all_scalars_with_one_transfer():
    before = logs_module.conversions
    out = to_python({"loss": torch.tensor(0.25), "acc": torch.tensor(0.5, dtype=torch.float64),
                     "lr": 0.1, "name": "x", "step": np.float32(2.0)})
    assert logs_module.conversions == before + 1
    assert out == {"loss": 0.25, "acc": 0.5, "lr": 0.1, "name": "x", "step": 2.0}
    assert all(type(out[k]) is float for k in ("loss", "acc", "lr", "step"))
    json.dumps(out)
    assert pickle.loads(pickle.dumps(out)) == out


def test_to_python_keeps_key_order_and_turns_arrays_into_numpy():
    out = to_python({"b": torch.tensor([1.0, 2.0]), "a": torch.tensor(3.0), "c": np.array(4.0)})
    assert list(out) == ["b", "a", "c"]
    np.testing.assert_array_equal(out["b"], np.array([1.0, 2.0], dtype=np.float32))
    assert out["a"] == 3.0 and out["c"] == 4.0


def test_to_python_of_a_metric_logs_view_and_of_nothing():
    view = MetricLogs([_mean("loss", [1.0, 2.0])])
    before = logs_module.conversions
    assert to_python(view) == {"loss": 1.5}
    assert logs_module.conversions == before + 1
    assert to_python(None) == {} and to_python({}) == {}
    assert logs_module.conversions == before + 1


def test_to_python_returns_a_new_dict():
    source = {"loss": 1.0}
    out = to_python(source)
    out["loss"] = 2.0
    assert source == {"loss": 1.0}


class _Rate(float):
    """A float subclass, like an optimizer's Hyperparameter."""


def test_plain_numbers_turns_number_likes_into_python_numbers():
    weights = torch.nn.BatchNorm1d(2).state_dict()
    state = plain_numbers({"lr": _Rate(0.5), "n": np.int32(3), "f": np.float32(1.5),
                           "b": np.bool_(True), "nest": [(np.float64(2.0),)], "w": weights})
    assert state["lr"] == 0.5 and type(state["lr"]) is float
    assert type(state["n"]) is int and type(state["f"]) is float and state["b"] is True
    assert state["nest"] == [(2.0,)] and type(state["nest"][0][0]) is float
    assert type(state["w"]) is OrderedDict and state["w"]._metadata == weights._metadata


def test_plain_logs_sorts_and_converts_a_plain_dict_in_place():
    logs = {"loss": 0.5, "acc": np.float32(0.25), "lr": _Rate(0.125)}
    same = plain_logs(logs)
    assert same is logs
    assert list(logs) == ["acc", "loss", "lr"]
    assert json.dumps(logs) == '{"acc": 0.25, "loss": 0.5, "lr": 0.125}'
    assert [type(v) for v in logs.values()] == [float, float, float]


def test_plain_logs_leaves_a_dict_of_tensors_as_it_was():
    tensor = torch.tensor(0.5)
    logs = {"loss": tensor, "acc": np.float32(0.25)}
    plain = plain_logs(logs)
    assert plain is not logs and plain == {"acc": 0.25, "loss": 0.5} and list(plain) == ["acc", "loss"]
    assert list(logs) == ["loss", "acc"] and logs["loss"] is tensor


def test_plain_logs_makes_a_sorted_dict_of_a_lazy_view_with_one_transfer():
    view = MetricLogs([_mean("mae", [1.0, 3.0]), _mean("loss", [0.5])])
    before = logs_module.conversions
    logs = plain_logs(view)
    assert logs_module.conversions == before + 1
    assert logs == {"loss": 0.5, "mae": 2.0} and list(logs) == ["loss", "mae"]
    assert plain_logs(None) == {}
