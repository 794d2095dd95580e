"""MetricsLogger: seed 000's line format, its arguments, and the start/finish lines."""

from __future__ import annotations

import io
import logging
import re

import pytest
import torch
from torch import nn

import cadence
from cadence.callbacks import LearningRateScheduler, MetricsLogger
from cadence.callbacks.metrics_logger import format_epoch_line

SEED_LOGS = {
    "loss": 4.68886,
    "root_mean_squared_error": 2.16543,
    "val_loss": 11.14159,
    "val_root_mean_squared_error": 3.33789,
}
SEED_LINE = (
    "Epoch 1/10 - train_loss: 4.6889; - train_root_mean_squared_error: 2.1654; - val_loss: 11.1416; "
    "- val_root_mean_squared_error: 3.3379;"
)


def driven(logger, epochs=10):
    logger.set_params({"epochs": epochs, "steps": 1, "verbose": 0})
    return logger


def test_prints_seed_000s_line():
    stream = io.StringIO()
    driven(MetricsLogger(stream=stream)).on_epoch_end(0, dict(SEED_LOGS))
    assert stream.getvalue() == SEED_LINE + "\n"


def test_keys_in_log_order_and_prefix_train():
    logs = {"val_loss": 1.0, "loss": 2.0, "learning_rate": 0.001}
    assert format_epoch_line(2, 5, logs, prefix_train="tr/") == (
        "Epoch 3/5 - val_loss: 1.0000; - tr/loss: 2.0000; - tr/learning_rate: 0.0010;"
    )
    assert format_epoch_line(0, 1, logs, prefix_train="") == (
        "Epoch 1/1 - val_loss: 1.0000; - loss: 2.0000; - learning_rate: 0.0010;"
    )


def test_decimals_and_special_values():
    logs = {"loss": float("nan"), "a": float("inf"), "b": -float("inf"), "c": -0.5, "d": 12345678.98765, "e": 3,
            "note": "text"}
    assert format_epoch_line(0, 1, logs, decimals=2) == (
        "Epoch 1/1 - train_loss: nan; - train_a: inf; - train_b: -inf; - train_c: -0.50; "
        "- train_d: 12345678.99; - train_e: 3.00; - train_note: text;"
    )
    stream = io.StringIO()
    driven(MetricsLogger(stream=stream, decimals=0)).on_epoch_end(0, {"loss": 2.5})
    assert stream.getvalue() == "Epoch 1/10 - train_loss: 2;\n"


def test_default_stream_is_stdout_at_print_time(capsys):
    driven(MetricsLogger()).on_epoch_end(0, dict(SEED_LOGS))
    assert capsys.readouterr().out == SEED_LINE + "\n"


def test_a_logger_as_stream(caplog):
    logger = logging.getLogger("cadence.tests.metrics_logger")
    with caplog.at_level(logging.INFO, logger=logger.name):
        driven(MetricsLogger(stream=logger)).on_epoch_end(0, dict(SEED_LOGS))
    assert [record.getMessage() for record in caplog.records] == [SEED_LINE]


def test_start_finish_lines_and_learning_rate_from_a_scheduler_end_to_end():
    model = cadence.Sequential(nn.Linear(2, 1))
    model.compile(optimizer="sgd", loss="mse")
    stream = io.StringIO()
    x = torch.ones(4, 2)
    history = model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[
        LearningRateScheduler(lambda epoch, lr: 0.05), MetricsLogger(stream=stream, start_finish=True),
    ])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert re.fullmatch(r"Start training - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+", lines[0])
    assert re.fullmatch(r"Finish training - \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+", lines[3])
    for epoch in range(2):
        loss = history.history["loss"][epoch]
        assert lines[epoch + 1] == f"Epoch {epoch + 1}/2 - train_loss: {loss:.4f}; - train_learning_rate: 0.0500;"


def test_no_start_finish_lines_by_default():
    model = cadence.Sequential(nn.Linear(2, 1))
    model.compile(optimizer="sgd", loss="mse")
    stream = io.StringIO()
    model.fit(torch.ones(4, 2), torch.ones(4, 1), epochs=1, verbose=0, callbacks=[MetricsLogger(stream=stream)])
    assert stream.getvalue().startswith("Epoch 1/1 - train_loss: ") and stream.getvalue().count("\n") == 1


def test_argument_errors():
    with pytest.raises(TypeError, match=r"^MetricsLogger: prefix_train must be a string; received None\.$"):
        MetricsLogger(prefix_train=None)
    with pytest.raises(TypeError, match=r"^MetricsLogger: stream must be a text stream with write\(\) or a "
                       r"logging\.Logger; received str: 'out\.txt'\.$"):
        MetricsLogger(stream="out.txt")
    with pytest.raises(ValueError, match=r"^MetricsLogger: decimals must be an integer in \[0, 17\]; "
                       r"received decimals=-1\.$"):
        MetricsLogger(decimals=-1)
    with pytest.raises(TypeError, match=r"^MetricsLogger: start_finish must be True or False; received 'yes'\.$"):
        MetricsLogger(start_finish="yes")


def test_a_log_key_that_is_not_a_string_is_refused_naming_it():
    logger = driven(MetricsLogger(stream=io.StringIO()))
    with pytest.raises(TypeError, match=re.escape(
        "MetricsLogger.on_epoch_end received a log key that is not a string: ('a', 1) (tuple). "
        "Log keys must be strings; the key was added by train_step or by a callback that runs "
        "before this one."
    )):
        logger.on_epoch_end(0, {"loss": 1.0, ("a", 1): 2.0})
