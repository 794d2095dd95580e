"""Keras 3's intersection-over-union metrics, from a weighted confusion matrix on the device."""

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cadence.losses.shapes import EPSILON, to_tensor
from cadence.metrics.metric import Metric


class IoU(Metric):
    """The mean IoU `tp / (tp + fp + fn)` over `target_class_ids`, as in Keras 3.

    A confusion matrix of weighted counts is accumulated; classes whose denominator is 0
    are left out of the mean. Labels outside `[0, num_classes)` and `ignore_class`
    entries are not counted.

    Args:
        num_classes: The number of classes.
        target_class_ids: The class ids whose IoU is averaged.
        name: Name of the metric.
        dtype: Dtype of `result()`.
        ignore_class: Optional label to leave out.
        sparse_y_true: Whether targets are class ids (else one-hot or scores: arg-max).
        sparse_y_pred: Whether predictions are class ids (else scores: arg-max).
        axis: The class axis for the arg-max.

    Raises:
        ValueError: If a target class id is out of range (Keras's message).
    """

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int],
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ):
        super().__init__(name=name, dtype=dtype)
        if max(target_class_ids) >= num_classes:
            raise ValueError(
                f"Target class id {max(target_class_ids)} is out of range, which is "
                f"[0, {num_classes})."
            )
        self.num_classes = num_classes
        self.target_class_ids = list(target_class_ids)
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        self.add_state("total_confusion_matrix", shape=(num_classes, num_classes))

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Adds one batch to the confusion matrix (rows: true class, columns: predicted).

        Args:
            y_true: Class ids (or one-hot targets when `sparse_y_true=False`).
            y_pred: Class ids (or scores when `sparse_y_pred=False`).
            sample_weight: Optional weights broadcastable to the labels.
        """
        y_pred = to_tensor(y_pred)
        y_true = to_tensor(y_true, like=y_pred)
        if not self.sparse_y_true:
            y_true = torch.argmax(y_true, dim=self.axis)
        if not self.sparse_y_pred:
            y_pred = torch.argmax(y_pred, dim=self.axis)
        true = y_true.reshape(-1).long()
        predicted = y_pred.detach().reshape(-1).long()
        state = self.states(predicted.device)
        matrix = state["total_confusion_matrix"]
        if sample_weight is None:
            weights = torch.ones(true.shape, dtype=matrix.dtype, device=true.device)
        else:
            weights = to_tensor(sample_weight, like=y_pred).to(matrix.dtype).reshape(-1)
            weights = torch.broadcast_to(weights, true.shape)
        classes = self.num_classes
        valid = (true >= 0) & (true < classes) & (predicted >= 0) & (predicted < classes)
        if self.ignore_class is not None:
            valid &= true != self.ignore_class
        cells = torch.where(valid, true * classes + predicted, torch.zeros_like(true))
        weights = torch.where(valid, weights, torch.zeros_like(weights))
        matrix.view(-1).index_add_(0, cells, weights)

    def result(self) -> Tensor:
        """Returns the mean IoU over the target classes present (0 if none)."""
        matrix = self.states()["total_confusion_matrix"]
        true_positives = torch.diagonal(matrix)
        denominator = matrix.sum(dim=0) + matrix.sum(dim=1) - true_positives
        ids = torch.as_tensor(self.target_class_ids, device=matrix.device)
        true_positives, denominator = true_positives[ids], denominator[ids]
        valid = denominator > 1e-9
        iou = torch.where(valid, true_positives / (denominator + EPSILON),
                          torch.zeros_like(denominator))
        return (iou.sum() / (valid.sum() + EPSILON)).to(self.dtype)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", ""),
            "num_classes": self.num_classes,
            "target_class_ids": self.target_class_ids,
            "ignore_class": self.ignore_class,
            "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred,
            "axis": self.axis,
        }


class BinaryIoU(IoU):
    """IoU of binary predictions thresholded at `threshold` (`>=` is class 1), as in Keras 3.

    Args:
        target_class_ids: Which of 0 and 1 to average. Defaults to both.
        threshold: Predictions `>= threshold` are class 1. Defaults to 0.5.
        name: Name of the metric.
        dtype: Dtype of `result()`.
    """

    def __init__(
        self,
        target_class_ids: Sequence[int] = (0, 1),
        threshold: float = 0.5,
        name: str | None = None,
        dtype: Any = None,
    ):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        """Thresholds the predictions, then counts as `IoU` does."""
        y_pred = to_tensor(y_pred)
        super().update_state(y_true, (y_pred >= self.threshold).long(), sample_weight)

    def get_config(self) -> dict[str, Any]:
        """Returns the constructor arguments."""
        return {
            "target_class_ids": self.target_class_ids,
            "threshold": self.threshold,
            "name": self.name,
            "dtype": str(self.dtype).replace("torch.", ""),
        }


class MeanIoU(IoU):
    """The IoU averaged over all `num_classes` classes; arguments as `IoU` without targets."""

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_true: bool = True,
        sparse_y_pred: bool = True,
        axis: int = -1,
    ):
        super().__init__(
            num_classes, list(range(num_classes)), name=name, dtype=dtype,
            ignore_class=ignore_class, sparse_y_true=sparse_y_true,
            sparse_y_pred=sparse_y_pred, axis=axis,
        )


class OneHotIoU(IoU):
    """`IoU` for one-hot targets (and scores unless `sparse_y_pred=True`)."""

    def __init__(
        self,
        num_classes: int,
        target_class_ids: Sequence[int],
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ):
        super().__init__(
            num_classes, target_class_ids, name=name, dtype=dtype, ignore_class=ignore_class,
            sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis,
        )


class OneHotMeanIoU(MeanIoU):
    """`MeanIoU` for one-hot targets (and scores unless `sparse_y_pred=True`)."""

    def __init__(
        self,
        num_classes: int,
        name: str | None = None,
        dtype: Any = None,
        ignore_class: int | None = None,
        sparse_y_pred: bool = False,
        axis: int = -1,
    ):
        super().__init__(
            num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
            sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis,
        )
