"""What callbacks that write logs accept: string keys, and numpy values as numbers or lists.

Logs are built by cadence with string keys and Python floats, but ``train_step`` and callbacks
may add anything. The callbacks that write logs out (CSVLogger, TensorBoard, MLflowLogger,
MetricsLogger, BackupAndRestore) accept numpy and torch values, as numbers (a scalar, a 0-d
array) or nested lists (other arrays), and refuse a key that is not a string with a
``TypeError`` naming the key and the callback that met it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cadence.logs import plain_numbers


def plain_value(value: Any) -> Any:
    """Return a numpy or torch log value as a Python number or a nested list; others unchanged."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return plain_numbers(value) if isinstance(value, np.ndarray | np.generic) else value


def check_log_every_n_batches(value: Any) -> None:
    """Refuse a ``log_every_n_batches`` that is not ``None`` or a positive integer."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(
            "log_every_n_batches must be None or a positive integer; "
            f"received log_every_n_batches={value!r}."
        )


def check_log_keys(logs: Mapping[Any, Any] | None, owner: str, hook: str) -> None:
    """Raise a ``TypeError`` if a key of ``logs`` is not a string.

    Args:
        logs: The logs a hook received.
        owner: The callback that received them (``"TensorBoard"``).
        hook: The hook (``"on_epoch_end"``).
    """
    for key in logs or ():
        if not isinstance(key, str):
            raise TypeError(
                f"{owner}.{hook} received a log key that is not a string: {key!r} "
                f"({type(key).__name__}). Log keys must be strings; the key was added by "
                "train_step or by a callback that runs before this one."
            )
