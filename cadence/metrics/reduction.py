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
    values = values.to(dtype)
    if sample_weight is None:
        values = _reduce(values, 1, reduce_fn)
        return values.sum(), (values.shape[0] if values.dim() else 1)
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


#: Batches whose float32 sums a `Mean` adds up in float32 before folding them into its float64
#: total (see `Mean`).
FOLD_EVERY = 32


class Mean(Metric):
    """The weighted mean of the values it is given.

    `update_state(values, sample_weight=None)` adds `sum(w_i * v_i)` to a total and
    `sum(w_i)` to a count, one value per sample (extra axes are averaged first);
    `result()` is `total / count`, 0 before any weight was added.

    The state is a float64 `total` and `count` and a float32 `partial` total. The built-in
    fast paths (a loss weighted by the batch size, a fused metric kernel) add a float32 batch
    sum to `partial`, which is folded into `total` every `FOLD_EVERY` such batches: adding a
    float32 value to a float64 tensor costs a conversion on every batch, about as much as the
    addition itself. Counts are host integers, so they stay exact. The fold happens at fixed
    points only (it counts batches since the last reset, and that count is part of
    `state_dict()`), never because a value was read, saved or summed over processes, so a
    metric's value does not depend on when a progress bar looked at it, and a resumed run adds
    in the same order as one that never stopped. So at most `FOLD_EVERY` batch sums are added
    in float32 before they reach the float64 total; a subclass that writes its own `result()`
    reads `total + partial`.

    Args:
        name: Name of the metric; defaults to `"mean"`.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str | None = "mean", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)
        self.add_state("total")
        self.add_state("count")
        self.add_state("partial", dtype=torch.float32)
        # Counts known on the host (batch sizes) wait here, as a Python number, and are folded
        # into the `count` tensor whenever the state is read: one device op less per batch.
        self._host_count = 0
        self._partial_batches = 0  # Float32 sums added to `partial` since the last fold.

    def _flush_host_state(self) -> None:
        if self._host_count:
            self._states["count"].add_(self._host_count)
            self._host_count = 0

    def reset_state(self) -> None:
        """Zeroes the state in place (no allocation, no host sync)."""
        self._host_count = 0
        self._partial_batches = 0
        super().reset_state()

    def state_dict(self) -> dict[str, Tensor]:
        """Returns a copy of the state, with the number of batches in `partial`.

        Returns:
            ``total``, ``count``, ``partial`` and ``partial_batches`` (see the class).
        """
        state = super().state_dict()
        state["partial_batches"] = torch.tensor(self._partial_batches)
        return state

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Restores the state saved by `state_dict()`.

        A state without ``partial`` (saved by an earlier cadence) has nothing waiting to be
        folded.

        Args:
            state_dict: A dict from state name to tensor.

        Raises:
            ValueError: If the keys are not this metric's state names.
        """
        state_dict = dict(state_dict)
        batches = state_dict.pop("partial_batches", 0)
        if sorted(state_dict) == ["count", "total"]:
            state_dict["partial"] = torch.zeros(())
        super().load_state_dict(state_dict)
        self._partial_batches = int(batches)

    def _add(self, total: Tensor, count: int, alpha: int = 1) -> None:
        """Add ``alpha * total`` to the total and a host-known ``count`` to the count.

        ``total`` must be on the state's device (the callers check).
        """
        states = self._states
        if total.dtype is torch.float32:
            states["partial"].add_(total, alpha=alpha)
            self._partial_batches += 1
            if self._partial_batches >= FOLD_EVERY:
                states["total"].add_(states["partial"])
                states["partial"].zero_()
                self._partial_batches = 0
        else:
            states["total"].add_(total, alpha=alpha)
        self._host_count += count

    def update_state(self, values: Any, sample_weight: Any = None) -> None:
        """Adds a batch of values (or one 0-d value) to the mean.

        Args:
            values: A tensor of shape `(batch, ...)`, a 0-d tensor or a number.
            sample_weight: Optional weights, a Python number or an array of shape
                `(batch,)` / `(batch, 1)`.
        """
        if type(values) is Tensor and not self._states:
            self.states(values.device)  # The same path from the very first batch on.
        if type(values) is Tensor and values.device == self._device:
            # Fast paths (no new tensors but the sum): the loss tracker's 0-d value weighted
            # by the batch size, and a metric's per-sample values without weights.
            values = values.detach()
            if values.dim() == 0 and type(sample_weight) is int:
                self._add(values, sample_weight, alpha=sample_weight)
                return
            if values.dim() == 1 and sample_weight is None:
                self._add(values.sum(dtype=self._states["total"].dtype), values.shape[0])
                return
        values = to_tensor(values).detach() if isinstance(values, Tensor) else torch.as_tensor(
            values, device=self.device
        )
        state = self.states(values.device)
        total, count = samplewise_totals(
            values, sample_weight, torch.mean, state["total"].dtype
        )
        state["total"].add_(total)
        state["count"].add_(count)

    def result(self) -> Tensor:
        """Returns `total / count`, or 0 when nothing has been weighted yet.

        Returns:
            A 0-d tensor.
        """
        state = self.states()
        total, count = state["total"] + state["partial"], state["count"]  # Not folded here.
        safe = torch.where(count == 0, torch.ones_like(count), count)
        return torch.where(count == 0, torch.zeros_like(total), total / safe).to(self.dtype)


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
        if sample_weight is None:
            fused = self.fused_sum(y_true, y_pred)
            if fused is not None:
                total, count = fused
                if not self._states:
                    self.states(total.device)  # The same path from the very first batch on.
                if total.device == self._device:
                    self._add(total, count)
                    return
        y_pred = to_tensor(y_pred)
        y_true = to_tensor(y_true, like=y_pred)
        values = to_tensor(self.fn(y_true, y_pred, **self.fn_kwargs), like=y_pred)
        super().update_state(values, sample_weight=sample_weight)

    def fused_sum(self, y_true: Any, y_pred: Any) -> tuple[Tensor, int] | None:
        """Return ``(sum of the per-sample values, number of samples)`` in a fused kernel, or None.

        Built-in metrics override this for a dense, unweighted batch; ``None`` (the default)
        takes the per-sample path. The sum must equal the per-sample values' sum up to rounding.

        Args:
            y_true: Targets.
            y_pred: Predictions.
        """
        return None

    def fused_sum_kernel(self, y_true: Any, y_pred: Any) -> Callable[[Tensor, Tensor], Tensor] | None:
        """Return ``fused_sum``'s sum decided once for batches like these, or ``None``.

        A planned step (:mod:`cadence.trainer.step_plan`) calls the kernel on every unweighted
        batch with the same signature as ``(y_true, y_pred)`` (types, dtypes, devices, sizes
        after the batch axis, equal batch sizes) and counts the batch's samples itself. The
        default calls ``fused_sum``, checks included; built-in metrics return a kernel that
        checks nothing.

        Args:
            y_true: A batch of targets.
            y_pred: A batch of predictions.

        Returns:
            ``kernel(y_true, y_pred) -> Tensor`` (the per-sample values' sum), or ``None``.
        """
        if self.fused_sum(y_true, y_pred) is None:
            return None
        fused_sum = self.fused_sum

        def kernel(target: Tensor, prediction: Tensor) -> Tensor:
            return fused_sum(target, prediction)[0]

        return kernel
