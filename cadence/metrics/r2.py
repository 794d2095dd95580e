"""Keras 3's `R2Score`: the coefficient of determination, from per-output sums on the device."""

from typing import Any

import torch
from torch import Tensor

from cadence.losses.shapes import align_ranks, to_tensor
from cadence.metrics.metric import Metric

_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")
_SUMS = ("squared_sum", "sum", "residual", "count")


class R2Score(Metric):
    """The R² score `1 - SS_res / SS_tot` of `(batch, outputs)` regressions, as in Keras 3.

    With `num_regressors = p > 0`, the adjusted score `1 - (1 - R²)(n - 1)/(n - p - 1)`
    is returned, `n` counting the samples with a nonzero weight; when `p >= n - 1` the
    plain score is returned (Keras also warns, which would need a device read).

    Args:
        class_aggregation: `"uniform_average"` (default, the mean over outputs),
            `"variance_weighted_average"` (weighted by each output's variance) or
            `None` (one score per output).
        num_regressors: The number of independent regressors, for the adjusted score.
        name: Name of the metric. Defaults to `"r2_score"`.
        dtype: Dtype of `result()`.

    Raises:
        ValueError: For an invalid argument (Keras's messages).
    """

    def __init__(
        self,
        class_aggregation: str | None = "uniform_average",
        num_regressors: int = 0,
        name: str = "r2_score",
        dtype: Any = None,
    ):
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in _AGGREGATIONS:
            raise ValueError(
                "Invalid value for argument `class_aggregation`. Expected one of "
                f"{_AGGREGATIONS}. Received: class_aggregation={class_aggregation}"
            )
        if num_regressors < 0:
            raise ValueError(
                "Invalid value for argument `num_regressors`. Expected a value >= 0. "
                f"Received: num_regressors={num_regressors}"
            )
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        self.add_state("num_samples")
        self._built = False

    def _build(self, outputs: int) -> None:
        for name in _SUMS:
            self.add_state(name, shape=(outputs,))
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds one batch's weighted sums.

        Args:
            y_true: Targets of shape `(batch, outputs)` (or `(batch,)`).
            y_pred: Predictions of the same shape.
            sample_weight: Optional weights of shape `(batch,)` or `(batch, outputs)`.

        Raises:
            ValueError: If the inputs are not 2-d (Keras's message).
        """
        y_pred = to_tensor(y_pred)
        y_true, y_pred = align_ranks(to_tensor(y_true, like=y_pred), y_pred)
        if y_pred.dim() != 2 or y_true.dim() != 2:
            raise ValueError(
                "R2Score expects 2D inputs with shape (batch_size, output_dim). Received input "
                f"shapes: y_pred.shape={tuple(y_pred.shape)} and "
                f"y_true.shape={tuple(y_true.shape)}."
            )
        if not self._built:
            self._build(y_pred.shape[-1])
        state = self.states(y_pred.device)
        dtype = state["sum"].dtype
        y_true, y_pred = y_true.to(dtype), y_pred.detach().to(dtype)
        if sample_weight is None:
            weights = torch.ones_like(y_true)
        else:
            weights = to_tensor(sample_weight, like=y_true).to(dtype)
            if weights.dim() == 1:
                weights = weights.unsqueeze(1)
            weights = torch.broadcast_to(weights, y_true.shape)
        weighted = y_true * weights
        state["sum"].add_(weighted.sum(dim=0))
        state["squared_sum"].add_((y_true * weighted).sum(dim=0))
        state["residual"].add_(((y_true - y_pred) ** 2 * weights).sum(dim=0))
        state["count"].add_(weights.sum(dim=0))
        state["num_samples"].add_((weights != 0).any(dim=-1).sum(dtype=dtype))

    def result(self) -> Tensor:
        """Returns the score (one per output with `class_aggregation=None`)."""
        if not self._built:
            return torch.zeros((), dtype=self.dtype)
        state = self.states()
        mean = state["sum"] / state["count"]
        total = state["squared_sum"] - state["sum"] * mean
        raw = 1 - state["residual"] / total
        raw = torch.where(torch.isinf(raw), torch.zeros_like(raw), raw)
        if self.class_aggregation == "uniform_average":
            score = raw.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = (total * raw).sum() / total.sum()
        else:
            score = raw
        if self.num_regressors:
            n, p = state["num_samples"], self.num_regressors
            adjusted = 1 - (1 - score) * (n - 1) / (n - p - 1)
            score = torch.where(p < n - 1, adjusted, score)
        return score.to(self.dtype)

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Restores the sums, building the metric from their shape if needed."""
        if not self._built and "sum" in state_dict:
            self._build(int(torch.as_tensor(state_dict["sum"]).shape[0]))
        super().load_state_dict(state_dict)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", ""),
            "class_aggregation": self.class_aggregation,
            "num_regressors": self.num_regressors,
        }
