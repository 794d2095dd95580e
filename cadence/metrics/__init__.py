"""Metrics with Keras's names and log keys, accumulating their state on the device.

`get(identifier)` turns a Keras name, a `Metric`, a `torchmetrics.Metric` or a plain
function into a `Metric`; `resolve(identifier, loss, y_true, y_pred)` adds Keras 3's
rules for `"accuracy"` / `"crossentropy"` and for log-key names.
"""

from cadence.metrics.accuracies import (
    Accuracy,
    BinaryAccuracy,
    CategoricalAccuracy,
    SparseCategoricalAccuracy,
    SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy,
    accuracy,
    binary_accuracy,
    categorical_accuracy,
    sparse_categorical_accuracy,
    sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy,
)
from cadence.metrics.auc import AUC
from cadence.metrics.confusion import Precision, Recall
from cadence.metrics.fscore import F1Score, FBetaScore
from cadence.metrics.iou import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from cadence.metrics.mean_wrappers import (
    CategoricalHinge,
    ConcordanceCorrelation,
    CosineSimilarity,
    Hinge,
    KLDivergence,
    LogCoshError,
    PearsonCorrelation,
    Poisson,
    SquaredHinge,
    concordance_correlation,
    pearson_correlation,
)
from cadence.metrics.metric import Metric
from cadence.metrics.r2 import R2Score
from cadence.metrics.reduction import Mean, MeanMetricWrapper, Sum
from cadence.metrics.registry import check, get, resolve, valid_names
from cadence.metrics.regression import (
    BinaryCrossentropy,
    CategoricalCrossentropy,
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MeanSquaredLogarithmicError,
    RootMeanSquaredError,
    SparseCategoricalCrossentropy,
)
from cadence.metrics.threshold_metrics import (
    FalseNegatives,
    FalsePositives,
    PrecisionAtRecall,
    RecallAtPrecision,
    SensitivityAtSpecificity,
    SpecificityAtSensitivity,
    TrueNegatives,
    TruePositives,
)
from cadence.metrics.torchmetrics_adapter import TorchMetricsAdapter

__all__ = [
    "AUC",
    "BinaryIoU",
    "CategoricalHinge",
    "ConcordanceCorrelation",
    "CosineSimilarity",
    "F1Score",
    "FBetaScore",
    "FalseNegatives",
    "FalsePositives",
    "Hinge",
    "IoU",
    "KLDivergence",
    "LogCoshError",
    "MeanIoU",
    "OneHotIoU",
    "OneHotMeanIoU",
    "PearsonCorrelation",
    "Poisson",
    "PrecisionAtRecall",
    "R2Score",
    "RecallAtPrecision",
    "SensitivityAtSpecificity",
    "SpecificityAtSensitivity",
    "SquaredHinge",
    "TrueNegatives",
    "TruePositives",
    "concordance_correlation",
    "pearson_correlation",
    "check",
    "Accuracy",
    "BinaryAccuracy",
    "BinaryCrossentropy",
    "CategoricalAccuracy",
    "CategoricalCrossentropy",
    "Mean",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanMetricWrapper",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "Metric",
    "Precision",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy",
    "Sum",
    "TopKCategoricalAccuracy",
    "TorchMetricsAdapter",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "get",
    "resolve",
    "sparse_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "top_k_categorical_accuracy",
    "valid_names",
]
