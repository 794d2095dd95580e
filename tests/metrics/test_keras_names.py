"""Every name in Keras 3's metric registry resolves in cadence (listed from Keras's source)."""

import pytest

from cadence import metrics

# keras/src/metrics/__init__.py: class names, their snake_case and the upper-case aliases,
# less the abstract "Metric" / "MeanMetricWrapper".
NO_ARGUMENTS = {
    "AUC": metrics.AUC, "auc": metrics.AUC, "BCE": metrics.BinaryCrossentropy,
    "bce": metrics.BinaryCrossentropy, "MAE": metrics.MeanAbsoluteError,
    "MSE": metrics.MeanSquaredError, "MAPE": metrics.MeanAbsolutePercentageError,
    "MSLE": metrics.MeanSquaredLogarithmicError, "Mean": metrics.Mean, "mean": metrics.Mean,
    "Sum": metrics.Sum, "sum": metrics.Sum, "hinge": metrics.Hinge,
    "squared_hinge": metrics.SquaredHinge, "categorical_hinge": metrics.CategoricalHinge,
    "kl_divergence": metrics.KLDivergence, "poisson": metrics.Poisson,
    "cosine_similarity": metrics.CosineSimilarity, "log_cosh_error": metrics.LogCoshError,
    "LogCoshError": metrics.LogCoshError, "r2_score": metrics.R2Score,
    "R2Score": metrics.R2Score, "pearson_correlation": metrics.PearsonCorrelation,
    "concordance_correlation": metrics.ConcordanceCorrelation,
    "true_positives": metrics.TruePositives, "false_positives": metrics.FalsePositives,
    "true_negatives": metrics.TrueNegatives, "false_negatives": metrics.FalseNegatives,
    "f1_score": metrics.F1Score, "F1Score": metrics.F1Score,
    "f_beta_score": metrics.FBetaScore, "FBetaScore": metrics.FBetaScore,
    "BinaryIoU": metrics.BinaryIoU, "binary_io_u": metrics.BinaryIoU,
}
NEED_ARGUMENTS = [
    "precision_at_recall", "PrecisionAtRecall", "recall_at_precision", "RecallAtPrecision",
    "sensitivity_at_specificity", "SensitivityAtSpecificity", "specificity_at_sensitivity",
    "SpecificityAtSensitivity", "io_u", "IoU", "mean_io_u", "MeanIoU", "one_hot_io_u",
    "OneHotIoU", "one_hot_mean_io_u", "OneHotMeanIoU",
]


@pytest.mark.parametrize(("name", "cls"), sorted(NO_ARGUMENTS.items()))
def test_name_builds_the_keras_class(name, cls):
    assert type(metrics.get(name)) is cls


@pytest.mark.parametrize("name", NEED_ARGUMENTS)
def test_names_of_metrics_with_required_arguments_are_known(name):
    assert name in metrics.valid_names()
    with pytest.raises(TypeError, match=r"missing \d required positional argument"):
        metrics.get(name)


def test_compile_name_is_the_log_key():
    metric = metrics.resolve("hinge")
    assert isinstance(metric, metrics.Hinge) and metric.name == "hinge"


def test_keras_metrics_function_forms_are_the_loss_functions():
    from cadence import losses

    for name in ("hinge", "squared_hinge", "categorical_hinge", "kl_divergence", "poisson",
                 "log_cosh", "huber", "binary_focal_crossentropy", "mean_squared_error"):
        assert getattr(metrics, name) is getattr(losses, name)
    assert metrics.get(metrics.hinge).name == "hinge"
