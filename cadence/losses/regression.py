"""Per-sample regression and margin losses, named as in Keras.

Every function takes `(y_true, y_pred)` and returns one value per sample, shape
`(batch,)`. Keras reduces the last axis; any further non-batch axes are averaged too,
which gives the same reduced loss as Keras. Inputs of rank 1 are treated as a batch of
scalar samples (Keras would average them into one value).
"""

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cadence.losses.shapes import EPSILON, as_samples, per_sample, prepare_pair


def _pair(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    return as_samples(*prepare_pair(y_true, y_pred))


def _mean_last(values: Tensor) -> Tensor:
    """Average the last axis (a view when it has one element: the mean of one value is itself)."""
    return values.squeeze(-1) if values.shape[-1] == 1 else values.mean(dim=-1)


def mean_squared_error(y_true: Any, y_pred: Any) -> Tensor:
    """Computes the mean of squared errors over the last axis.

    Args:
        y_true: Targets of shape `(batch, ...)`.
        y_pred: Predictions of the same shape (or differing by a trailing axis of 1).

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return per_sample(_mean_last(torch.square(y_pred - y_true)))


def mean_absolute_error(y_true: Any, y_pred: Any) -> Tensor:
    """Computes the mean of absolute errors over the last axis.

    Args:
        y_true: Targets of shape `(batch, ...)`.
        y_pred: Predictions of the same shape.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return per_sample(_mean_last(torch.abs(y_pred - y_true)))


def mean_absolute_percentage_error(y_true: Any, y_pred: Any) -> Tensor:
    """Computes `100 * mean(|y_true - y_pred| / max(|y_true|, eps))` over the last axis.

    Args:
        y_true: Targets of shape `(batch, ...)`.
        y_pred: Predictions of the same shape.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    ratio = torch.abs(y_true - y_pred) / torch.abs(y_true).clamp_min(EPSILON)
    return per_sample(100.0 * ratio.mean(dim=-1))


def mean_squared_logarithmic_error(y_true: Any, y_pred: Any) -> Tensor:
    """Computes the mean of `(log(1 + y_pred) - log(1 + y_true))**2` over the last axis.

    Values below `eps` are raised to `eps` before taking the logarithm, as in Keras.

    Args:
        y_true: Targets of shape `(batch, ...)`.
        y_pred: Predictions of the same shape.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    log_pred = torch.log1p(y_pred.clamp_min(EPSILON))
    log_true = torch.log1p(y_true.clamp_min(EPSILON))
    return per_sample(torch.square(log_pred - log_true).mean(dim=-1))


def huber(y_true: Any, y_pred: Any, delta: float = 1.0) -> Tensor:
    """Computes the Huber loss: quadratic for errors up to `delta`, linear beyond.

    Args:
        y_true: Targets of shape `(batch, ...)`.
        y_pred: Predictions of the same shape.
        delta: The error at which the loss switches from quadratic to linear.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    error = torch.abs(y_pred - y_true)
    quadratic = 0.5 * torch.square(error)
    linear = delta * error - 0.5 * delta * delta
    return per_sample(torch.where(error <= delta, quadratic, linear).mean(dim=-1))


def log_cosh(y_true: Any, y_pred: Any) -> Tensor:
    """Computes the mean of `log(cosh(y_pred - y_true))` over the last axis, stably.

    Args:
        y_true: Targets of shape `(batch, ...)`.
        y_pred: Predictions of the same shape.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    error = y_pred - y_true
    values = error + F.softplus(-2.0 * error) - math.log(2.0)
    return per_sample(values.mean(dim=-1))


def poisson(y_true: Any, y_pred: Any) -> Tensor:
    """Computes the mean of `y_pred - y_true * log(y_pred + eps)` over the last axis.

    Args:
        y_true: Targets of shape `(batch, ...)`.
        y_pred: Predicted rates of the same shape.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return per_sample((y_pred - y_true * torch.log(y_pred + EPSILON)).mean(dim=-1))


def _hinge_labels(y_true: Tensor) -> Tensor:
    # Labels given as 0/1 are mapped to -1/1; decided on the device, without a sync.
    is_binary = torch.all((y_true == 0) | (y_true == 1))
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true: Any, y_pred: Any) -> Tensor:
    """Computes the mean of `max(1 - y_true * y_pred, 0)` over the last axis.

    Labels are expected to be -1 or 1; labels that are all 0 or 1 are mapped to -1/1.

    Args:
        y_true: Targets of shape `(batch, ...)`.
        y_pred: Predictions of the same shape.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    margin = torch.clamp_min(1.0 - _hinge_labels(y_true) * y_pred, 0.0)
    return per_sample(margin.mean(dim=-1))


def squared_hinge(y_true: Any, y_pred: Any) -> Tensor:
    """Computes the mean of `max(1 - y_true * y_pred, 0) ** 2` over the last axis.

    Args:
        y_true: Targets of shape `(batch, ...)`, -1/1 or 0/1.
        y_pred: Predictions of the same shape.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    margin = torch.clamp_min(1.0 - _hinge_labels(y_true) * y_pred, 0.0)
    return per_sample(torch.square(margin).mean(dim=-1))


def _distributions(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    # A rank-1 input is one sample along the class axis here.
    y_true, y_pred = prepare_pair(y_true, y_pred)
    if y_pred.dim() < 2:
        y_true, y_pred = y_true.reshape(1, -1), y_pred.reshape(1, -1)
    return y_true, y_pred


def kl_divergence(y_true: Any, y_pred: Any) -> Tensor:
    """Computes `sum(y_true * log(y_true / y_pred))` over the last axis.

    Both inputs are clipped to `[eps, 1]` first, as in Keras.

    Args:
        y_true: Target distributions of shape `(batch, ..., classes)`.
        y_pred: Predicted distributions of the same shape.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _distributions(y_true, y_pred)
    y_true = y_true.clamp(EPSILON, 1.0)
    y_pred = y_pred.clamp(EPSILON, 1.0)
    return per_sample((y_true * torch.log(y_true / y_pred)).sum(dim=-1))


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> Tensor:
    """Computes the negative cosine similarity between targets and predictions.

    The result lies in `[-1, 1]`; -1 means the vectors point the same way, which is
    why minimising it maximises similarity. A zero vector gives 0.

    Args:
        y_true: Targets of shape `(batch, ..., features)`.
        y_pred: Predictions of the same shape.
        axis: The axis along which the similarity is computed.

    Returns:
        Per-sample losses of shape `(batch,)`.
    """
    y_true, y_pred = _distributions(y_true, y_pred)
    y_true = F.normalize(y_true, p=2.0, dim=axis, eps=1e-12)
    y_pred = F.normalize(y_pred, p=2.0, dim=axis, eps=1e-12)
    return per_sample(-(y_true * y_pred).sum(dim=axis))


kld = kl_divergence
mse = mean_squared_error
mae = mean_absolute_error
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error
logcosh = log_cosh
