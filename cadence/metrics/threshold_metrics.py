"""Keras 3's confusion counts and the metrics at a fixed sensitivity, specificity, precision or recall.

All come from weighted counts at thresholds, kept on the device.
"""

from typing import Any

import torch
from torch import Tensor

from cadence.metrics.metric import Metric
from cadence.metrics.thresholds import (
    confusion_at_thresholds,
    divide_no_nan,
    evenly_spaced_thresholds,
    parse_thresholds,
    prepare,
)


class _ConfusionCount(Metric):
    """One weighted confusion count per threshold."""

    _count: str

    def __init__(self, thresholds: Any = None, name: str | None = None, dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = parse_thresholds(thresholds)
        self._order = sorted(range(len(self.thresholds)), key=self.thresholds.__getitem__)
        self.add_state("accumulator", shape=(len(self.thresholds),))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the weighted count of one batch at every threshold.

        Args:
            y_true: Targets; nonzero means positive.
            y_pred: Scores; above a threshold means positive.
            sample_weight: Optional weights of shape `(batch,)` or `y_pred`'s.
        """
        labels, scores, weights = prepare(y_true, y_pred, sample_weight)
        state = self.states(scores.device)
        accumulator = state["accumulator"]
        ordered = [self.thresholds[i] for i in self._order]
        counts = confusion_at_thresholds(labels, scores, weights, ordered, accumulator.dtype)
        accumulator[torch.as_tensor(self._order, device=accumulator.device)] += counts[
            self._count
        ]

    def result(self) -> Tensor:
        """Returns the count (a vector, one per threshold, when several were given)."""
        accumulator = self.states()["accumulator"].to(self.dtype)
        return accumulator[0] if len(self.thresholds) == 1 else accumulator

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {"name": self.name, "dtype": str(self.dtype).replace("torch.", ""),
                "thresholds": self.init_thresholds}


class TruePositives(_ConfusionCount):
    """The weighted number of true positives (`true_positives`).

    Args:
        thresholds: A threshold or a list of thresholds in [0, 1]; predictions above it
            are positive. Defaults to 0.5. With a list, `result()` has one value each.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    _count = "true_positives"


class FalsePositives(_ConfusionCount):
    """The weighted number of false positives (`false_positives`); arguments as `TruePositives`."""

    _count = "false_positives"


class TrueNegatives(_ConfusionCount):
    """The weighted number of true negatives (`true_negatives`); arguments as `TruePositives`."""

    _count = "true_negatives"


class FalseNegatives(_ConfusionCount):
    """The weighted number of false negatives (`false_negatives`); arguments as `TruePositives`."""

    _count = "false_negatives"


class _AtConstraint(Metric):
    """The best value of one rate among thresholds where another rate reaches `value`."""

    _constraint_name: str

    def __init__(
        self,
        value: float,
        num_thresholds: int = 200,
        class_id: int | None = None,
        name: str | None = None,
        dtype: Any = None,
    ):
        name_ = self._constraint_name
        if value < 0 or value > 1:
            raise ValueError(
                f"Argument `{name_}` must be in the range [0, 1]. Received: {name_}={value}"
            )
        if num_thresholds <= 0:
            raise ValueError(
                "Argument `num_thresholds` must be an integer > 0. "
                f"Received: num_thresholds={num_thresholds}"
            )
        super().__init__(name=name, dtype=dtype)
        self.value = value
        setattr(self, name_, value)
        self.num_thresholds = num_thresholds
        self.class_id = class_id
        self.thresholds = [0.5] if num_thresholds == 1 else evenly_spaced_thresholds(
            num_thresholds
        )
        for count in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            self.add_state(count, shape=(len(self.thresholds),))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the weighted counts of one batch at every threshold.

        Args:
            y_true: Targets; nonzero means positive.
            y_pred: Scores in [0, 1].
            sample_weight: Optional weights of shape `(batch,)` or `y_pred`'s.
        """
        labels, scores, weights = prepare(y_true, y_pred, sample_weight, self.class_id)
        state = self.states(scores.device)
        counts = confusion_at_thresholds(
            labels, scores, weights, self.thresholds, state["true_positives"].dtype
        )
        for key, value in counts.items():
            state[key].add_(value)

    def _rates(self) -> dict[str, Tensor]:
        state = self.states()
        tp, fp = state["true_positives"], state["false_positives"]
        tn, fn = state["true_negatives"], state["false_negatives"]
        return {
            "sensitivity": divide_no_nan(tp, tp + fn),
            "recall": divide_no_nan(tp, tp + fn),
            "specificity": divide_no_nan(tn, tn + fp),
            "precision": divide_no_nan(tp, tp + fp),
        }

    def _best(self, constrained: str, dependent: str) -> Tensor:
        rates = self._rates()
        feasible = rates[constrained] >= self.value
        values = torch.where(feasible, rates[dependent], torch.zeros_like(rates[dependent]))
        return torch.clamp_min(values.max(), 0.0).to(self.dtype)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", ""),
            "num_thresholds": self.num_thresholds,
            "class_id": self.class_id,
            self._constraint_name: self.value,
        }


class SensitivityAtSpecificity(_AtConstraint):
    """The best sensitivity (recall) among thresholds whose specificity is >= `specificity`.

    Args:
        specificity: The specificity to reach, in [0, 1].
        num_thresholds: The number of evenly spaced thresholds in [0, 1]. Defaults to 200.
        class_id: Optional column of the last axis to score.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    _constraint_name = "specificity"

    def __init__(self, specificity: float, num_thresholds: int = 200,
                 class_id: int | None = None, name: str | None = None, dtype: Any = None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def result(self) -> Tensor:
        """Returns the best sensitivity under the constraint (0 if none qualifies)."""
        return self._best("specificity", "sensitivity")


class SpecificityAtSensitivity(_AtConstraint):
    """The best specificity among thresholds whose sensitivity is >= `sensitivity`.

    Args:
        sensitivity: The sensitivity to reach, in [0, 1].
        num_thresholds: The number of evenly spaced thresholds in [0, 1]. Defaults to 200.
        class_id: Optional column of the last axis to score.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    _constraint_name = "sensitivity"

    def __init__(self, sensitivity: float, num_thresholds: int = 200,
                 class_id: int | None = None, name: str | None = None, dtype: Any = None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def result(self) -> Tensor:
        """Returns the best specificity under the constraint (0 if none qualifies)."""
        return self._best("sensitivity", "specificity")


class PrecisionAtRecall(_AtConstraint):
    """The best precision among thresholds whose recall is >= `recall`.

    Args:
        recall: The recall to reach, in [0, 1].
        num_thresholds: The number of evenly spaced thresholds in [0, 1]. Defaults to 200.
        class_id: Optional column of the last axis to score.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    _constraint_name = "recall"

    def __init__(self, recall: float, num_thresholds: int = 200,
                 class_id: int | None = None, name: str | None = None, dtype: Any = None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def result(self) -> Tensor:
        """Returns the best precision under the constraint (0 if none qualifies)."""
        return self._best("recall", "precision")


class RecallAtPrecision(_AtConstraint):
    """The best recall among thresholds whose precision is >= `precision`.

    Args:
        precision: The precision to reach, in [0, 1].
        num_thresholds: The number of evenly spaced thresholds in [0, 1]. Defaults to 200.
        class_id: Optional column of the last axis to score.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    _constraint_name = "precision"

    def __init__(self, precision: float, num_thresholds: int = 200,
                 class_id: int | None = None, name: str | None = None, dtype: Any = None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def result(self) -> Tensor:
        """Returns the best recall under the constraint (0 if none qualifies)."""
        return self._best("precision", "recall")
