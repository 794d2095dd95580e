"""MonitorCallback: the monitor / mode / min_delta / baseline logic shared by monitoring callbacks.

``EarlyStopping``, ``ModelCheckpoint`` and ``ReduceLROnPlateau`` watch one value of the epoch
logs and decide whether it improved. This base resolves the direction of improvement
(``mode``), compares values with ``min_delta``, and warns once per run when the monitored key
is missing from the logs, naming the keys that are there. A ``val_`` key missing on an epoch
without validation (``validation_freq > 1``) is not a mistake: that warning is given at the
end of training, and only if the key never appeared.

``mode="auto"`` decides from the metric's name, after stripping a ``val_`` prefix: names that
end in an accuracy-like word (``accuracy``, ``acc``, ``auc``, ``precision``, ``recall``,
``f1``, ``iou``, ``r2``, ...) improve upwards; loss-like names (``loss``, ``error``, ``mse``,
``mae``, ``crossentropy``, ``hinge``, ...) improve downwards. A metric object of the compiled
model with that name can also say so itself, through ``higher_is_better`` (torchmetrics) or a
Keras-style ``_direction`` of ``"up"`` / ``"down"``. When nothing decides, a ``ValueError``
naming the monitor asks for ``mode="min"`` or ``mode="max"``; it is raised in
``on_train_begin`` (once the model and its metrics are known), before any training work.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from cadence.callbacks.callback import Callback

MODES = ("auto", "min", "max")

# Words (between underscores) that tell the direction of a metric, looked up from the last word
# of the name backwards, so "binary_accuracy" is "max" and "false_positives" is "min".
_UP_WORDS = frozenset(
    {
        "acc", "accuracy", "auc", "precision", "recall", "f1", "fbeta", "f1score", "iou",
        "meaniou", "r2", "specificity", "sensitivity", "similarity", "true", "dice", "map",
        "ndcg", "mrr", "jaccard", "bleu", "rouge",
    }
)
_DOWN_WORDS = frozenset(
    {
        "loss", "error", "errors", "mse", "mae", "mape", "msle", "rmse", "crossentropy",
        "hinge", "divergence", "kld", "kl", "logcosh", "cosh", "poisson", "perplexity",
        "false", "distance", "nll", "ce", "bce", "huber",
    }
)
# Fallbacks when no whole word decides (names such as "myloss" or "top5acc").
_DOWN_PARTS = ("loss", "error", "crossentropy", "mse", "mae")
_UP_PARTS = ("accuracy", "acc", "auc", "precision", "recall")


def direction_from_name(monitor: str) -> str | None:
    """Return ``"min"`` or ``"max"`` for a loss-like or accuracy-like metric name, else None."""
    name = monitor.lower().removeprefix("val_")
    for word in reversed([w for w in re.split(r"[^a-z0-9]+", name) if w]):
        if word in _DOWN_WORDS:
            return "min"
        if word in _UP_WORDS:
            return "max"
    if any(part in name for part in _DOWN_PARTS):
        return "min"
    if any(part in name for part in _UP_PARTS):
        return "max"
    return None


def _direction_from_model(model: Any, monitor: str) -> str | None:
    """Return the direction a compiled metric of ``model`` named like ``monitor`` declares."""
    name = monitor.removeprefix("val_")
    for metric in getattr(model, "metrics", None) or []:
        if getattr(metric, "name", None) != name:
            continue
        for candidate in (metric, getattr(metric, "metric", None)):
            higher = getattr(candidate, "higher_is_better", None)
            if isinstance(higher, bool):
                return "max" if higher else "min"
            declared = getattr(candidate, "_direction", None)
            if declared in ("up", "down"):
                return "max" if declared == "up" else "min"
    return None


def to_float(value: Any) -> Any:
    """Return a log value as a Python float when it is a scalar (tensor, numpy or number)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach().reshape(()).to(torch.float64).cpu())
    if isinstance(value, np.ndarray | np.generic) and np.size(value) == 1:
        return float(np.asarray(value).reshape(()))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


class MonitorCallback(Callback):
    """Base class of callbacks that watch one logged value and decide whether it improved.

    Subclasses call :meth:`get_monitor_value` in their hooks and :meth:`_is_improvement` to
    compare values. ``on_train_begin`` resolves the direction, re-arms the missing-key warning
    and calls :meth:`_reset` -- except right after :meth:`load_state_dict`, whose restored state
    it keeps.

    Args:
        monitor: The log key to watch, such as ``"val_loss"`` or ``"accuracy"``.
        mode: ``"min"`` (lower is better), ``"max"`` (higher is better) or ``"auto"`` (decide
            from the metric, see the module docstring). Any other value warns, as in Keras,
            and falls back to ``"auto"``.
        min_delta: The smallest change that counts as an improvement; its sign is ignored.
        baseline: A reference value the monitored value is compared with, or None.

    Raises:
        ValueError: If ``min_delta`` or ``baseline`` is not a finite number, or if ``monitor`` is
            not a non-empty string.
    """

    #: Identifies the instance in a backup (see ``Callback.state_key``).
    state_key_attributes = ("monitor",)

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: str = "auto",
        min_delta: float = 0.0,
        baseline: float | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{name} monitor must be a non-empty log key; received: monitor={monitor!r}.")
        if mode not in MODES:
            warnings.warn(f"{name} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        if not _is_number(min_delta) or not math.isfinite(min_delta):
            raise ValueError(f"{name} min_delta must be a finite number; received: min_delta={min_delta!r}.")
        if baseline is not None and (not _is_number(baseline) or math.isnan(baseline)):
            raise ValueError(f"{name} baseline must be a number or None; received: baseline={baseline!r}.")
        self.monitor = monitor
        self.mode = mode
        self.min_delta = abs(float(min_delta))
        self.baseline = None if baseline is None else float(baseline)
        self.monitor_op: str | None = mode if mode != "auto" else direction_from_name(monitor)
        self._warned_missing = False
        self._seen_monitor = False
        self._missing_keys: list[str] | None = None
        self._restored = False

    # ----------------------------------------------------------------- direction
    def _resolve_direction(self) -> str:
        """Return ``"min"`` or ``"max"``, consulting the model's metrics in ``"auto"`` mode."""
        if self.monitor_op is None:
            self.monitor_op = _direction_from_model(self.model, self.monitor)
        if self.monitor_op is None:
            raise ValueError(
                f"{type(self).__name__} received monitor={self.monitor!r} with mode='auto', but "
                f"cannot tell whether {self.monitor!r} should be minimized or maximized. Pass "
                "mode='min' to treat lower values as better, or mode='max' for higher values."
            )
        return self.monitor_op

    def _is_improvement(self, current: float, reference: float | None) -> bool:
        """Return whether ``current`` beats ``reference`` by more than ``min_delta``.

        A ``reference`` of None is always beaten; a NaN ``current`` never beats anything.
        """
        if reference is None:
            return not math.isnan(current)
        if self._resolve_direction() == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference

    def _worst(self) -> float:
        """Return the value every real value improves on (``inf`` for min, ``-inf`` for max)."""
        return math.inf if self._resolve_direction() == "min" else -math.inf

    # ----------------------------------------------------------------- logs
    def get_monitor_value(self, logs: Mapping[str, Any] | None) -> float | None:
        """Return the monitored value from ``logs`` as a float, or None (warning once per run).

        A ``val_`` key missing from logs that hold no ``val_`` key at all (an epoch without
        validation, with ``validation_freq > 1``, or batch logs) is expected: the warning then
        waits for ``on_train_end`` and is given only if the key never appeared in the run.
        """
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            keys = [str(key) for key in logs]
            if self.monitor.startswith("val_") and not any(k.startswith("val_") for k in keys):
                self._missing_keys = keys
            else:
                self._warn_missing(keys, stacklevel=4)
            return None
        self._seen_monitor = True
        value = to_float(value)
        if not isinstance(value, float):
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, which must be a scalar; "
                f"received a value of type {type(value).__name__}: {value!r}."
            )
        return value

    def _warn_missing(self, keys: list[str], stacklevel: int) -> None:
        if self._warned_missing:
            return
        self._warned_missing = True
        warnings.warn(self._missing_message(keys), stacklevel=stacklevel)

    def _missing_message(self, keys: list[str]) -> str:
        """Return the warning for a monitored key missing from logs holding ``keys``."""
        available = ", ".join(keys) or "(none)"
        return (
            f"{type(self).__name__} is conditioned on metric '{self.monitor}', which is not "
            f"available. Available metrics are: {available}."
        )

    # ----------------------------------------------------------------- run
    def on_train_begin(self, logs: dict | None = None) -> None:
        """Resolve the direction and start a fresh run, unless a state was just restored."""
        self._warned_missing = False
        self._seen_monitor = False
        self._missing_keys = None
        if self._uses_direction():
            self._resolve_direction()
        if self._restored:
            self._restored = False
            return
        self._reset()

    def on_train_end(self, logs: dict | None = None) -> None:
        """Warn if a ``val_`` monitor never appeared; forget a state restored during the run."""
        if not self._seen_monitor and self._missing_keys is not None:
            self._warn_missing(self._missing_keys, stacklevel=3)
        self._restored = False

    def _uses_direction(self) -> bool:
        """Return whether this callback compares values (and so needs a direction)."""
        return True

    def _reset(self) -> None:
        """Start the per-run state afresh (subclasses override)."""

    def state_dict(self) -> dict[str, Any]:
        """Return the resumable state: the best value so far."""
        return {"best": getattr(self, "best", None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state; the next ``on_train_begin`` keeps it instead of resetting."""
        self.best = state["best"]
        self._restored = True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
