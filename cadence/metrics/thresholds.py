"""Weighted confusion counts at thresholds, as Keras's `update_confusion_matrix_variables`.

Every element of `y_pred` is one prediction, positive at a threshold `t` when
`y_pred > t`; every nonzero `y_true` element is a positive label. Counts for all
thresholds come from one `bucketize` and a cumulative sum (no tensor of size
elements x thresholds), on the device.
"""

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cadence.losses.loss import align_weights
from cadence.losses.shapes import align_ranks, to_tensor

COUNTS = ("true_positives", "false_positives", "true_negatives", "false_negatives")


def parse_thresholds(thresholds: Any, default: float = 0.5) -> list[float]:
    """Return Keras's thresholds list: `default` for `None`, a list for a number or list.

    Raises:
        ValueError: If a threshold is outside [0, 1] (Keras's message).
    """
    if thresholds is None:
        values = [default]
    elif isinstance(thresholds, (list, tuple)):
        values = [float(value) for value in thresholds]
    else:
        values = [float(thresholds)]
    if any(not 0.0 <= value <= 1.0 for value in values):
        raise ValueError(
            f"Threshold values must be in [0, 1]. Received: {thresholds}"
        )
    return values


def evenly_spaced_thresholds(num_thresholds: int) -> list[float]:
    """Return `[0, 1/(n-1), ..., 1]` without the ends' rounding, as Keras builds them."""
    inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
    return [0.0, *inner, 1.0]


def prepare(
    y_true: Any, y_pred: Any, sample_weight: Any, class_id: int | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Return `(labels, predictions, weights)` aligned element by element.

    Args:
        y_true: Targets; nonzero means positive.
        y_pred: Scores of the same shape (`(n,)` meets `(n, 1)`).
        sample_weight: `None`, or weights of shape `(batch,)`, `(batch, 1)` or `y_pred`'s.
        class_id: If given, only that column of the last axis is scored.

    Raises:
        ValueError: If `class_id` is given for 1-d predictions (Keras's message).
    """
    y_pred = to_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true, y_pred = align_ranks(to_tensor(y_true, like=y_pred), y_pred)
    weights = None
    if sample_weight is not None:
        weights = torch.broadcast_to(
            align_weights(sample_weight, y_pred.to(torch.float64)), y_pred.shape
        )
    if class_id is not None:
        if y_pred.dim() == 1:
            raise ValueError(
                "When class_id is provided, y_pred must be a 2D array with shape "
                f"(num_samples, num_classes), found shape: {tuple(y_pred.shape)}"
            )
        y_true, y_pred = y_true[..., class_id], y_pred[..., class_id]
        weights = None if weights is None else weights[..., class_id]
    return y_true != 0, y_pred, weights


def confusion_at_thresholds(
    labels: Tensor,
    scores: Tensor,
    weights: Tensor | None,
    thresholds: Sequence[float],
    dtype: torch.dtype,
    per_label: bool = False,
) -> dict[str, Tensor]:
    """Return the weighted TP, FP, TN, FN counts at each threshold.

    Args:
        labels: Boolean positives.
        scores: Predictions of the same shape.
        weights: `None` or weights of the same shape.
        thresholds: Increasing thresholds.
        dtype: The counts' dtype.
        per_label: Count each column of the last axis separately (AUC's `multi_label`).

    Returns:
        The four counts, each of shape `(thresholds,)`, or `(thresholds, labels)` when
        `per_label`.
    """
    bounds = torch.as_tensor(thresholds, dtype=scores.dtype, device=scores.device)
    count = bounds.numel()
    # Number of thresholds strictly below each score: the score is positive at those.
    above = torch.bucketize(scores.detach().contiguous(), bounds, right=False)
    weight = (
        torch.ones(scores.shape, dtype=dtype, device=scores.device)
        if weights is None
        else weights.to(dtype)
    )
    positive = labels.to(dtype) * weight
    negative = (~labels).to(dtype) * weight
    columns = scores.shape[-1] if per_label else 1
    if per_label:
        column = torch.arange(columns, device=scores.device).expand(scores.shape)
        slots = (above * columns + column).reshape(-1)
    else:
        slots = above.reshape(-1)
    size = (count + 1) * columns

    def tail_sums(values: Tensor) -> Tensor:
        histogram = torch.zeros(size, dtype=dtype, device=scores.device)
        histogram.index_add_(0, slots, values.reshape(-1))
        histogram = histogram.reshape(count + 1, columns)
        # Element positive at threshold j when it has more than j thresholds below it.
        tails = histogram.flip(0).cumsum(0).flip(0)[1:]
        return tails if per_label else tails[:, 0]

    true_positives = tail_sums(positive)
    false_positives = tail_sums(negative)
    total_positive = positive.reshape(-1, columns).sum(0) if per_label else positive.sum()
    total_negative = negative.reshape(-1, columns).sum(0) if per_label else negative.sum()
    return {
        "true_positives": true_positives,
        "false_positives": false_positives,
        "true_negatives": total_negative - false_positives,
        "false_negatives": total_positive - true_positives,
    }


def divide_no_nan(numerator: Tensor, denominator: Tensor) -> Tensor:
    """Return `numerator / denominator`, 0 where the denominator is 0."""
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / safe)
