import re

import pytest
import torch

from cadence import losses, metrics


@pytest.mark.parametrize(
    ("identifier", "cls", "name"),
    [
        ("accuracy", metrics.Accuracy, "accuracy"),
        ("acc", metrics.Accuracy, "accuracy"),
        ("binary_accuracy", metrics.BinaryAccuracy, "binary_accuracy"),
        ("categorical_accuracy", metrics.CategoricalAccuracy, "categorical_accuracy"),
        (
            "sparse_categorical_accuracy",
            metrics.SparseCategoricalAccuracy,
            "sparse_categorical_accuracy",
        ),
        (
            "top_k_categorical_accuracy",
            metrics.TopKCategoricalAccuracy,
            "top_k_categorical_accuracy",
        ),
        (
            "sparse_top_k_categorical_accuracy",
            metrics.SparseTopKCategoricalAccuracy,
            "sparse_top_k_categorical_accuracy",
        ),
        ("mae", metrics.MeanAbsoluteError, "mean_absolute_error"),
        ("mean_absolute_error", metrics.MeanAbsoluteError, "mean_absolute_error"),
        ("mse", metrics.MeanSquaredError, "mean_squared_error"),
        ("mean_squared_error", metrics.MeanSquaredError, "mean_squared_error"),
        ("mape", metrics.MeanAbsolutePercentageError, "mean_absolute_percentage_error"),
        ("msle", metrics.MeanSquaredLogarithmicError, "mean_squared_logarithmic_error"),
        ("root_mean_squared_error", metrics.RootMeanSquaredError, "root_mean_squared_error"),
        ("binary_crossentropy", metrics.BinaryCrossentropy, "binary_crossentropy"),
        ("categorical_crossentropy", metrics.CategoricalCrossentropy, "categorical_crossentropy"),
        (
            "sparse_categorical_crossentropy",
            metrics.SparseCategoricalCrossentropy,
            "sparse_categorical_crossentropy",
        ),
        ("precision", metrics.Precision, "precision"),
        ("recall", metrics.Recall, "recall"),
        ("RootMeanSquaredError", metrics.RootMeanSquaredError, "root_mean_squared_error"),
    ],
)
def test_get_by_name_keeps_keras_default_name(identifier, cls, name):
    metric = metrics.get(identifier)
    assert type(metric) is cls
    assert metric.name == name


def test_get_instances_classes_functions_and_none():
    rmse = metrics.RootMeanSquaredError()
    assert metrics.get(rmse) is rmse
    assert metrics.get(None) is None
    assert type(metrics.get(metrics.Recall)) is metrics.Recall

    def max_error(y_true, y_pred):
        return torch.abs(y_true - y_pred).amax(dim=-1)

    metric = metrics.get(max_error)
    assert type(metric) is metrics.MeanMetricWrapper
    assert metric.name == "max_error"
    metric.update_state(torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 3.0], [1, 2]]))
    assert metric.result().item() == pytest.approx(2.0)


def test_unknown_metric_lists_valid_names_sorted():
    names = metrics.valid_names()
    assert names == sorted(names)
    expected = "Unknown metric: 'acuracy'. Expected one of: " + ", ".join(
        repr(name) for name in names
    )
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        metrics.get("acuracy")


def test_unsupported_metric_type_is_rejected():
    with pytest.raises(
        TypeError, match=r"Could not interpret metric identifier: 2\.5 \(of type float\)"
    ):
        metrics.get(2.5)


@pytest.mark.parametrize(
    ("loss", "cls"),
    [
        ("binary_crossentropy", metrics.BinaryAccuracy),
        ("categorical_crossentropy", metrics.CategoricalAccuracy),
        ("sparse_categorical_crossentropy", metrics.SparseCategoricalAccuracy),
        (losses.BinaryCrossentropy(from_logits=True), metrics.BinaryAccuracy),
        (losses.SparseCategoricalCrossentropy(name="my_loss"), metrics.SparseCategoricalAccuracy),
        (losses.categorical_crossentropy, metrics.CategoricalAccuracy),
    ],
)
def test_accuracy_follows_crossentropy_loss(loss, cls):
    # The shapes would say binary; the loss wins.
    metric = metrics.resolve("accuracy", loss=loss, y_true=torch.zeros(4), y_pred=torch.zeros(4, 1))
    assert type(metric) is cls
    assert metric.name == "accuracy"


@pytest.mark.parametrize(
    ("true_shape", "pred_shape", "cls"),
    [
        ((8,), (8, 1), metrics.BinaryAccuracy),
        ((8, 1), (8, 1), metrics.BinaryAccuracy),
        ((8,), (8,), metrics.BinaryAccuracy),
        ((8, 5), (8, 5), metrics.CategoricalAccuracy),
        ((8,), (8, 5), metrics.SparseCategoricalAccuracy),
        ((8, 1), (8, 5), metrics.SparseCategoricalAccuracy),
    ],
)
def test_accuracy_from_shapes_for_other_losses(true_shape, pred_shape, cls):
    metric = metrics.resolve(
        "acc", loss="mse", y_true=torch.zeros(true_shape), y_pred=torch.zeros(pred_shape)
    )
    assert type(metric) is cls
    assert metric.name == "acc"


def test_crossentropy_follows_loss_and_its_from_logits():
    metric = metrics.resolve("crossentropy", loss=losses.BinaryCrossentropy(from_logits=True))
    assert type(metric) is metrics.BinaryCrossentropy
    assert metric.name == "crossentropy"
    assert metric.fn_kwargs["from_logits"] is True
    metric = metrics.resolve("ce", y_true=torch.zeros(3), y_pred=torch.zeros(3, 4))
    assert type(metric) is metrics.SparseCategoricalCrossentropy
    assert metric.fn_kwargs["from_logits"] is False


def test_accuracy_without_loss_or_batch_cannot_be_resolved():
    with pytest.raises(
        ValueError,
        match=r"Cannot tell which metric 'accuracy' means: the loss is not a crossentropy "
        r"and no batch was given\.",
    ):
        metrics.resolve("accuracy", loss="mse")


@pytest.mark.parametrize("identifier", ["mae", "mean_absolute_error", "RootMeanSquaredError"])
def test_resolve_names_metric_by_the_string_given(identifier):
    assert metrics.resolve(identifier).name == identifier


def test_resolve_keeps_names_of_objects():
    metric = metrics.MeanAbsoluteError(name="val_mae_custom")
    assert metrics.resolve(metric).name == "val_mae_custom"
