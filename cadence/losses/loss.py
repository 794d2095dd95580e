"""The `Loss` base class and Keras's reductions."""

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from cadence.losses.shapes import EPSILON, prepare_pair, to_tensor

REDUCTIONS = ("mean", "mean_with_sample_weight", "none", "sum", "sum_over_batch_size")


def standardize_reduction(reduction: str | None) -> str:
    """Checks a reduction name and maps `None` to `"none"`.

    Args:
        reduction: One of `REDUCTIONS`, or `None`.

    Returns:
        The reduction name.

    Raises:
        ValueError: If the reduction is unknown.
    """
    if reduction is None:
        return "none"
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`. Expected one of {list(REDUCTIONS)}. "
            f"Received: reduction={reduction!r}"
        )
    return reduction


def align_weights(sample_weight: Any, values: Tensor) -> Tensor:
    """Converts sample weights to a tensor that broadcasts against `values`.

    Args:
        sample_weight: A number, or an array of shape `(batch,)`, `(batch, 1)` or the
            shape of `values`.
        values: Loss values of shape `(batch, ...)`.

    Returns:
        The weights in `values`' dtype and device, with trailing axes of size 1 added or
        removed so that they line up with `values` from the batch axis on.

    Raises:
        ValueError: If the batch sizes differ.
    """
    weights = to_tensor(sample_weight, like=values).to(values.dtype)
    while weights.dim() > values.dim() and weights.shape[-1] == 1:
        weights = weights.squeeze(-1)
    while 0 < weights.dim() < values.dim():
        weights = weights.unsqueeze(-1)
    if weights.dim() and values.dim() and weights.shape[0] not in (1, values.shape[0]):
        raise ValueError(
            "`sample_weight` must have one weight per sample. Received: "
            f"sample_weight.shape={tuple(weights.shape)} for losses of shape "
            f"{tuple(values.shape)}"
        )
    return weights


def _divide_no_nan(numerator: Tensor, denominator: Tensor) -> Tensor:
    safe = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    return torch.where(denominator == 0, torch.zeros_like(numerator), numerator / safe)


def reduce_weighted(
    values: Tensor,
    sample_weight: Any = None,
    reduction: str = "sum_over_batch_size",
    mean_scale: Tensor | None = None,
) -> Tensor:
    """Weights loss values and reduces them the way Keras 3 does.

    - `"sum_over_batch_size"` and `"mean"`: `sum(values * w) / values.numel()`; the
      divisor is the number of values, not the sum of the weights, so a zero weight
      removes a sample's contribution but still counts it.
    - `"mean_with_sample_weight"`: `sum(values * w) / sum(w)` (0 when `sum(w) == 0`).
    - `"sum"`: `sum(values * w)`.
    - `"none"`: `values * w`, unreduced.

    A 0-d `values` (a loss that is already reduced) is broadcast over the weights, so
    weighting it multiplies it by the mean weight (`"sum_over_batch_size"`) or by the
    sum of the weights (`"sum"`). Without weights it is returned as is.

    Args:
        values: Loss values of shape `(batch, ...)`, or a 0-d tensor.
        sample_weight: Optional weights, see `align_weights`.
        reduction: A name from `REDUCTIONS`.
        mean_scale: Optional factor applied by the mean reductions (used to average
            over valid entries only, see `SparseCategoricalCrossentropy`).

    Returns:
        The reduced loss (0-d), or the weighted values for `"none"`.
    """
    reduction = standardize_reduction(reduction)
    weights = None
    if sample_weight is not None:
        weights = align_weights(sample_weight, values)
        if values.dim() == 0:
            if weights.dim() == 0:
                return values * weights
            values = values.expand(weights.shape)
        values = values * weights
    if reduction == "none" or values.dim() == 0:
        return values
    if weights is None and mean_scale is None and reduction in ("sum_over_batch_size", "mean"):
        return values.mean()
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and weights is not None:
        divisor = torch.broadcast_to(weights, values.shape).sum()
        loss = _divide_no_nan(total, divisor)
    else:
        loss = total / max(values.numel(), 1)
    if mean_scale is not None:
        loss = loss * mean_scale
    return loss


class Loss:
    """Base class of cadence losses, with Keras 3's interface.

    Subclasses implement `call(y_true, y_pred)` returning per-sample losses of shape
    `(batch,)` (or `(batch, ...)`, or an already reduced 0-d tensor). Calling the loss
    applies `sample_weight` and the reduction.

    Args:
        name: Name of the loss; defaults to the Keras name of the class.
        reduction: One of `"sum_over_batch_size"` (default), `"sum"`, `"mean"`,
            `"mean_with_sample_weight"`, `"none"` or `None`. See `reduce_weighted`.
    """

    default_name: str = "loss"

    def __init__(self, name: str | None = None, reduction: str | None = "sum_over_batch_size"):
        self.name = name if name is not None else self.default_name
        self.reduction = standardize_reduction(reduction)

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        """Computes the unreduced losses.

        Args:
            y_true: Targets.
            y_pred: Predictions.

        Returns:
            Per-sample losses.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement `call(y_true, y_pred)`.")

    def mean_scale(self, y_true: Any, y_pred: Any) -> Tensor | None:
        """Returns a factor for the mean reductions, or `None` (the default).

        Args:
            y_true: Targets.
            y_pred: Predictions.

        Returns:
            `None`, or a 0-d tensor the mean-reduced loss is multiplied by.
        """
        return None

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Tensor:
        """Computes the weighted, reduced loss.

        Args:
            y_true: Targets.
            y_pred: Predictions.
            sample_weight: Optional weights of shape `(batch,)` or `(batch, 1)`.

        Returns:
            A 0-d tensor, or per-sample losses when the reduction is `"none"`.
        """
        values = self.call(y_true, y_pred)
        scale = self.mean_scale(y_true, y_pred)
        return reduce_weighted(values, sample_weight, self.reduction, scale)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments of this loss.

        Returns:
            A dict with `name` and `reduction`.
        """
        return {"name": self.name, "reduction": self.reduction}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, reduction={self.reduction!r})"


class LossFunctionWrapper(Loss):
    """A `Loss` around a function `fn(y_true, y_pred, **kwargs)`.

    The inputs are converted to tensors, integer targets cast to the predictions'
    dtype and ranks aligned (`(n,)` meets `(n, 1)`) before `fn` is called. If `fn`
    returns a tensor with a batch axis, its values are reduced per sample; if it
    returns a 0-d tensor, that value is used as is, and a `sample_weight` then
    multiplies it by the mean weight (`"sum_over_batch_size"`).

    Args:
        fn: The loss function.
        name: Name of the loss; defaults to `fn.__name__`.
        reduction: See `Loss`.
        **kwargs: Extra keyword arguments passed to `fn`.
    """

    def __init__(
        self,
        fn: Callable[..., Tensor],
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        **kwargs: Any,
    ):
        if name is None:
            name = getattr(fn, "__name__", None) or type(fn).__name__
        super().__init__(name=name, reduction=reduction)
        self.fn = fn
        self.fn_kwargs = kwargs

    def call(self, y_true: Any, y_pred: Any) -> Tensor:
        """Calls the wrapped function on aligned tensors.

        Args:
            y_true: Targets.
            y_pred: Predictions.

        Returns:
            What the function returns, as a tensor.
        """
        y_true, y_pred = prepare_pair(y_true, y_pred)
        return to_tensor(self.fn(y_true, y_pred, **self.fn_kwargs), like=y_pred)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments of this loss.

        Returns:
            A dict with `name`, `reduction` and the function's keyword arguments.
        """
        return {**super().get_config(), **self.fn_kwargs}


def ignored_fraction_scale(valid: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Returns `total / valid` so that mean reductions average over valid entries only.

    Args:
        valid: A boolean mask of the entries that count.
        dtype: The dtype of the losses the factor will scale.

    Returns:
        A 0-d tensor, computed on the device without a host sync.
    """
    count = valid.sum(dtype=dtype)
    return valid.numel() / (count + EPSILON)
