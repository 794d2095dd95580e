"""Fused fast paths: one torch kernel for the common, unweighted case of a built-in loss.

A Keras loss is defined per sample (``call`` returns one value per sample) and then reduced.
Without sample weights and with the ``"sum_over_batch_size"`` reduction, the mean of the
per-sample means of a dense batch equals the mean over all its elements, which torch computes
in one fused kernel with a one-node backward (``F.mse_loss``, ``F.l1_loss``,
``F.cross_entropy``, ``F.binary_cross_entropy_with_logits``). The values agree with the
per-sample path up to float rounding; anything unusual (weights, other reductions, mixed
devices or dtypes, shapes the per-sample path would align) takes the per-sample path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

_FLOATS = (torch.float32, torch.float64)


def dense_pair(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor] | None:
    """Return ``(y_true, y_pred)`` with equal shapes and y_pred's dtype, or None if unusual."""
    if type(y_true) is not Tensor or type(y_pred) is not Tensor:
        return None
    if y_pred.dtype not in _FLOATS or y_true.device != y_pred.device:
        return None
    if y_true.shape != y_pred.shape:
        # The per-sample path meets (n,) with (n, 1); do the same here, nothing else.
        if y_true.dim() == 1 and y_pred.dim() == 2 and y_pred.shape[1] == 1 \
                and y_true.shape[0] == y_pred.shape[0]:
            y_true = y_true.unsqueeze(1)
        else:
            return None
    if y_true.dtype != y_pred.dtype:
        y_true = y_true.to(y_pred.dtype)
    return y_true, y_pred


def mean_squared_error(y_true: Any, y_pred: Any) -> Tensor | None:
    """Return the unweighted mean squared error in one kernel, or None to use the slow path."""
    pair = dense_pair(y_true, y_pred)
    return None if pair is None else F.mse_loss(pair[1], pair[0])


def mean_absolute_error(y_true: Any, y_pred: Any) -> Tensor | None:
    """Return the unweighted mean absolute error in one kernel, or None to use the slow path."""
    pair = dense_pair(y_true, y_pred)
    return None if pair is None else F.l1_loss(pair[1], pair[0])


def sparse_categorical_crossentropy_from_logits(y_true: Any, y_pred: Any) -> Tensor | None:
    """Return the unweighted crossentropy of logits ``(n, classes)`` and labels ``(n,)``."""
    if type(y_true) is not Tensor or type(y_pred) is not Tensor:
        return None
    if y_pred.dtype not in _FLOATS or y_pred.dim() != 2 or y_true.device != y_pred.device:
        return None
    if y_true.dim() == 2 and y_true.shape[1] == 1:
        y_true = y_true[:, 0]
    if y_true.dim() != 1 or y_true.shape[0] != y_pred.shape[0]:
        return None
    if y_true.is_floating_point():
        return None  # The per-sample path checks and rounds float labels.
    return F.cross_entropy(y_pred, y_true.long())


def binary_crossentropy_from_logits(y_true: Any, y_pred: Any) -> Tensor | None:
    """Return the unweighted binary crossentropy of logits, without label smoothing."""
    pair = dense_pair(y_true, y_pred)
    return None if pair is None else F.binary_cross_entropy_with_logits(pair[1], pair[0])
