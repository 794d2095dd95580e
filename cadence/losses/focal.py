"""Keras 3's focal crossentropies (Lin et al., 2018) and generalized crossentropy (Zhang, 2018)."""

from typing import Any

import torch
from torch import Tensor

from cadence.losses.crossentropy import sparse_labels
from cadence.losses.loss import LossFunctionWrapper
from cadence.losses.shapes import (
    EPSILON,
    as_samples,
    float_predictions,
    per_sample,
    prepare_pair,
)


def binary_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """Computes the binary focal crossentropy, averaged over `axis`, as Keras does.

    Each element's binary crossentropy (probabilities clipped to `[eps, 1 - eps]`) is
    multiplied by `(1 - p_t) ** gamma`, where `p_t = y_true * y_pred + (1 - y_true) *
    (1 - y_pred)`; with `apply_class_balancing`, also by `alpha` for class 1 and
    `1 - alpha` for class 0.

    Args:
        y_true: Targets in `[0, 1]`, shape `(batch, ...)`.
        y_pred: Probabilities, or logits when `from_logits=True`.
        apply_class_balancing: Whether to weight the classes by `alpha`.
        alpha: The weight of class 1 (class 0 gets `1 - alpha`).
        gamma: The focusing parameter; 0 gives the binary crossentropy.
        from_logits: Whether `y_pred` holds logits.
        label_smoothing: Targets are moved towards 0.5 by this fraction.
        axis: The axis that is averaged.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = as_samples(*prepare_pair(y_true, y_pred))
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = torch.sigmoid(y_pred)
    probs = y_pred.clamp(EPSILON, 1.0 - EPSILON)
    bce = -(y_true * torch.log(probs) + (1.0 - y_true) * torch.log(1.0 - probs))
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    focal = torch.pow(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal = (y_true * alpha + (1.0 - y_true) * (1.0 - alpha)) * focal
    return per_sample(focal.mean(dim=axis))


def categorical_focal_crossentropy(
    y_true: Any,
    y_pred: Any,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """Computes the categorical focal crossentropy, summed over the class axis, as Keras does.

    Predictions (softmax of logits with `from_logits=True`) are divided by their sum and
    clipped to `[eps, 1 - eps]`; each class's `-y_true * log(p)` is multiplied by
    `alpha * (1 - p) ** gamma`.

    Args:
        y_true: One-hot (or soft) targets of shape `(batch, ..., classes)`.
        y_pred: Probabilities, or logits when `from_logits=True`, of the same shape.
        alpha: The weight of every class.
        gamma: The focusing parameter.
        from_logits: Whether `y_pred` holds logits.
        label_smoothing: Targets are mixed with the uniform distribution by this fraction.
        axis: The class axis.

    Returns:
        Per-sample losses of shape `(batch,)`.

    Raises:
        ValueError: If `axis` is a bool, or the shapes differ.
    """
    if isinstance(axis, bool):
        raise ValueError(
            f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}"
        )
    y_true, y_pred = prepare_pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "Arguments `y_true` and `y_pred` must have the same shape for categorical focal "
            f"crossentropy. Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    if y_pred.dim() < 2:
        y_true, y_pred = y_true.reshape(1, -1), y_pred.reshape(1, -1)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[axis]
    if from_logits:
        y_pred = torch.softmax(y_pred, dim=axis)
    output = (y_pred / y_pred.sum(dim=axis, keepdim=True)).clamp(EPSILON, 1.0 - EPSILON)
    focal = alpha * torch.pow(1.0 - output, gamma) * (-y_true * torch.log(output))
    return per_sample(focal.sum(dim=axis))


class BinaryFocalCrossentropy(LossFunctionWrapper):
    """Binary focal crossentropy (Keras name `binary_focal_crossentropy`).

    Args:
        apply_class_balancing: Whether to weight class 1 by `alpha` and class 0 by
            `1 - alpha`.
        alpha: The class-1 weight. Defaults to 0.25.
        gamma: The focusing parameter. Defaults to 2.0.
        from_logits: Whether predictions are logits.
        label_smoothing: Targets are moved towards 0.5 by this fraction.
        axis: The axis that is averaged.
        reduction: See `Loss`.
        name: Name of the loss.
    """

    def __init__(
        self,
        apply_class_balancing: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_focal_crossentropy",
    ):
        super().__init__(
            binary_focal_crossentropy,
            name=name,
            reduction=reduction,
            apply_class_balancing=apply_class_balancing,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    """Categorical focal crossentropy (Keras name `categorical_focal_crossentropy`).

    Args:
        alpha: The weight of every class. Defaults to 0.25.
        gamma: The focusing parameter. Defaults to 2.0.
        from_logits: Whether predictions are logits.
        label_smoothing: Targets are mixed with the uniform distribution by this fraction.
        axis: The class axis.
        reduction: See `Loss`.
        name: Name of the loss.
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_focal_crossentropy",
    ):
        super().__init__(
            categorical_focal_crossentropy,
            name=name,
            reduction=reduction,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


def categorical_generalized_cross_entropy(y_true: Any, y_pred: Any, q: float) -> Tensor:
    """Computes `(1 - p ** q) / q`, `p` the probability of the true class, as Keras does.

    Args:
        y_true: Integer class indices of shape `(batch,)` or `(batch, 1)`.
        y_pred: Class probabilities of shape `(batch, classes)`.
        q: The noise parameter in (0, 1): near 0 it behaves like crossentropy, near 1
            like the mean absolute error.

    Returns:
        Losses of shape `(batch,)`.
    """
    y_pred = float_predictions(y_pred)
    labels = sparse_labels(y_true, y_pred)
    p = torch.gather(y_pred, -1, labels.unsqueeze(-1)).squeeze(-1)
    return (1 - torch.pow(p, q)) / q


class CategoricalGeneralizedCrossEntropy(LossFunctionWrapper):
    """The generalized crossentropy for noisy labels (Keras 3 exports it, outside its registry).

    Args:
        q: The noise parameter, in (0, 1). Defaults to 0.5.
        reduction: See `Loss`.
        name: Name of the loss.

    Raises:
        ValueError: If `q` is not in (0, 1) (Keras's message).
    """

    def __init__(
        self,
        q: float = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str = "categorical_generalized_cross_entropy",
    ):
        if not 0 < q < 1:
            raise ValueError("q must be in the interval (0, 1)")
        super().__init__(categorical_generalized_cross_entropy, name=name, reduction=reduction, q=q)

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        """Computes the per-sample losses (integer labels are not cast to floats)."""
        return categorical_generalized_cross_entropy(y_true, y_pred, **self.fn_kwargs)
