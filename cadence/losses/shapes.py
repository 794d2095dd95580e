"""Tensor conversion and shape alignment shared by losses and metrics."""

import re
from typing import Any

import torch
from torch import Tensor

EPSILON = 1e-7
"""The fuzz factor Keras calls `backend.epsilon()`; used for clipping probabilities."""


def to_tensor(value: Any, like: Tensor | None = None) -> Tensor:
    """Converts an array-like to a tensor, on the device of `like` when given.

    Args:
        value: A tensor, numpy array, Python number or nested sequence.
        like: Optional tensor whose device the result should live on.

    Returns:
        A tensor. Tensors already on the right device are returned unchanged.
    """
    device = like.device if like is not None else None
    if isinstance(value, Tensor):
        if device is None or value.device == device:
            return value
        return value.to(device, non_blocking=True)
    return torch.as_tensor(value, device=device)


def align_ranks(x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
    """Brings two tensors whose ranks differ by one to the same rank.

    When one tensor has one more axis than the other and that last axis has size 1,
    the lower-rank tensor is expanded if it has rank 1 (so `(n,)` meets `(n, 1)` as
    `(n, 1)`), otherwise the trailing axis of size 1 is squeezed away. Any other
    combination of shapes is returned unchanged.

    Args:
        x1: First tensor.
        x2: Second tensor.

    Returns:
        The two tensors, possibly reshaped.
    """
    if x1.dim() == x2.dim() + 1 and x1.shape[-1] == 1:
        if x2.dim() == 1:
            return x1, x2.unsqueeze(-1)
        return x1.squeeze(-1), x2
    if x2.dim() == x1.dim() + 1 and x2.shape[-1] == 1:
        if x1.dim() == 1:
            return x1.unsqueeze(-1), x2
        return x1, x2.squeeze(-1)
    return x1, x2


def float_predictions(y_pred: Any) -> Tensor:
    """Converts predictions to a tensor of at least float32 precision.

    Half-precision predictions (from mixed precision) are upcast to float32, as Keras
    computes losses in float32; non-floating predictions become float32 too.

    Args:
        y_pred: Predictions.

    Returns:
        A float32 or float64 tensor.
    """
    y_pred = to_tensor(y_pred)
    if y_pred.dtype not in (torch.float32, torch.float64):
        y_pred = y_pred.to(torch.float32)
    return y_pred


def prepare_pair(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    """Converts targets and predictions to floating tensors of the same rank and dtype.

    Predictions are converted with `float_predictions`, targets (integer and boolean
    ones included) are cast to the predictions' dtype, and both are aligned with
    `align_ranks`.

    Args:
        y_true: Targets.
        y_pred: Predictions.

    Returns:
        `(y_true, y_pred)` as tensors on the predictions' device.
    """
    y_pred = float_predictions(y_pred)
    y_true = to_tensor(y_true, like=y_pred)
    if y_true.dtype is not y_pred.dtype:
        y_true = y_true.to(y_pred.dtype)
    y_true, y_pred = align_ranks(y_true, y_pred)
    return y_true, y_pred


def as_samples(y_true: Tensor, y_pred: Tensor) -> tuple[Tensor, Tensor]:
    """Gives 0-d and 1-d inputs a trailing feature axis so each element is one sample.

    Args:
        y_true: Targets, already aligned with the predictions.
        y_pred: Predictions.

    Returns:
        Tensors of rank at least 2.
    """
    while y_pred.dim() < 2:
        y_pred = y_pred.unsqueeze(-1)
    while y_true.dim() < 2:
        y_true = y_true.unsqueeze(-1)
    return y_true, y_pred


def per_sample(values: Tensor) -> Tensor:
    """Averages every axis but the first, so the result has shape `(batch,)`.

    Args:
        values: Loss or metric values of shape `(batch, ...)`; a 0-d tensor is
            treated as a batch of one.

    Returns:
        A tensor of shape `(batch,)`.
    """
    if values.dim() == 0:
        return values.reshape(1)
    if values.dim() == 1:
        return values
    return values.mean(dim=tuple(range(1, values.dim())))


def snake_case(name: str) -> str:
    """Turns a CamelCase class name into snake_case (`MSELoss` -> `mse_loss`).

    Args:
        name: A class or function name.

    Returns:
        The snake_case form of `name`.
    """
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()
