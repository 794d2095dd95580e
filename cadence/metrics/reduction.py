"""Reducing metrics: `Mean`, `Sum` and `MeanMetricWrapper`."""

from collections.abc import Callable
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from cadence.losses.shapes import align_ranks, to_tensor
from cadence.metrics.metric import Metric


def _reduce(values: Tensor, start: int, reduce_fn: Callable[..., Tensor]) -> Tensor:
    if values.dim() <= start:
        return values
    return reduce_fn(values, dim=tuple(range(start, values.dim())))


def samplewise_totals(
    values: Tensor,
    sample_weight: Any,
    reduce_fn: Callable[..., Tensor],
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor | float]:
    """Reduces a batch of values to a weighted total and the weight it carries.

    Values are first reduced (with `reduce_fn`, `torch.mean` or `torch.sum`) over the
    axes the weights do not have, weighted, then reduced to one value per sample and
    summed. Without weights every sample weighs 1, and a 0-d value is one sample. A
    Python number weight with a 0-d value (the trainer's
    `loss_tracker.update_state(loss, sample_weight=batch_size)`) costs no extra tensor.

    Args:
        values: Values of shape `(batch, ...)` or a 0-d tensor.
        sample_weight: `None`, a Python number or an array broadcastable to `values`
            from the batch axis on, such as `(batch,)` or `(batch, 1)`.
        reduce_fn: How non-batch axes are reduced.
        dtype: The accumulation dtype.

    Returns:
        `(total, count)`: the weighted sum, and the sum of the weights (a Python number
        when no tensor weight was given).
    """
    if sample_weight is None:
        if values.dim() > 1:
            values = _reduce(values.to(dtype), 1, reduce_fn)
        return values.sum(dtype=dtype), (values.shape[0] if values.dim() else 1)
    values = values.to(dtype)
    if isinstance(sample_weight, Real) and not isinstance(sample_weight, bool):
        if values.dim():
            values = reduce_fn(values)
        return values * sample_weight, sample_weight
    weights = to_tensor(sample_weight, like=values).to(dtype)
    values, weights = align_ranks(values, weights)
    values = _reduce(values, weights.dim(), reduce_fn)
    weights = torch.broadcast_to(weights, values.shape)
    values = _reduce(values * weights, 1, reduce_fn)
    weights = _reduce(weights, 1, reduce_fn)
    return values.sum(), weights.sum()


class Mean(Metric):
    """The weighted mean of the values it is given.

    `update_state(values, sample_weight=None)` adds `sum(w_i * v_i)` to a float64 `total`
    and `sum(w_i)` to a float64 `count`, one value per sample (extra axes are averaged
    first); `result()` is `total / count`, 0 before any weight was added. Both states live on
    the device of the values, so neither method synchronises the host with the device.

    A whole-number weight the host already knows (the batch size of an unweighted batch, the
    trainer's `sample_weight=batch_size` for the loss) is summed on the host and added to
    `count` when the state is next read (`states()`, `result()`, `state_dict()`,
    `state_tensors()`): one device op fewer per batch, and the same `count`, since sums of
    whole numbers are exact in float64 in any order.

    Args:
        name: Name of the metric; defaults to `"mean"`.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str | None = "mean", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.add_state("total")
        self.add_state("count")
        self._host_count = 0  # Whole-number weights not yet added to `count`.
        # What the host knows of `count` since the last reset: whether a positive number was
        # added, and whether anything it cannot see (a tensor of weights, a negative number, a
        # loaded state) was. With the first and not the second, `count` > 0, so `result()`
        # divides without a guard against 0 / 0 (the same values, two device ops fewer).
        self._positive_count = False
        self._unseen_count = False

    def _note_count(self, count: Any) -> None:
        if isinstance(count, Tensor) or count < 0:
            self._unseen_count = True
        elif count > 0:
            self._positive_count = True

    def states(self, device: torch.device | None = None) -> dict[str, Tensor]:
        """Returns the state tensors, `count` up to date (see `Metric.states`)."""
        states = super().states(device)
        if self._host_count:
            states["count"].add_(self._host_count)
            self._host_count = 0
        return states

    def _add_count(self, count: Tensor, batch_count: Any) -> None:
        if type(batch_count) is int:
            self._host_count += batch_count
        else:
            count.add_(batch_count)
        self._note_count(batch_count)

    def reset_state(self) -> None:
        """Zeroes the state in place (no allocation, no host sync)."""
        super().reset_state()
        self._host_count = 0
        self._positive_count = False
        self._unseen_count = False

    def state_tensors(self) -> list[Tensor]:
        """Returns the live state tensors (which a distributed all-reduce sums in place).

        Returns:
            ``[total, count]``.
        """
        self._unseen_count = True  # Whoever holds them may change `count`.
        return super().state_tensors()

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Restores the state saved by `state_dict()`, on this metric's device.

        Args:
            state_dict: A dict from state name to tensor.

        Raises:
            ValueError: If the keys are not this metric's state names.
        """
        super().load_state_dict(state_dict)
        self._host_count = 0
        self._unseen_count = True

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Adds a batch of values (or one 0-d value) to the mean.

        Args:
            values: A tensor of shape `(batch, ...)`, a 0-d tensor or a number.
            sample_weight: Optional weights, a Python number or an array of shape
                `(batch,)` / `(batch, 1)`.
        """
        if isinstance(values, Tensor):
            if values.requires_grad:
                values = values.detach()
            state = self._states
            if not state or values.device != self._device:
                state = self.states(values.device)
        else:
            state = self.states()
            values = torch.as_tensor(values, device=self.device)
        total = state["total"]
        if values.dim() == 0 and type(sample_weight) is int:
            # The loss tracker: a batch's mean loss weighted by its size, one in-place add.
            total.add_(values, alpha=sample_weight)
            self._add_count(state["count"], sample_weight)
            return
        batch_total, batch_count = samplewise_totals(values, sample_weight, torch.mean, total.dtype)
        total.add_(batch_total)
        self._add_count(state["count"], batch_count)

    def result(self) -> Tensor:
        """Returns `total / count`, or 0 when nothing has been weighted yet.

        Returns:
            A 0-d tensor.
        """
        state = self.states()
        total, count = state["total"], state["count"]
        if self._positive_count and not self._unseen_count:
            return (total / count).to(self.dtype)
        return torch.where(count == 0, 0.0, total / count).to(self.dtype)


class Sum(Metric):
    """The weighted sum of the values it is given.

    Args:
        name: Name of the metric; defaults to `"sum"`.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str | None = "sum", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.add_state("total")

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Adds the (weighted) sum of `values` to the total.

        Args:
            values: A tensor, array or number.
            sample_weight: Optional weights broadcastable to `values`.
        """
        values = to_tensor(values) if isinstance(values, Tensor) else torch.as_tensor(
            values, device=self.device
        )
        state = self.states(values.device)
        total, _ = samplewise_totals(values, sample_weight, torch.sum, state["total"].dtype)
        state["total"].add_(total)

    def result(self) -> Tensor:
        """Returns the total.

        Returns:
            A 0-d tensor.
        """
        return self.states()["total"].to(self.dtype)


class MeanMetricWrapper(Mean):
    """The weighted mean over samples of `fn(y_true, y_pred, **kwargs)`.

    `fn` should return one value per sample (shape `(batch,)`); values with more axes
    are averaged per sample, and a 0-d value counts as one sample. Array inputs are
    converted to tensors; tensors are passed to `fn` unchanged.

    Args:
        fn: The per-sample function.
        name: Name of the metric; defaults to `fn.__name__`.
        dtype: Dtype of `result()`.
        **kwargs: Extra keyword arguments passed to `fn`.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ):
        if name is None:
            name = getattr(fn, "__name__", None) or type(fn).__name__
        super().__init__(name=name, dtype=dtype)
        self.fn = fn
        self.fn_kwargs = kwargs

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the per-sample values of one batch to the mean.

        Args:
            y_true: Targets.
            y_pred: Predictions.
            sample_weight: Optional weights of shape `(batch,)` or `(batch, 1)`.
        """
        if type(y_pred) is not Tensor:
            y_pred = to_tensor(y_pred)
        device = y_pred.device
        if type(y_true) is not Tensor or y_true.device != device:
            y_true = to_tensor(y_true, like=y_pred)
        values = self.fn(y_true, y_pred, **self.fn_kwargs)
        if type(values) is not Tensor or values.device != device:
            values = to_tensor(values, like=y_pred)
        super().update_state(values, sample_weight=sample_weight)
