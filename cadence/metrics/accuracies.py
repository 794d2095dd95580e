"""Accuracy metrics and their per-sample functions, named as in Keras."""

from typing import Any

import torch
from torch import Tensor

from cadence.losses.crossentropy import sparse_labels
from cadence.losses.shapes import align_ranks, per_sample, to_tensor
from cadence.metrics.reduction import MeanMetricWrapper


def _samples(matches: Tensor) -> Tensor:
    # 1 where a prediction is right, averaged over every non-batch axis.
    matches = matches.to(torch.get_default_dtype())
    return per_sample(matches) if matches.dim() else matches.reshape(1)


def accuracy(y_true: Any, y_pred: Any) -> Tensor:
    """Returns 1 where `y_pred` equals `y_true` exactly, averaged per sample.

    Args:
        y_true: Targets.
        y_pred: Predictions of the same shape (or differing by a trailing axis of 1).

    Returns:
        Per-sample accuracy of shape `(batch,)`.
    """
    y_pred = to_tensor(y_pred)
    y_true, y_pred = align_ranks(to_tensor(y_true, like=y_pred), y_pred)
    return _samples(y_true == y_pred)


def binary_accuracy(y_true: Any, y_pred: Any, threshold: float = 0.5) -> Tensor:
    """Returns how often `y_pred > threshold` matches the 0/1 targets, per sample.

    Args:
        y_true: 0/1 targets.
        y_pred: Probabilities (or scores) of the same shape; `(n,)` targets with
            `(n, 1)` predictions are accepted.
        threshold: Predictions above it count as 1.

    Returns:
        Per-sample accuracy of shape `(batch,)`.
    """
    y_pred = to_tensor(y_pred)
    y_true, y_pred = align_ranks(to_tensor(y_true, like=y_pred), y_pred)
    return _samples(y_true == (y_pred > threshold).to(y_true.dtype))


def sparse_categorical_accuracy(y_true: Any, y_pred: Any) -> Tensor:
    """Returns 1 where the integer label is the arg-max of the predictions.

    Args:
        y_true: Class indices of shape `(batch, ...)` or `(batch, ..., 1)`.
        y_pred: Class scores of shape `(batch, ..., classes)`.

    Returns:
        Per-sample accuracy of shape `(batch,)`.
    """
    y_pred = to_tensor(y_pred)
    labels = sparse_labels(y_true, y_pred)
    return _samples(labels == torch.argmax(y_pred, dim=-1))


def categorical_accuracy(y_true: Any, y_pred: Any) -> Tensor:
    """Returns 1 where the arg-max of the one-hot targets matches that of the predictions.

    Args:
        y_true: One-hot targets of shape `(batch, ..., classes)`.
        y_pred: Class scores of the same shape.

    Returns:
        Per-sample accuracy of shape `(batch,)`.
    """
    y_pred = to_tensor(y_pred)
    labels = torch.argmax(to_tensor(y_true, like=y_pred), dim=-1)
    return sparse_categorical_accuracy(labels, y_pred)


def sparse_top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> Tensor:
    """Returns 1 where the label's score is among the `k` highest (ties count as hits).

    Args:
        y_true: Class indices of shape `(batch,)` or `(batch, 1)`.
        y_pred: Class scores of shape `(batch, classes)`.
        k: How many of the top scores count.

    Returns:
        Per-sample accuracy of shape `(batch,)`.
    """
    y_pred = to_tensor(y_pred)
    labels = sparse_labels(y_true, y_pred)
    k = min(k, y_pred.shape[-1])
    kth_best = torch.topk(y_pred, k, dim=-1).values[..., -1]
    label_score = torch.gather(y_pred, -1, labels.unsqueeze(-1)).squeeze(-1)
    return _samples(label_score >= kth_best)


def top_k_categorical_accuracy(y_true: Any, y_pred: Any, k: int = 5) -> Tensor:
    """Returns 1 where the one-hot target's class is among the `k` highest scores.

    Args:
        y_true: One-hot targets of shape `(batch, classes)`.
        y_pred: Class scores of the same shape.
        k: How many of the top scores count.

    Returns:
        Per-sample accuracy of shape `(batch,)`.
    """
    y_pred = to_tensor(y_pred)
    labels = torch.argmax(to_tensor(y_true, like=y_pred), dim=-1)
    return sparse_top_k_categorical_accuracy(labels, y_pred, k=k)


class Accuracy(MeanMetricWrapper):
    """How often predictions equal targets exactly (Keras name `accuracy`)."""

    def __init__(self, name: str | None = "accuracy", dtype: Any = None):
        super().__init__(accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often thresholded predictions match 0/1 targets (Keras name `binary_accuracy`).

    Args:
        name: Name of the metric.
        dtype: Dtype of `result()`.
        threshold: Predictions above it count as 1.
    """

    def __init__(
        self, name: str | None = "binary_accuracy", dtype: Any = None, threshold: float = 0.5
    ):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """Arg-max accuracy for one-hot targets (Keras name `categorical_accuracy`)."""

    def __init__(self, name: str | None = "categorical_accuracy", dtype: Any = None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """Arg-max accuracy for integer labels (Keras name `sparse_categorical_accuracy`)."""

    def __init__(self, name: str | None = "sparse_categorical_accuracy", dtype: Any = None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """Top-k accuracy for one-hot targets (Keras name `top_k_categorical_accuracy`).

    Args:
        k: How many of the top scores count.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    def __init__(
        self, k: int = 5, name: str | None = "top_k_categorical_accuracy", dtype: Any = None
    ):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """Top-k accuracy for integer labels (Keras `sparse_top_k_categorical_accuracy`).

    Args:
        k: How many of the top scores count.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    def __init__(
        self,
        k: int = 5,
        name: str | None = "sparse_top_k_categorical_accuracy",
        dtype: Any = None,
    ):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
