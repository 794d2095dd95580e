"""Binary `Precision` and `Recall` from weighted true/false positive counts."""

from typing import Any

import torch
from torch import Tensor

from cadence.losses.loss import align_weights
from cadence.losses.shapes import align_ranks, to_tensor
from cadence.metrics.metric import Metric


def _ratio(numerator: Tensor, other: Tensor, dtype: torch.dtype) -> Tensor:
    denominator = numerator + other
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / safe).to(dtype)


class _ConfusionMetric(Metric):
    """Counts weighted true positives and one kind of error, element by element."""

    _error_state: str

    def __init__(
        self,
        thresholds: float | None = None,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        super().__init__(name=name, dtype=dtype)
        threshold = 0.5 if thresholds is None else thresholds
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise ValueError(
                f"{type(self).__name__} supports a single threshold in [0, 1]. "
                f"Received: thresholds={thresholds!r}"
            )
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(
                f"Threshold values must be in [0, 1]. Received: thresholds={thresholds!r}"
            )
        self.threshold = float(threshold)
        self.class_id = class_id
        self.add_state("true_positives")
        self.add_state(self._error_state)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the weighted counts of one batch.

        Every element counts: a prediction above the threshold is positive, a nonzero
        target is positive.

        Args:
            y_true: 0/1 targets.
            y_pred: Probabilities of the same shape; `(n,)` targets with `(n, 1)`
                predictions are accepted.
            sample_weight: Optional weights of shape `(batch,)`, `(batch, 1)` or the
                shape of `y_pred`.
        """
        y_pred = to_tensor(y_pred)
        y_true, y_pred = align_ranks(to_tensor(y_true, like=y_pred), y_pred)
        if self.class_id is not None:
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
        state = self.states(y_pred.device)
        dtype = state["true_positives"].dtype
        actual = (y_true != 0).to(dtype)
        predicted = (y_pred > self.threshold).to(dtype)
        if sample_weight is not None:
            weights = torch.broadcast_to(align_weights(sample_weight, actual), actual.shape)
            actual = actual * weights
            predicted_weighted = predicted * weights
        else:
            predicted_weighted = predicted
        true_positives = (actual * predicted).sum()
        state["true_positives"].add_(true_positives)
        error = self._error(actual, predicted_weighted, true_positives)
        state[self._error_state].add_(error)

    def _error(self, actual: Tensor, predicted: Tensor, true_positives: Tensor) -> Tensor:
        raise NotImplementedError

    def result(self) -> Tensor:
        """Returns `tp / (tp + errors)` (false positives or negatives), 0 when that is 0.

        Returns:
            A 0-d tensor.
        """
        state = self.states()
        return _ratio(state["true_positives"], state[self._error_state], self.dtype)


class Precision(_ConfusionMetric):
    """The weighted fraction of positive predictions that are right (`precision`).

    Args:
        thresholds: A single threshold; predictions above it are positive
            (default 0.5). Lists of thresholds are not supported.
        class_id: Optional class index whose column of a multi-label prediction is
            scored.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    _error_state = "false_positives"

    def __init__(
        self,
        thresholds: float | None = None,
        class_id: int | None = None,
        name: str | None = "precision",
        dtype: Any = None,
    ):
        super().__init__(thresholds=thresholds, class_id=class_id, name=name, dtype=dtype)

    def _error(self, actual: Tensor, predicted: Tensor, true_positives: Tensor) -> Tensor:
        # Weighted predicted positives minus the weighted hits.
        return predicted.sum() - true_positives


class Recall(_ConfusionMetric):
    """The weighted fraction of positive targets that are found (`recall`).

    Args:
        thresholds: A single threshold; predictions above it are positive
            (default 0.5). Lists of thresholds are not supported.
        class_id: Optional class index whose column of a multi-label prediction is
            scored.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    _error_state = "false_negatives"

    def __init__(
        self,
        thresholds: float | None = None,
        class_id: int | None = None,
        name: str | None = "recall",
        dtype: Any = None,
    ):
        super().__init__(thresholds=thresholds, class_id=class_id, name=name, dtype=dtype)

    def _error(self, actual: Tensor, predicted: Tensor, true_positives: Tensor) -> Tensor:
        # Weighted actual positives minus the weighted hits.
        return actual.sum() - true_positives
