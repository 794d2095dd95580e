"""Keras 3's overlap losses for segmentation: Dice and Tversky, and the categorical hinge."""

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cadence.losses.loss import LossFunctionWrapper
from cadence.losses.shapes import EPSILON, prepare_pair

Axis = int | Sequence[int] | None


def _sum(values: Tensor, axis: Axis) -> Tensor:
    if axis is None:
        return values.sum()
    return values.sum(dim=axis if isinstance(axis, int) else tuple(axis))


def dice(y_true: Any, y_pred: Any, axis: Axis = None) -> Tensor:
    """Computes `1 - 2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred) + eps)`, as Keras does.

    Args:
        y_true: Targets.
        y_pred: Predictions of the same shape.
        axis: The axes summed over; `None` (Keras's default) sums everything, giving one
            value for the whole batch.

    Returns:
        The loss, reduced over `axis`.
    """
    y_true, y_pred = prepare_pair(y_true, y_pred)
    intersection = _sum(y_true * y_pred, axis)
    return 1 - 2.0 * intersection / (_sum(y_true, axis) + _sum(y_pred, axis) + EPSILON)


def tversky(
    y_true: Any, y_pred: Any, alpha: float = 0.5, beta: float = 0.5, axis: Axis = None
) -> Tensor:
    """Computes `1 - tp / (tp + alpha * fp + beta * fn + eps)` with soft counts, as Keras does.

    Args:
        y_true: Targets.
        y_pred: Predictions of the same shape.
        alpha: The weight of false positives.
        beta: The weight of false negatives.
        axis: The axes summed over; `None` sums everything.

    Returns:
        The loss, reduced over `axis`.
    """
    y_true, y_pred = prepare_pair(y_true, y_pred)
    intersection = _sum(y_pred * y_true, axis)
    false_positives = _sum((1 - y_true) * y_pred, axis)
    false_negatives = _sum(y_true * (1 - y_pred), axis)
    denominator = intersection + false_positives * alpha + false_negatives * beta + EPSILON
    return 1 - intersection / denominator


def categorical_hinge(y_true: Any, y_pred: Any) -> Tensor:
    """Computes `max(neg - pos + 1, 0)` over the last axis, as Keras does.

    `pos = sum(y_true * y_pred)` and `neg = max((1 - y_true) * y_pred)`.

    Args:
        y_true: One-hot targets of shape `(batch, ..., classes)`.
        y_pred: Scores of the same shape.

    Returns:
        Losses of shape `(batch, ...)`.
    """
    y_true, y_pred = prepare_pair(y_true, y_pred)
    positive = (y_true * y_pred).sum(dim=-1)
    negative = ((1.0 - y_true) * y_pred).amax(dim=-1)
    return torch.clamp_min(negative - positive + 1.0, 0.0)


class Dice(LossFunctionWrapper):
    """The Dice loss (Keras name `dice`).

    Args:
        reduction: See `Loss`.
        name: Name of the loss.
        axis: The axes summed over; `None` (the default) sums everything.
    """

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str = "dice",
        axis: Axis = None,
    ):
        super().__init__(dice, name=name, reduction=reduction, axis=axis)


class Tversky(LossFunctionWrapper):
    """The Tversky loss (Keras name `tversky`); `alpha = beta = 0.5` gives the Dice loss.

    Args:
        alpha: The weight of false positives. Defaults to 0.5.
        beta: The weight of false negatives. Defaults to 0.5.
        reduction: See `Loss`.
        name: Name of the loss.
        axis: The axes summed over; `None` (the default) sums everything.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str = "tversky",
        axis: Axis = None,
    ):
        super().__init__(
            tversky, name=name, reduction=reduction, alpha=alpha, beta=beta, axis=axis
        )


class CategoricalHinge(LossFunctionWrapper):
    """The categorical hinge loss (Keras name `categorical_hinge`).

    Args:
        reduction: See `Loss`.
        name: Name of the loss.
    """

    def __init__(
        self, reduction: str | None = "sum_over_batch_size", name: str = "categorical_hinge"
    ):
        super().__init__(categorical_hinge, name=name, reduction=reduction)
