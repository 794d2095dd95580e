"""Looking up metrics by Keras name, and Keras 3's rule for `"accuracy"`."""

import inspect
from collections.abc import Callable
from typing import Any

from cadence.losses.loss import Loss
from cadence.losses.shapes import to_tensor
from cadence.metrics import (
    accuracies,
    auc,
    confusion,
    fscore,
    iou,
    mean_wrappers,
    r2,
    reduction,
    regression,
    threshold_metrics,
)
from cadence.metrics.metric import Metric
from cadence.metrics.reduction import MeanMetricWrapper
from cadence.metrics.torchmetrics_adapter import TorchMetricsAdapter, is_torchmetric

METRICS: dict[str, Callable[[], Metric]] = {
    "accuracy": accuracies.Accuracy,
    "acc": accuracies.Accuracy,
    "binary_accuracy": accuracies.BinaryAccuracy,
    "categorical_accuracy": accuracies.CategoricalAccuracy,
    "sparse_categorical_accuracy": accuracies.SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": accuracies.TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": accuracies.SparseTopKCategoricalAccuracy,
    "mean_absolute_error": regression.MeanAbsoluteError,
    "mae": regression.MeanAbsoluteError,
    "mean_squared_error": regression.MeanSquaredError,
    "mse": regression.MeanSquaredError,
    "mean_absolute_percentage_error": regression.MeanAbsolutePercentageError,
    "mape": regression.MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": regression.MeanSquaredLogarithmicError,
    "msle": regression.MeanSquaredLogarithmicError,
    "root_mean_squared_error": regression.RootMeanSquaredError,
    "binary_crossentropy": regression.BinaryCrossentropy,
    "categorical_crossentropy": regression.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": regression.SparseCategoricalCrossentropy,
    "precision": confusion.Precision,
    "recall": confusion.Recall,
    "bce": regression.BinaryCrossentropy,
    "BCE": regression.BinaryCrossentropy,
    "MAE": regression.MeanAbsoluteError,
    "MSE": regression.MeanSquaredError,
    "MAPE": regression.MeanAbsolutePercentageError,
    "MSLE": regression.MeanSquaredLogarithmicError,
    "mean": reduction.Mean,
    "Mean": reduction.Mean,
    "sum": reduction.Sum,
    "Sum": reduction.Sum,
    "hinge": mean_wrappers.Hinge,
    "squared_hinge": mean_wrappers.SquaredHinge,
    "categorical_hinge": mean_wrappers.CategoricalHinge,
    "kl_divergence": mean_wrappers.KLDivergence,
    "poisson": mean_wrappers.Poisson,
    "cosine_similarity": mean_wrappers.CosineSimilarity,
    "log_cosh_error": mean_wrappers.LogCoshError,
    "pearson_correlation": mean_wrappers.PearsonCorrelation,
    "concordance_correlation": mean_wrappers.ConcordanceCorrelation,
    "r2_score": r2.R2Score,
    "auc": auc.AUC,
    "true_positives": threshold_metrics.TruePositives,
    "false_positives": threshold_metrics.FalsePositives,
    "true_negatives": threshold_metrics.TrueNegatives,
    "false_negatives": threshold_metrics.FalseNegatives,
    "f1_score": fscore.F1Score,
    "f_beta_score": fscore.FBetaScore,
    # Keras registers these too; like Keras, `get` raises for their required arguments.
    "precision_at_recall": threshold_metrics.PrecisionAtRecall,
    "recall_at_precision": threshold_metrics.RecallAtPrecision,
    "sensitivity_at_specificity": threshold_metrics.SensitivityAtSpecificity,
    "specificity_at_sensitivity": threshold_metrics.SpecificityAtSensitivity,
    "io_u": iou.IoU,
    "binary_io_u": iou.BinaryIoU,
    "mean_io_u": iou.MeanIoU,
    "one_hot_io_u": iou.OneHotIoU,
    "one_hot_mean_io_u": iou.OneHotMeanIoU,
}
"""Metric names and aliases accepted by `get`, as in Keras."""

_CLASSES: dict[str, Callable[[], Metric]] = {
    cls.__name__: cls
    for module in (
        accuracies,
        confusion,
        regression,
        mean_wrappers,
        r2,
        auc,
        threshold_metrics,
        fscore,
        iou,
    )
    for cls in vars(module).values()
    if inspect.isclass(cls)
    and issubclass(cls, Metric)
    and cls.__module__ == module.__name__
    and not cls.__name__.startswith("_")
}

_INFERRED = ("accuracy", "acc", "crossentropy", "ce")
"""Names whose metric depends on the loss or the data (see `resolve`)."""


def valid_names() -> list[str]:
    """Returns every string `get` accepts, sorted.

    Returns:
        Keras metric names, aliases and class names.
    """
    return sorted({*METRICS, *_CLASSES})


def check(identifier: Any) -> None:
    """Raises now, at `compile`, for an identifier `resolve` will not accept.

    Names whose metric depends on the loss or the first batch (`"accuracy"`, `"acc"`,
    `"crossentropy"`, `"ce"`) are always accepted; everything else must pass `get`.

    Args:
        identifier: What the user passed to `compile(metrics=...)`.

    Raises:
        ValueError: If a string is not a known metric name.
        TypeError: If the identifier is of an unsupported type.
    """
    if isinstance(identifier, str) and identifier.lower() in _INFERRED:
        return
    if isinstance(identifier, Metric) or is_torchmetric(identifier):
        return
    get(identifier)


def get(identifier: Any) -> Metric | None:
    """Returns the `Metric` an identifier stands for.

    Args:
        identifier: One of
            - `None` (returned as is);
            - a Keras name or alias such as `"mae"` or `"sparse_categorical_accuracy"`,
              or a class name such as `"RootMeanSquaredError"`; the metric gets its
              default Keras name (use `resolve` for Keras's log-key rule);
            - a `Metric` instance (returned as is) or subclass (instantiated);
            - a `torchmetrics.Metric` instance, see `TorchMetricsAdapter`;
            - a function `fn(y_true, y_pred)` returning per-sample values, wrapped in a
              `MeanMetricWrapper` named by its `__name__`.

    Returns:
        A `Metric`, or `None`.

    Raises:
        ValueError: If a string is not a known metric name.
        TypeError: If the identifier is of an unsupported type.
    """
    if identifier is None or isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str):
        factory = METRICS.get(identifier) or _CLASSES.get(identifier)
        if factory is None:
            raise ValueError(
                f"Unknown metric: {identifier!r}. Expected one of: "
                f"{', '.join(repr(name) for name in valid_names())}"
            )
        return factory()
    if inspect.isclass(identifier) and issubclass(identifier, Metric):
        return identifier()
    if is_torchmetric(identifier):
        return TorchMetricsAdapter(identifier)
    if callable(identifier) and not inspect.isclass(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(
        f"Could not interpret metric identifier: {identifier!r} (of type "
        f"{type(identifier).__name__}). Expected a metric name, a `cadence.metrics.Metric`, "
        "a torchmetrics metric or a function `fn(y_true, y_pred)`."
    )


def _loss_name(loss: Any) -> str | None:
    if loss is None:
        return None
    if isinstance(loss, str):
        return loss
    if isinstance(loss, Loss):
        fn = getattr(loss, "fn", None)
        return getattr(fn, "__name__", None) or loss.name
    return getattr(loss, "__name__", None)


_BY_LOSS = {
    "binary_crossentropy": ("binary_accuracy", "binary_crossentropy"),
    "categorical_crossentropy": ("categorical_accuracy", "categorical_crossentropy"),
    "sparse_categorical_crossentropy": (
        "sparse_categorical_accuracy",
        "sparse_categorical_crossentropy",
    ),
}


def _kind_from_shapes(y_true: Any, y_pred: Any, identifier: str) -> str:
    if y_true is None or y_pred is None:
        raise ValueError(
            f"Cannot tell which metric {identifier!r} means: the loss is not a "
            "crossentropy and no batch was given. Expected `loss=` a crossentropy, or "
            "`y_true=` and `y_pred=` from the first batch."
        )
    true_shape = tuple(y_true.shape if hasattr(y_true, "shape") else to_tensor(y_true).shape)
    pred_shape = tuple(y_pred.shape if hasattr(y_pred, "shape") else to_tensor(y_pred).shape)
    if len(pred_shape) < 2 or pred_shape[-1] == 1:
        return "binary_crossentropy"
    if len(true_shape) == len(pred_shape) and true_shape[-1] == pred_shape[-1]:
        return "categorical_crossentropy"
    return "sparse_categorical_crossentropy"


def resolve(
    identifier: Any,
    loss: Any = None,
    y_true: Any = None,
    y_pred: Any = None,
) -> Metric | None:
    """Returns the metric an identifier given to `compile(metrics=...)` stands for.

    `"accuracy"`/`"acc"` and `"crossentropy"`/`"ce"` follow the loss: a binary,
    categorical or sparse categorical crossentropy loss (by name, `Loss` instance or
    function) selects the matching accuracy or crossentropy metric. For any other
    loss the first batch decides: predictions with a last axis of 1 (or rank 1) mean
    binary; targets with the predictions' rank and last axis size mean categorical;
    anything else means sparse categorical. The crossentropy metric takes the loss's
    `from_logits`. Other identifiers go through `get`.

    When the identifier is a string, the metric's `name` (its log key) is that exact
    string, as in Keras 3: `"mae"` logs `mae`, `"accuracy"` logs `accuracy`.

    Args:
        identifier: What the user passed (see `get`).
        loss: The compiled loss, a name, a `Loss` or a function.
        y_true: Targets of the first batch (only their shape is read).
        y_pred: Predictions of the first batch (only their shape is read).

    Returns:
        A `Metric`, or `None`.

    Raises:
        ValueError: If the identifier is unknown, or `"accuracy"` cannot be resolved
            because neither a crossentropy loss nor a batch was given.
    """
    if not isinstance(identifier, str):
        return get(identifier)
    if identifier.lower() in _INFERRED:
        kind = _loss_name(loss)
        if kind not in _BY_LOSS:
            kind = _kind_from_shapes(y_true, y_pred, identifier)
        accuracy_name, crossentropy_name = _BY_LOSS[kind]
        if identifier.lower() in ("accuracy", "acc"):
            metric = get(accuracy_name)
        else:
            from_logits = bool(getattr(loss, "fn_kwargs", {}).get("from_logits", False))
            metric = METRICS[crossentropy_name](from_logits=from_logits)
    else:
        metric = get(identifier)
    metric.name = identifier
    return metric
