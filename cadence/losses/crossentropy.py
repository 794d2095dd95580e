"""Per-sample crossentropy losses, named as in Keras.

With `from_logits=False` the predictions are probabilities: they are clipped to
`[eps, 1 - eps]` (and, for the categorical losses, first divided by their sum), exactly
as Keras does. With `from_logits=True` numerically stable torch ops are used
(`binary_cross_entropy_with_logits`, `log_softmax`).
"""

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cadence.losses.shapes import (
    EPSILON,
    as_samples,
    float_predictions,
    per_sample,
    prepare_pair,
    to_tensor,
)


def binary_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """Computes the binary crossentropy, averaged over `axis`.

    Args:
        y_true: Targets in `[0, 1]`, shape `(batch, ...)`; `(n,)` with predictions
            `(n, 1)` is accepted.
        y_pred: Predicted probabilities, or logits when `from_logits=True`.
        from_logits: Whether `y_pred` holds logits.
        label_smoothing: Targets are moved towards 0.5 by this fraction.
        axis: The axis that is averaged (Keras's default, the last one).

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = as_samples(*prepare_pair(y_true, y_pred))
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        values = F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none")
    else:
        probs = y_pred.clamp(EPSILON, 1.0 - EPSILON)
        values = -(y_true * torch.log(probs) + (1.0 - y_true) * torch.log(1.0 - probs))
    return per_sample(values.mean(dim=axis))


def _log_probs(y_pred: Tensor, from_logits: bool, axis: int) -> Tensor:
    if from_logits:
        return torch.log_softmax(y_pred, dim=axis)
    probs = y_pred / y_pred.sum(dim=axis, keepdim=True)
    return torch.log(probs.clamp(EPSILON, 1.0 - EPSILON))


def categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> Tensor:
    """Computes the crossentropy between one-hot (or soft) targets and predictions.

    Args:
        y_true: One-hot or probability targets of shape `(batch, ..., classes)`.
        y_pred: Predicted probabilities (renormalised to sum to one), or logits when
            `from_logits=True`, of the same shape.
        from_logits: Whether `y_pred` holds logits.
        label_smoothing: Targets are mixed with the uniform distribution by this
            fraction.
        axis: The class axis.

    Returns:
        Per-sample losses of shape `(batch,)`.

    Raises:
        ValueError: If targets and predictions have different shapes.
    """
    y_true, y_pred = prepare_pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            "Arguments `y_true` and `y_pred` must have the same shape for categorical "
            f"crossentropy. Received: y_true.shape={tuple(y_true.shape)}, "
            f"y_pred.shape={tuple(y_pred.shape)}"
        )
    if y_pred.dim() < 2:
        y_true, y_pred = y_true.reshape(1, -1), y_pred.reshape(1, -1)
    if label_smoothing:
        num_classes = y_true.shape[axis]
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / num_classes
    values = -(y_true * _log_probs(y_pred, from_logits, axis)).sum(dim=axis)
    return per_sample(values)


def sparse_labels(y_true: Any, y_pred: Tensor, axis: int = -1) -> Tensor:
    """Converts sparse class labels to an int64 tensor shaped like `y_pred` minus `axis`.

    Args:
        y_true: Integer class indices of shape `(batch, ...)` or `(batch, ..., 1)`.
        y_pred: Class scores of shape `(batch, ..., classes)`.
        axis: The class axis of `y_pred`.

    Returns:
        The labels as int64, shape `y_pred.shape` without `axis`.

    Raises:
        ValueError: If the label shape does not match the predictions.
    """
    labels = to_tensor(y_true, like=y_pred)
    if labels.dim() == y_pred.dim() and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    expected = list(y_pred.shape)
    del expected[axis]
    if list(labels.shape) != expected:
        raise ValueError(
            "Sparse labels must have the shape of `y_pred` without its class axis "
            f"(optionally with a trailing axis of 1). Received: y_true.shape="
            f"{tuple(to_tensor(y_true).shape)}, y_pred.shape={tuple(y_pred.shape)}"
        )
    return labels.long()


def sparse_categorical_crossentropy(
    y_true: Any,
    y_pred: Any,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
) -> Tensor:
    """Computes the crossentropy between integer class labels and predictions.

    Args:
        y_true: Integer class indices of shape `(batch, ...)` or `(batch, ..., 1)`.
        y_pred: Predicted probabilities, or logits when `from_logits=True`, of shape
            `(batch, ..., classes)`.
        from_logits: Whether `y_pred` holds logits.
        ignore_class: A label value whose entries contribute a loss of 0.
        axis: The class axis.

    Returns:
        Per-sample losses of shape `(batch,)`; extra axes are averaged with ignored
        entries counted as 0 (the `Loss` class rescales them as Keras does).
    """
    y_pred = float_predictions(y_pred)
    labels = sparse_labels(y_true, y_pred, axis)
    if from_logits and y_pred.dim() >= 2:
        # log_softmax and the pick of each label's entry in one torch kernel; an ignored
        # entry's loss is 0. (Without ignore_class, torch's default ignore_index -100 is not a
        # class index either; any other label outside [0, classes) raises.)
        scores = y_pred if axis in (1, 1 - y_pred.dim()) else y_pred.movedim(axis, 1)
        values = F.cross_entropy(
            scores, labels, reduction="none",
            ignore_index=ignore_class if ignore_class is not None else -100,
        )
        return per_sample(values)
    valid = None
    if ignore_class is not None:
        valid = labels != ignore_class
        labels = torch.where(valid, labels, torch.zeros_like(labels))
    log_probs = _log_probs(y_pred, from_logits, axis)
    picked = torch.gather(log_probs, axis, labels.unsqueeze(axis)).squeeze(axis)
    values = -picked
    if valid is not None:
        values = torch.where(valid, values, torch.zeros_like(values))
    return per_sample(values)
