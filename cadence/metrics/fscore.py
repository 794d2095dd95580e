"""Keras 3's `FBetaScore` and `F1Score`, from per-class weighted counts on the device."""

from typing import Any

import torch
from torch import Tensor

from cadence.losses.shapes import EPSILON, to_tensor
from cadence.metrics.metric import Metric

_COUNTS = ("true_positives", "false_positives", "false_negatives", "intermediate_weights")


class FBetaScore(Metric):
    """The F-beta score of multi-class or multi-label predictions, as in Keras 3.

    Inputs are `(batch, classes)`. A prediction is positive where it is above
    `threshold`, or, with `threshold=None`, where it is the row's maximum (and not 0).
    Per class, `(1 + beta^2) * p * r / (beta^2 * p + r)`.

    Args:
        average: `None` (one score per class), `"micro"` (counts pooled over classes),
            `"macro"` (mean of the classes' scores) or `"weighted"` (weighted by each
            class's number of true instances).
        beta: The weight of recall, a float > 0. Defaults to 1.0.
        threshold: A float in (0, 1], or `None` for the row's maximum.
        name: Name of the metric. Defaults to `"fbeta_score"`.
        dtype: Dtype of `result()`.

    Raises:
        ValueError: For an invalid argument (Keras's messages).
    """

    def __init__(
        self,
        average: str | None = None,
        beta: float = 1.0,
        threshold: float | None = None,
        name: str = "fbeta_score",
        dtype: Any = None,
    ):
        super().__init__(name=name, dtype=dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(
                "Invalid `average` argument value. Expected one of: "
                "{None, 'micro', 'macro', 'weighted'}. "
                f"Received: average={average}"
            )
        if not isinstance(beta, float):
            raise ValueError(
                "Invalid `beta` argument value. It should be a Python float. "
                f"Received: beta={beta} of type '{type(beta)}'"
            )
        if beta <= 0.0:
            raise ValueError(
                f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}"
            )
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError(
                    "Invalid `threshold` argument value. It should be a Python float. "
                    f"Received: threshold={threshold} of type '{type(threshold)}'"
                )
            if threshold > 1.0 or threshold <= 0.0:
                raise ValueError(
                    "Invalid `threshold` argument value. It should verify 0 < threshold <= 1. "
                    f"Received: threshold={threshold}"
                )
        self.average = average
        self.beta = beta
        self.threshold = threshold
        self._built = False

    def _build(self, true_shape: tuple[int, ...], pred_shape: tuple[int, ...]) -> None:
        if len(pred_shape) != 2 or len(true_shape) != 2:
            raise ValueError(
                "FBetaScore expects 2D inputs with shape (batch_size, output_dim). Received "
                f"input shapes: y_pred.shape={pred_shape} and y_true.shape={true_shape}."
            )
        shape = () if self.average == "micro" else (pred_shape[-1],)
        for count in _COUNTS:
            self.add_state(count, shape=shape)
        self._built = True

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the weighted per-class counts of one batch.

        Args:
            y_true: 0/1 targets of shape `(batch, classes)`.
            y_pred: Scores of the same shape.
            sample_weight: Optional weights of shape `(batch,)` or `(batch, classes)`.
        """
        y_pred = to_tensor(y_pred)
        y_true = to_tensor(y_true, like=y_pred)
        if not self._built:
            self._build(tuple(y_true.shape), tuple(y_pred.shape))
        state = self.states(y_pred.device)
        dtype = state["true_positives"].dtype
        y_pred = y_pred.detach().to(dtype)
        y_true = y_true.to(dtype)
        if self.threshold is None:
            top = y_pred.amax(dim=-1, keepdim=True)
            predicted = (y_pred >= top) & (y_pred.abs() > 1e-9)
        else:
            predicted = y_pred > self.threshold
        predicted = predicted.to(dtype)
        weights = None
        if sample_weight is not None:
            weights = to_tensor(sample_weight, like=y_pred).to(dtype)
            while weights.dim() < y_true.dim():
                weights = weights.unsqueeze(-1)
        axis = None if self.average == "micro" else 0

        def weighted_sum(values: Tensor) -> Tensor:
            if weights is not None:
                values = values * weights
            return values.sum() if axis is None else values.sum(dim=axis)

        state["true_positives"].add_(weighted_sum(predicted * y_true))
        state["false_positives"].add_(weighted_sum(predicted * (1 - y_true)))
        state["false_negatives"].add_(weighted_sum((1 - predicted) * y_true))
        state["intermediate_weights"].add_(weighted_sum(y_true))

    def result(self) -> Tensor:
        """Returns the score(s): one per class with `average=None`, else one value."""
        if not self._built:
            return torch.zeros((), dtype=self.dtype)
        state = self.states()
        tp = state["true_positives"]
        precision = tp / (tp + state["false_positives"] + EPSILON)
        recall = tp / (tp + state["false_negatives"] + EPSILON)
        beta2 = self.beta**2
        score = precision * recall / (beta2 * precision + recall + EPSILON) * (1 + beta2)
        if self.average == "weighted":
            supports = state["intermediate_weights"]
            score = (score * supports / (supports.sum() + EPSILON)).sum()
        elif self.average is not None:
            score = score.mean()
        return score.to(self.dtype)

    def load_state_dict(self, state_dict: dict[str, Tensor]) -> None:
        """Restores the counts, building the metric from their shape if needed."""
        if not self._built and "true_positives" in state_dict:
            classes = torch.as_tensor(state_dict["true_positives"]).shape
            self._build((0, classes[0] if classes else 1), (0, classes[0] if classes else 1))
        super().load_state_dict(state_dict)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", ""),
            "average": self.average,
            "beta": self.beta,
            "threshold": self.threshold,
        }


class F1Score(FBetaScore):
    """The F1 score (`FBetaScore` with `beta=1.0`), as in Keras 3.

    Args:
        average: `None`, `"micro"`, `"macro"` or `"weighted"` (see `FBetaScore`).
        threshold: A float in (0, 1], or `None` for the row's maximum.
        name: Name of the metric. Defaults to `"f1_score"`.
        dtype: Dtype of `result()`.
    """

    def __init__(
        self,
        average: str | None = None,
        threshold: float | None = None,
        name: str = "f1_score",
        dtype: Any = None,
    ):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        config = super().get_config()
        del config["beta"]
        return config
