"""Keras 3's hinge, probabilistic and similarity metrics: weighted means of per-sample values."""

from typing import Any

from torch import Tensor

from cadence.losses import overlap, regression
from cadence.losses.shapes import EPSILON, align_ranks, float_predictions, to_tensor
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


def _aligned(y_true: Any, y_pred: Any) -> tuple[Tensor, Tensor]:
    y_pred = float_predictions(y_pred)
    return align_ranks(to_tensor(y_true, like=y_pred).to(y_pred.dtype), y_pred)


def pearson_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> Tensor:
    """Returns Pearson's correlation along `axis` for each sample, as Keras computes it.

    Args:
        y_true: Targets of shape `(batch, features)`.
        y_pred: Predictions of the same shape.
        axis: The axis the correlation is taken along.

    Returns:
        Per-sample correlations (population standard deviations).
    """
    y_true, y_pred = _aligned(y_true, y_pred)
    true_centered = y_true - y_true.mean(dim=axis, keepdim=True)
    pred_centered = y_pred - y_pred.mean(dim=axis, keepdim=True)
    true_centered = true_centered / true_centered.std(dim=axis, keepdim=True, correction=0)
    pred_centered = pred_centered / pred_centered.std(dim=axis, keepdim=True, correction=0)
    return (true_centered * pred_centered).mean(dim=axis)


def concordance_correlation(y_true: Any, y_pred: Any, axis: int = -1) -> Tensor:
    """Returns Lin's concordance correlation along `axis` for each sample, as Keras computes it.

    Keras 3 centres the targets on the predictions' mean in the covariance term
    (`(y_true - mean(y_pred)) * (y_pred - mean(y_pred))`); cadence does the same so the
    values agree.

    Args:
        y_true: Targets of shape `(batch, features)`.
        y_pred: Predictions of the same shape.
        axis: The axis the correlation is taken along.

    Returns:
        Per-sample concordance correlations.
    """
    y_true, y_pred = _aligned(y_true, y_pred)
    true_mean = y_true.mean(dim=axis, keepdim=True)
    pred_mean = y_pred.mean(dim=axis, keepdim=True)
    true_var = (y_true - true_mean).var(dim=axis, keepdim=True, correction=0)
    pred_var = (y_pred - pred_mean).var(dim=axis, keepdim=True, correction=0)
    covariance = (y_true - pred_mean) * (y_pred - pred_mean)
    norm = true_var + pred_var + (true_mean - pred_mean) ** 2
    return (2 * covariance / (norm + EPSILON)).mean(dim=axis)


class PearsonCorrelation(MeanMetricWrapper):
    """The mean over samples of Pearson's correlation along `axis`.

    Args:
        name: Name of the metric. Defaults to `"pearson_correlation"`.
        dtype: Dtype of `result()`.
        axis: The axis the correlation is taken along. Defaults to -1.
    """

    def __init__(self, name: str = "pearson_correlation", dtype: Any = None, axis: int = -1):
        super().__init__(pearson_correlation, name=name, dtype=dtype, axis=axis)
        self.axis = axis


class ConcordanceCorrelation(MeanMetricWrapper):
    """The mean over samples of the concordance correlation along `axis` (see the function).

    Args:
        name: Name of the metric. Defaults to `"concordance_correlation"`.
        dtype: Dtype of `result()`.
        axis: The axis the correlation is taken along. Defaults to -1.
    """

    def __init__(self, name: str = "concordance_correlation", dtype: Any = None, axis: int = -1):
        super().__init__(concordance_correlation, name=name, dtype=dtype, axis=axis)
        self.axis = axis


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
