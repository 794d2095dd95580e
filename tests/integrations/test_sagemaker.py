"""metric_definitions: seed 000's regexes and ours recover History's values from the printed log."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import cadence
from cadence.callbacks import MetricsLogger
from cadence.callbacks.metrics_logger import format_epoch_line
from cadence.integrations.sagemaker import metric_definitions

# Seed 000's callback lives in examples/ with only its import changed.
from examples.seed_000_sagemaker import CustomCallBack  # noqa: E402

SEED_DEFINITIONS = [
    {'Name': 'Train Loss', 'Regex': 'train_loss: (.*?);'},
    {'Name': 'Validation Loss', 'Regex': 'val_loss: (.*?);'},
    {'Name': 'Train Metrics', 'Regex': 'train_root_mean_squared_error: (.*?);'},
    {'Name': 'Validation Metrics', 'Regex': 'val_root_mean_squared_error: (.*?);'},
]
SEED_KEYS = {"Train Loss": "loss", "Validation Loss": "val_loss", "Train Metrics": "root_mean_squared_error",
             "Validation Metrics": "val_root_mean_squared_error"}


def scrape(log, definitions):
    """What SageMaker does: each regex's first group, on every log line where it matches."""
    found = {}
    for line in log.splitlines():
        for definition in definitions:
            match = re.search(definition["Regex"], line)
            if match:
                found.setdefault(definition["Name"], []).append(float(match.group(1)))
    return found


def train_regressor(callbacks, epochs=3):
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x.sum(dim=1, keepdim=True) * 2 + 1
    model = cadence.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    model.compile(optimizer="adam", loss="mse", metrics=[cadence.metrics.RootMeanSquaredError()])
    history = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, validation_split=0.25, callbacks=callbacks)
    return model, history


def test_seed_000_regexes_and_metric_definitions_recover_history(capsys):
    model, history = train_regressor([CustomCallBack(), MetricsLogger()])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Start training - ") and lines[-1].startswith("Finish training - ")
    epoch_lines = lines[1:-1]
    assert len(epoch_lines) == 6
    for epoch in range(3):
        seed_line, our_line = epoch_lines[2 * epoch], epoch_lines[2 * epoch + 1]
        assert our_line == seed_line  # MetricsLogger prints exactly the seed callback's line
        assert our_line.startswith(f"Epoch {epoch + 1}/3 - train_loss: ")

    expected = {key: [round(value, 4) for value in values] for key, values in history.history.items()}
    assert set(expected) == {"loss", "root_mean_squared_error", "val_loss", "val_root_mean_squared_error"}

    # Every epoch printed twice (the seed's line, then ours), so each value is found twice.
    twice = {key: [v for v in values for _ in range(2)] for key, values in expected.items()}
    assert scrape(out, SEED_DEFINITIONS) == {name: twice[key] for name, key in SEED_KEYS.items()}

    definitions = metric_definitions(model)
    assert [d["Name"] for d in definitions] == [
        "train_loss", "train_root_mean_squared_error", "val_loss", "val_root_mean_squared_error",
    ]
    assert scrape(out, definitions) == {d["Name"]: twice[d["Name"].removeprefix("train_")] for d in definitions}

    only_metrics_logger = "\n".join(epoch_lines[1::2])
    assert scrape(only_metrics_logger, definitions) == {
        d["Name"]: expected[d["Name"].removeprefix("train_")] for d in definitions
    }
    assert scrape(only_metrics_logger, SEED_DEFINITIONS) == {name: expected[key] for name, key in SEED_KEYS.items()}


def test_regexes_capture_exactly_the_printed_value():
    logs = {"loss": float("nan"), "a": float("inf"), "b": -float("inf"), "c": -0.5, "d": 12345678.98765,
            "e": 1e-9, "val_loss": 0.25, "val_c": 7.0}
    definitions = metric_definitions(logs.keys())
    for decimals in (0, 2, 4):
        line = format_epoch_line(4, 9, logs, decimals=decimals)
        for definition in definitions:
            key = definition["Name"].removeprefix("train_")
            match = re.search(definition["Regex"], line)
            assert match.group(1) == f"{logs[key]:.{decimals}f}", (definition, line)


def test_names_are_unambiguous_even_without_a_train_prefix():
    line = format_epoch_line(0, 1, {"loss": 1.0, "val_loss": 2.0, "my_loss": 3.0}, prefix_train="")
    definitions = metric_definitions(["loss", "val_loss", "my_loss"], prefix_train="")
    assert {d["Name"]: re.search(d["Regex"], line).group(1) for d in definitions} == {
        "loss": "1.0000", "val_loss": "2.0000", "my_loss": "3.0000",
    }
    assert re.search(metric_definitions(["loss"], prefix_train="")[0]["Regex"], "Epoch 1/1 - val_loss: 2.0;") is None


def test_keys_options():
    assert metric_definitions(["loss", "val_loss"]) == [
        {"Name": "train_loss", "Regex": r"- train_loss: ([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
                                         r"|[-+]?nan|[-+]?inf);"},
        {"Name": "val_loss", "Regex": r"- val_loss: ([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
                                       r"|[-+]?nan|[-+]?inf);"},
    ]
    model, _ = train_regressor([], epochs=1)
    assert [d["Name"] for d in metric_definitions(model, validation=False, extra_keys=["learning_rate"])] == [
        "train_loss", "train_root_mean_squared_error", "train_learning_rate",
    ]
    assert [d["Name"] for d in metric_definitions(model, prefix_train="t.")][:2] == ["t.loss", "t.root_mean_squared_error"]
    assert metric_definitions(["a.b"])[0]["Regex"].startswith(r"- train_a\.b: ")


def test_errors():
    model = cadence.Sequential(nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"^metric_definitions received a model that is not compiled"):
        metric_definitions(model)
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    with pytest.raises(ValueError, match=r"known only once the model has run a batch .* the model so far has "
                       r"\['loss'\]\.$"):
        metric_definitions(model)
    with pytest.raises(TypeError, match=r"^metric_definitions takes a model or a list of log keys; received the "
                       r"single string 'loss'\. Use metric_definitions\(\['loss'\]\)\.$"):
        metric_definitions("loss")
    with pytest.raises(TypeError, match=r"every log key must be a non-empty string; received 3\.$"):
        metric_definitions(["loss", 3])
    with pytest.raises(TypeError, match=r"^metric_definitions takes a compiled cadence Model or an iterable of log "
                       r"keys; received int: 5\.$"):
        metric_definitions(5)
    with pytest.raises(ValueError, match=r"these metric names repeat: \['train_loss'\]\.$"):
        metric_definitions(["loss"], extra_keys=["loss"])
    with pytest.raises(TypeError, match=r"prefix_train must be a string; received None\.$"):
        metric_definitions(["loss"], prefix_train=None)
