"""Keras's ``keras.utils`` helpers that ported code uses.

``Sequence`` (``PyDataset``), ``to_categorical``, and the registry of custom objects
(``register_keras_serializable``, ``get_registered_object``, ``get_registered_name``,
``get_custom_objects``, ``custom_object_scope``; see :mod:`cadence.object_registration`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cadence.data.sequence import PyDataset, Sequence
from cadence.object_registration import (
    CustomObjectScope,
    custom_object_scope,
    get_custom_objects,
    get_registered_name,
    get_registered_object,
    register_keras_serializable,
)

__all__ = [
    "CustomObjectScope", "PyDataset", "Sequence", "custom_object_scope", "get_custom_objects",
    "get_registered_name", "get_registered_object", "register_keras_serializable", "to_categorical",
]


def to_categorical(y: Any, num_classes: int | None = None, dtype: str = "float32") -> np.ndarray:
    """Return the one-hot encoding of integer class labels, as ``keras.utils.to_categorical``.

    Args:
        y: Integer labels of any shape (a trailing axis of size 1 is dropped).
        num_classes: Number of classes; ``max(y) + 1`` when omitted.
        dtype: The dtype of the result.

    Returns:
        An array of shape ``y.shape + (num_classes,)``.
    """
    labels = np.asarray(y)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if labels.size and (labels.min() < 0 or not np.all(np.equal(np.mod(labels, 1), 0))):
        raise ValueError(
            f"to_categorical expects integer labels >= 0; received values such as {labels.min()}."
        )
    labels = labels.astype(np.int64)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
        raise ValueError(
            f"to_categorical received label {int(labels.max())} with num_classes={num_classes}; "
            "labels must be < num_classes."
        )
    out = np.zeros(labels.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return out
