"""Regression and crossentropy metrics: the loss functions, averaged over an epoch."""

from typing import Any

import torch
from torch import Tensor

from cadence.losses import crossentropy, regression
from cadence.losses.shapes import prepare_pair
from cadence.metrics.reduction import Mean, MeanMetricWrapper


class MeanSquaredError(MeanMetricWrapper):
    """Mean of squared errors (Keras name `mean_squared_error`)."""

    def __init__(self, name: str | None = "mean_squared_error", dtype: Any = None):
        super().__init__(regression.mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    """Mean of absolute errors (Keras name `mean_absolute_error`)."""

    def __init__(self, name: str | None = "mean_absolute_error", dtype: Any = None):
        super().__init__(regression.mean_absolute_error, name=name, dtype=dtype)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    """Mean absolute percentage error (Keras name `mean_absolute_percentage_error`)."""

    def __init__(self, name: str | None = "mean_absolute_percentage_error", dtype: Any = None):
        super().__init__(regression.mean_absolute_percentage_error, name=name, dtype=dtype)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    """Mean squared logarithmic error (Keras name `mean_squared_logarithmic_error`)."""

    def __init__(self, name: str | None = "mean_squared_logarithmic_error", dtype: Any = None):
        super().__init__(regression.mean_squared_logarithmic_error, name=name, dtype=dtype)


class RootMeanSquaredError(Mean):
    """Square root of the weighted mean of squared errors (`root_mean_squared_error`).

    Squared errors are averaged per sample, weighted by `sample_weight`, averaged over
    all samples seen, and the square root is taken in `result()`.

    Args:
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str | None = "root_mean_squared_error", dtype: Any = None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds the squared errors of one batch.

        Args:
            y_true: Targets.
            y_pred: Predictions.
            sample_weight: Optional weights of shape `(batch,)` or `(batch, 1)`.
        """
        y_true, y_pred = prepare_pair(y_true, y_pred)
        super().update_state(torch.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self) -> Tensor:
        """Returns the square root of the weighted mean squared error.

        Returns:
            A 0-d tensor.
        """
        return torch.sqrt(super().result())


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary crossentropy (Keras name `binary_crossentropy`).

    Args:
        name: Name of the metric.
        dtype: Dtype of `result()`.
        from_logits: Whether predictions are logits.
        label_smoothing: Targets are moved towards 0.5 by this fraction.
    """

    def __init__(
        self,
        name: str | None = "binary_crossentropy",
        dtype: Any = None,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
    ):
        super().__init__(
            crossentropy.binary_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
        )


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical crossentropy (Keras name `categorical_crossentropy`).

    Args:
        name: Name of the metric.
        dtype: Dtype of `result()`.
        from_logits: Whether predictions are logits.
        label_smoothing: Targets are mixed with the uniform distribution by this
            fraction.
        axis: The class axis.
    """

    def __init__(
        self,
        name: str | None = "categorical_crossentropy",
        dtype: Any = None,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
    ):
        super().__init__(
            crossentropy.categorical_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean sparse categorical crossentropy (`sparse_categorical_crossentropy`).

    Args:
        name: Name of the metric.
        dtype: Dtype of `result()`.
        from_logits: Whether predictions are logits.
        axis: The class axis.
    """

    def __init__(
        self,
        name: str | None = "sparse_categorical_crossentropy",
        dtype: Any = None,
        from_logits: bool = False,
        axis: int = -1,
    ):
        super().__init__(
            crossentropy.sparse_categorical_crossentropy,
            name=name,
            dtype=dtype,
            from_logits=from_logits,
            axis=axis,
        )
