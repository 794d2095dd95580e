"""Log values: numpy and torch values as numbers or lists; keys that are not strings refused."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from cadence.callbacks.log_values import check_log_keys, plain_value
from cadence.logs import plain_numbers


def test_plain_value_makes_numbers_and_lists():
    assert plain_value(np.float32(0.5)) == 0.5 and type(plain_value(np.float32(0.5))) is float
    assert plain_value(np.int64(3)) == 3 and type(plain_value(np.int64(3))) is int
    assert plain_value(np.array(2.0)) == 2.0
    assert plain_value(np.array([[1, 2]])) == [[1, 2]]
    assert plain_value(torch.tensor([1.5, 2.5])) == [1.5, 2.5]
    assert plain_value("text") == "text" and plain_value(None) is None


def test_plain_numbers_makes_numpy_arrays_lists_and_keeps_tensors_and_structure():
    tensor = torch.ones(2)
    found = plain_numbers({"a": [np.float64(1.0), (np.array([1, 2]),)], "t": tensor})
    assert found == {"a": [1.0, ([1, 2],)], "t": tensor} and found["t"] is tensor


def test_check_log_keys_names_the_key_and_the_callback():
    check_log_keys({"loss": 1.0}, "X", "on_epoch_end")
    check_log_keys(None, "X", "on_epoch_end")
    message = (
        "X.on_epoch_end received a log key that is not a string: 1.5 (float). Log keys must be "
        "strings; the key was added by train_step or by a callback that runs before this one."
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        check_log_keys({"loss": 1.0, 1.5: 2.0}, "X", "on_epoch_end")
