"""Keras 3's `AUC`: the area under the ROC or PR curve, from counts at thresholds."""

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cadence.losses.shapes import EPSILON
from cadence.metrics.metric import Metric
from cadence.metrics.thresholds import (
    COUNTS,
    confusion_at_thresholds,
    divide_no_nan,
    prepare,
)

CURVES = ("ROC", "PR", "PRGAIN")
SUMMATIONS = ("interpolation", "minoring", "majoring")


class AUC(Metric):
    """The approximate area under the ROC or precision-recall curve (`auc`), as in Keras 3.

    Weighted true/false positive/negative counts are kept at `num_thresholds` thresholds
    (`0 - eps`, evenly spaced inner ones, `1 + eps`), and the area is a Riemann sum over
    them: trapezoids (`"interpolation"`, the default; for `"PR"` Davis & Goadrich's
    interpolation, as Keras), or the lower (`"minoring"`) or upper (`"majoring"`) heights.

    Args:
        num_thresholds: The number of thresholds (> 1). Defaults to 200.
        curve: `"ROC"` (default), `"PR"` or `"PRGAIN"`.
        summation_method: `"interpolation"`, `"minoring"` or `"majoring"`.
        name: Name of the metric.
        dtype: Dtype of `result()`.
        thresholds: Optional inner thresholds in [0, 1] instead of evenly spaced ones.
        multi_label: Whether each column of the last axis is a separate label, whose
            areas are averaged (`label_weights` weighting them); otherwise every element
            is one prediction.
        num_labels: The number of labels when `multi_label` (else taken from the first
            batch).
        label_weights: Optional per-label weights.
        from_logits: Whether predictions are logits (a sigmoid is applied).

    Raises:
        ValueError: For an unknown curve or summation method, fewer than 2 thresholds, or
            `num_labels` without `multi_label` (Keras's messages).
    """

    def __init__(
        self,
        num_thresholds: int = 200,
        curve: str = "ROC",
        summation_method: str = "interpolation",
        name: str | None = None,
        dtype: Any = None,
        thresholds: Sequence[float] | None = None,
        multi_label: bool = False,
        num_labels: int | None = None,
        label_weights: Any = None,
        from_logits: bool = False,
    ):
        if str(curve).upper() not in CURVES:
            raise ValueError(
                f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]'
            )
        if str(summation_method).lower() not in SUMMATIONS:
            raise ValueError(
                f'Invalid AUC summation method value: "{summation_method}". Expected values '
                'are ["interpolation", "majoring", "minoring"]'
            )
        if thresholds is not None:
            inner = sorted(float(value) for value in thresholds)
            self.num_thresholds = len(inner) + 2
        else:
            if num_thresholds <= 1:
                raise ValueError(
                    "Argument `num_thresholds` must be an integer > 1. "
                    f"Received: num_thresholds={num_thresholds}"
                )
            self.num_thresholds = num_thresholds
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        super().__init__(name=name, dtype=dtype)
        self._init_from_thresholds = thresholds is not None
        self._thresholds = [0.0 - EPSILON, *inner, 1.0 + EPSILON]
        self.curve = str(curve).upper()
        self.summation_method = str(summation_method).lower()
        self.multi_label = multi_label
        self.num_labels = num_labels
        self.label_weights = (
            None if label_weights is None else torch.as_tensor(label_weights, dtype=torch.float64)
        )
        self._from_logits = from_logits
        self._built = False
        if multi_label:
            if num_labels:
                self._build(num_labels)
        else:
            if num_labels:
                raise ValueError("`num_labels` is needed only when `multi_label` is True.")
            self._build(None)

    @property
    def thresholds(self) -> list[float]:
        """The thresholds the counts are kept at."""
        return list(self._thresholds)

    def _build(self, num_labels: int | None) -> None:
        shape = (self.num_thresholds,) if num_labels is None else (self.num_thresholds, num_labels)
        self._num_labels = num_labels
        for count in COUNTS:
            self.add_state(count, shape=shape)
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the weighted counts of one batch at every threshold.

        Args:
            y_true: Targets; nonzero means positive.
            y_pred: Probabilities (logits with `from_logits=True`).
            sample_weight: Optional weights of shape `(batch,)` or `y_pred`'s.

        Raises:
            ValueError: If `multi_label` and the predictions are not of rank 2.
        """
        labels, scores, weights = prepare(y_true, y_pred, sample_weight)
        if self.multi_label and scores.dim() != 2:
            raise ValueError(
                "`y_pred` must have rank 2 when `multi_label=True`. Found rank "
                f"{scores.dim()}. Full shape received for `y_pred`: {tuple(scores.shape)}"
            )
        if not self._built:
            self._build(scores.shape[-1])
        if self._from_logits:
            scores = torch.sigmoid(scores)
        state = self.states(scores.device)
        dtype = state["true_positives"].dtype
        if self.label_weights is not None and not self.multi_label:
            label_weights = self.label_weights.to(device=scores.device, dtype=dtype)
            weights = label_weights if weights is None else weights.to(dtype) * label_weights
            weights = torch.broadcast_to(weights, scores.shape)
        counts = confusion_at_thresholds(
            labels, scores, weights, self._thresholds, dtype, per_label=self.multi_label
        )
        for key, value in counts.items():
            state[key].add_(value)

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Restores the counts, building a `multi_label` AUC from their shape if needed."""
        if not self._built and "true_positives" in state_dict:
            self._build(int(torch.as_tensor(state_dict["true_positives"]).shape[-1]))
        super().load_state_dict(state_dict)

    def _by_label(self, terms: Tensor) -> Tensor:
        if not self.multi_label:
            return terms.sum()
        by_label = terms.sum(dim=0)
        if self.label_weights is None:
            return by_label.mean()
        label_weights = self.label_weights.to(by_label.device, by_label.dtype)
        return divide_no_nan((by_label * label_weights).sum(), label_weights.sum())

    def _interpolate_pr_auc(self, state: dict[str, Tensor]) -> Tensor:
        tp, fp, fn = state["true_positives"], state["false_positives"], state["false_negatives"]
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = divide_no_nan(dtp, torch.clamp_min(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = torch.where(both, divide_no_nan(p[:-1], torch.clamp_min(p[1:], 0)),
                            torch.ones_like(p[1:]))
        increments = divide_no_nan(
            slope * (dtp + intercept * torch.log(ratio)), torch.clamp_min(tp[1:] + fn[1:], 0)
        )
        return self._by_label(increments)

    def result(self) -> Tensor:
        """Returns the area (0 before any batch)."""
        if not self._built:
            return torch.zeros((), dtype=self.dtype)
        state = self.states()
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc(state).to(self.dtype)
        tp, fp = state["true_positives"], state["false_positives"]
        tn, fn = state["true_negatives"], state["false_negatives"]
        recall = divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, divide_no_nan(tp, tp + fp)
        else:
            scale = divide_no_nan(tp + fn, tn + fp)
            recall_gain = 1.0 - scale * divide_no_nan(fn, tp)
            precision_gain = 1.0 - scale * divide_no_nan(fp, tp)
            zero = tp == 0
            x = torch.clamp_min(torch.where(zero, torch.zeros_like(tp), recall_gain), 0.0)
            y = torch.where(zero, torch.ones_like(tp), precision_gain)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return self._by_label((x[:-1] - x[1:]) * heights).to(self.dtype)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", ""),
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
            "from_logits": self._from_logits,
            "thresholds": self._thresholds[1:-1] if self._init_from_thresholds else None,
        }
