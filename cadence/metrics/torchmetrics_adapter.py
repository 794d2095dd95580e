"""Adapter that lets a `torchmetrics.Metric` act as a cadence `Metric`."""

from typing import Any

import torch
from torch import Tensor

from cadence.losses.shapes import snake_case, to_tensor
from cadence.metrics.metric import Metric


def is_torchmetric(obj: Any) -> bool:
    """Tells whether `obj` is a `torchmetrics.Metric`, without importing torchmetrics.

    Args:
        obj: Any object.

    Returns:
        True if torchmetrics is already imported and `obj` is one of its metrics.
    """
    import sys

    module = sys.modules.get("torchmetrics")
    return module is not None and isinstance(obj, module.Metric)


class TorchMetricsAdapter(Metric):
    """A cadence `Metric` around a `torchmetrics.Metric`.

    `update_state(y_true, y_pred)` calls `metric.update(y_pred, y_true)` (torchmetrics'
    argument order), `result()` calls `metric.compute()` and `reset_state()` calls
    `metric.reset()`. The wrapped metric is moved to the device of the predictions it
    is given. torchmetrics has no per-sample weights, so a `sample_weight` raises.

    Args:
        metric: The torchmetrics metric.
        name: Log key; defaults to the snake_case of its class name
            (`MulticlassAccuracy` -> `"multiclass_accuracy"`).
    """

    def __init__(self, metric: Any, name: str | None = None):
        super().__init__(name=name or snake_case(type(metric).__name__))
        self.metric = metric

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Passes one batch to `metric.update(y_pred, y_true)`.

        Args:
            y_true: Targets.
            y_pred: Predictions.
            sample_weight: Must be `None`.

        Raises:
            ValueError: If a `sample_weight` is given.
        """
        if sample_weight is not None:
            raise ValueError(
                f"Metric {self.name!r} wraps torchmetrics.{type(self.metric).__name__}, "
                "which does not support `sample_weight`. Received a sample_weight; "
                "expected None (pass this metric in `metrics`, not `weighted_metrics`)."
            )
        y_pred = to_tensor(y_pred)
        y_true = to_tensor(y_true, like=y_pred)
        if self.metric.device != y_pred.device:
            self.to(y_pred.device)
        self.metric.update(y_pred, y_true)

    def result(self) -> Tensor:
        """Returns `metric.compute()`.

        Returns:
            Whatever the torchmetrics metric computes (a 0-d tensor for most).
        """
        return self.metric.compute()

    def reset_state(self) -> None:
        """Calls `metric.reset()`."""
        self.metric.reset()

    def to(self, device: torch.device | str) -> "TorchMetricsAdapter":
        """Moves the wrapped metric to `device`.

        Args:
            device: The target device.

        Returns:
            This adapter.
        """
        self._device = torch.device(device)
        self.metric.to(self._device)
        return self

    def _tensor_states(self) -> dict[str, Tensor]:
        states = {}
        for name in self.metric._defaults:
            value = getattr(self.metric, name)
            if not isinstance(value, Tensor):
                raise ValueError(
                    f"Metric {self.name!r} keeps its state {name!r} as a "
                    f"{type(value).__name__}; only tensor states can be saved or reduced."
                )
            states[name] = value
        return states

    def state_tensors(self) -> list[Tensor]:
        """Returns the torchmetrics state tensors.

        Returns:
            The tensors, in the order torchmetrics declared them.

        Raises:
            ValueError: If a state is not a tensor or is not reduced by summing.
        """
        states = self._tensor_states()
        for name in states:
            reduce_fx = self.metric._reductions.get(name)
            if getattr(reduce_fx, "__name__", None) not in ("dim_zero_sum", "sum"):
                raise ValueError(
                    f"Metric {self.name!r} reduces its state {name!r} with {reduce_fx!r}; "
                    "only states reduced by summing can be all-reduced by cadence."
                )
        return list(states.values())

    def state_dict(self) -> dict[str, Any]:
        """Returns a copy of the torchmetrics states, for checkpoints and backups.

        Tensor states are cloned; list states (e.g. AUROC's stored predictions) become lists
        of cloned tensors.

        Returns:
            A dict from state name to a detached clone (or a list of them).
        """
        states: dict[str, Any] = {}
        for name in self.metric._defaults:
            value = getattr(self.metric, name)
            if isinstance(value, Tensor):
                states[name] = value.detach().clone()
            elif isinstance(value, list) and all(isinstance(v, Tensor) for v in value):
                states[name] = [v.detach().clone() for v in value]
            else:
                raise ValueError(
                    f"Metric {self.name!r} keeps its state {name!r} as a "
                    f"{type(value).__name__}; only tensors or lists of tensors can be saved."
                )
        return states

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Restores state saved by `state_dict()` onto the metric's device.

        The metric is then treated as updated, so `compute()` does not warn.

        Args:
            state_dict: A dict from state name to tensor.

        Raises:
            ValueError: If the keys are not the metric's state names.
        """
        expected = sorted(self.metric._defaults)
        if sorted(state_dict) != expected:
            raise ValueError(
                f"Cannot load state into metric {self.name!r}: expected keys {expected}, "
                f"received {sorted(state_dict)}."
            )
        for name, value in state_dict.items():
            if isinstance(value, list):
                value = [torch.as_tensor(v).to(self.metric.device) for v in value]
            else:
                value = torch.as_tensor(value).to(self.metric.device)
            setattr(self.metric, name, value)
        self.metric._computed = None
        self.metric._update_count = max(self.metric._update_count, 1)
