"""Keras 3's hinge, probabilistic and similarity metrics: weighted means of per-sample values."""

from typing import Any

from torch import Tensor

from cadence.losses import overlap, regression
from cadence.metrics.reduction import MeanMetricWrapper


def cosine_similarity(y_true: Any, y_pred: Any, axis: int = -1) -> Tensor:
    """Returns the cosine similarity of each sample (the negative of the loss of that name).

    Args:
        y_true: Targets of shape `(batch, ..., features)`.
        y_pred: Predictions of the same shape.
        axis: The axis along which the similarity is computed.

    Returns:
        Per-sample similarities of shape `(batch,)`, in `[-1, 1]`.
    """
    return -regression.cosine_similarity(y_true, y_pred, axis=axis)


class Hinge(MeanMetricWrapper):
    """The mean hinge loss, `max(1 - y_true * y_pred, 0)` (0/1 labels become -1/1).

    Args:
        name: Name of the metric. Defaults to `"hinge"`.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str = "hinge", dtype: Any = None):
        super().__init__(regression.hinge, name=name, dtype=dtype)


class SquaredHinge(MeanMetricWrapper):
    """The mean squared hinge loss, `max(1 - y_true * y_pred, 0) ** 2`.

    Args:
        name: Name of the metric. Defaults to `"squared_hinge"`.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str = "squared_hinge", dtype: Any = None):
        super().__init__(regression.squared_hinge, name=name, dtype=dtype)


class CategoricalHinge(MeanMetricWrapper):
    """The mean categorical hinge loss, `max(neg - pos + 1, 0)`.

    Args:
        name: Name of the metric. Defaults to `"categorical_hinge"`.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str = "categorical_hinge", dtype: Any = None):
        super().__init__(overlap.categorical_hinge, name=name, dtype=dtype)


class KLDivergence(MeanMetricWrapper):
    """The mean Kullback-Leibler divergence, `sum(y_true * log(y_true / y_pred))`.

    Args:
        name: Name of the metric. Defaults to `"kl_divergence"`.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str = "kl_divergence", dtype: Any = None):
        super().__init__(regression.kl_divergence, name=name, dtype=dtype)


class Poisson(MeanMetricWrapper):
    """The mean Poisson loss, `y_pred - y_true * log(y_pred + eps)`.

    Args:
        name: Name of the metric. Defaults to `"poisson"`.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str = "poisson", dtype: Any = None):
        super().__init__(regression.poisson, name=name, dtype=dtype)


class CosineSimilarity(MeanMetricWrapper):
    """The mean cosine similarity between targets and predictions (higher is better).

    Args:
        name: Name of the metric. Defaults to `"cosine_similarity"`.
        dtype: Dtype of `result()`.
        axis: The axis along which the similarity is computed. Defaults to -1.
    """

    def __init__(self, name: str = "cosine_similarity", dtype: Any = None, axis: int = -1):
        super().__init__(cosine_similarity, name=name, dtype=dtype, axis=axis)


class LogCoshError(MeanMetricWrapper):
    """The mean of `log(cosh(y_pred - y_true))` (Keras's default name is `"logcosh"`).

    Args:
        name: Name of the metric. Defaults to `"logcosh"`.
        dtype: Dtype of `result()`.
    """

    def __init__(self, name: str = "logcosh", dtype: Any = None):
        super().__init__(regression.log_cosh, name=name, dtype=dtype)
