"""class_weight: per-class weights turned into per-sample weights, as Keras does.

``fit(class_weight={0: 1.0, 1: 10.0})`` gives every training sample the weight of its class.
The class of a sample is the argmax of a one-hot (or probability) target row, the value of a
``(n, 1)`` column, or of a ``(n,)`` vector (floats are rounded). A class that appears in the
targets but not in ``class_weight`` gets the weight 1.0, as in Keras (no error, no warning);
so does a negative label (an "ignore" class). The weights apply to training only, never to
validation, and cannot be combined with ``sample_weight`` (fold them into it instead).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from cadence.data import tree


def check_class_weight(class_weight: Any) -> dict[int, float]:
    """Return ``class_weight`` as ``{int class: float weight}``, or raise naming what is wrong."""
    if not isinstance(class_weight, dict):
        raise TypeError(
            "class_weight must be a dict mapping class indices to weights; received "
            f"{type(class_weight).__name__}."
        )
    table: dict[int, float] = {}
    for key, value in class_weight.items():
        try:
            index = int(key)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"class_weight keys must be integer class indices; received key {key!r}."
            ) from error
        if index < 0 or index != key:
            raise ValueError(
                f"class_weight keys must be integer class indices >= 0; received key {key!r}."
            )
        try:
            weight = float(value)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"class_weight values must be numbers; received {value!r} for class {key!r}."
            ) from error
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(
                "class_weight values must be finite numbers >= 0; received "
                f"{value!r} for class {key!r}."
            )
        table[index] = weight
    return table


def sample_weight_from_class_weight(y: Any, class_weight: dict[int, float]) -> torch.Tensor:
    """Return each sample's weight: the weight of its class.

    The class of a sample is the argmax of a one-hot (or probability) row, the value of a
    ``(n, 1)`` column or of a ``(n,)`` vector. A class with no entry in ``class_weight`` gets
    1.0, as in Keras.

    Args:
        y: The targets of a batch (a tensor or array); a single output only.
        class_weight: ``{class index: weight}``.
    """
    if isinstance(y, dict | list | tuple):
        raise ValueError(
            "class_weight is only supported for a single output; the targets are a "
            f"{type(y).__name__}. Use sample_weight per output instead."
        )
    labels = tree.to_tensor(y)
    if labels.ndim == 2 and labels.shape[1] > 1:
        labels = labels.argmax(dim=1)
    elif labels.ndim == 2:
        labels = labels[:, 0]
    elif labels.ndim != 1:
        raise ValueError(
            "class_weight needs targets of shape (n,), (n, 1) or one-hot (n, classes); received "
            f"shape {tuple(labels.shape)}."
        )
    labels = labels.round().long() if labels.is_floating_point() else labels.long()
    size = max(class_weight, default=-1) + 1
    top = int(labels.max()) + 1 if labels.numel() else 0
    table = torch.ones(max(size, top, 0) + 1, dtype=torch.float32, device=labels.device)
    for index, weight in class_weight.items():
        table[index] = weight
    # Negative labels read the last entry, which is always 1.0.
    return table[labels.clamp(min=-1)]


def apply_class_weight(batch: Any, class_weight: dict[int, float]) -> Any:
    """Return ``batch`` as ``(x, y, sample_weight)`` with the weights of its samples' classes.

    Raises:
        ValueError: If the batch brings its own ``sample_weight`` (they cannot be combined).
    """
    x, y, sample_weight = tree.unpack_x_y_sample_weight(batch)
    if y is None:
        return batch
    if sample_weight is not None:
        raise ValueError(
            "class_weight cannot be used with data whose batches carry their own "
            "sample_weight (a third element); fold the class weights into sample_weight."
        )
    return (x, y, sample_weight_from_class_weight(y, class_weight))
