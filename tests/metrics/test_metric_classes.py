import numpy as np
import pytest
import torch

from cadence import losses, metrics


def test_accuracy_is_exact_equality_with_weights():
    m = metrics.Accuracy()
    m.update_state(torch.tensor([1, 2, 3, 4]), torch.tensor([[1.0], [2.0], [0.0], [4.0]]))
    assert m.result().item() == pytest.approx(0.75)
    m.update_state([1, 2], [[0.0], [2.0]], sample_weight=[3.0, 1.0])
    # 3 right out of 4 (weight 4), then 1 right with weight 1 out of weight 4.
    assert m.result().item() == pytest.approx(4 / 8)


def test_binary_accuracy_thresholds_predictions():
    y_true = torch.tensor([1, 0, 1, 0])
    y_pred = torch.tensor([[0.6], [0.4], [0.5], [0.7]])
    assert metrics.BinaryAccuracy()(y_true, y_pred).item() == pytest.approx(0.5)
    assert metrics.BinaryAccuracy(threshold=0.45)(y_true, y_pred).item() == pytest.approx(0.75)
    assert metrics.BinaryAccuracy(threshold=0.65)(y_true, y_pred).item() == pytest.approx(0.25)
    assert metrics.BinaryAccuracy(threshold=0.8)(y_true, y_pred).item() == pytest.approx(0.5)
    y_true = torch.tensor([[1, 0], [1, 1]])
    y_pred = torch.tensor([[0.9, 0.2], [0.1, 0.8]])
    m = metrics.BinaryAccuracy()
    m.update_state(y_true, y_pred, sample_weight=torch.tensor([1.0, 3.0]))
    assert m.result().item() == pytest.approx((1.0 * 1 + 0.5 * 3) / 4)


def test_categorical_and_sparse_accuracy():
    y_pred = torch.tensor([[0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    labels = torch.tensor([1, 1, 2])
    one_hot = torch.nn.functional.one_hot(labels, 3)
    assert metrics.SparseCategoricalAccuracy()(labels, y_pred).item() == pytest.approx(2 / 3)
    assert metrics.SparseCategoricalAccuracy()(labels[:, None], y_pred).item() == pytest.approx(
        2 / 3
    )
    assert metrics.CategoricalAccuracy()(one_hot, y_pred).item() == pytest.approx(2 / 3)


def test_top_k_accuracy_counts_ties_as_hits():
    y_pred = torch.tensor([[0.5, 0.3, 0.2, 0.0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.4, 0.1, 0.1]])
    labels = torch.tensor([1, 0, 1])
    m = metrics.SparseTopKCategoricalAccuracy(k=2)
    assert m(labels, y_pred).item() == pytest.approx(2 / 3)
    m = metrics.TopKCategoricalAccuracy(k=1)
    assert m(torch.nn.functional.one_hot(labels, 4), y_pred).item() == pytest.approx(1 / 3)
    assert metrics.SparseTopKCategoricalAccuracy()(labels, y_pred).item() == 1.0


def test_regression_metrics_match_numpy_over_batches():
    rng = np.random.default_rng(0)
    y_true = rng.uniform(0.5, 2.0, size=(10, 3))
    y_pred = rng.uniform(0.5, 2.0, size=(10, 3))
    weights = rng.uniform(0.0, 1.0, size=10)
    cases = {
        metrics.MeanSquaredError: np.mean((y_pred - y_true) ** 2, -1),
        metrics.MeanAbsoluteError: np.mean(np.abs(y_pred - y_true), -1),
        metrics.MeanAbsolutePercentageError: 100 * np.mean(np.abs(y_pred - y_true) / y_true, -1),
        metrics.MeanSquaredLogarithmicError: np.mean((np.log1p(y_pred) - np.log1p(y_true)) ** 2, -1),
    }
    for cls, per_sample in cases.items():
        m = cls()
        for start in (0, 4):
            stop = start + (4 if start == 0 else 6)
            m.update_state(
                torch.tensor(y_true[start:stop]),
                torch.tensor(y_pred[start:stop]),
                sample_weight=torch.tensor(weights[start:stop]),
            )
        expected = np.sum(per_sample * weights) / np.sum(weights)
        assert m.result().item() == pytest.approx(expected, rel=1e-6), cls.__name__


def test_root_mean_squared_error():
    m = metrics.RootMeanSquaredError()
    m.update_state(torch.tensor([1.0, 2.0]), torch.tensor([[2.0], [4.0]]))
    m.update_state(torch.tensor([0.0]), torch.tensor([[3.0]]), sample_weight=torch.tensor([2.0]))
    assert m.result().item() == pytest.approx(np.sqrt((1 + 4 + 2 * 9) / 4))


def test_crossentropy_metrics_average_the_loss_functions():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=torch.float64)
    labels = torch.tensor([0, 2])
    m = metrics.SparseCategoricalCrossentropy()
    assert m(labels, probs).item() == pytest.approx(-np.mean(np.log([0.7, 0.8])), rel=1e-6)
    one_hot = torch.nn.functional.one_hot(labels, 3).double()
    m = metrics.CategoricalCrossentropy(from_logits=True)
    expected = losses.categorical_crossentropy(one_hot, probs, from_logits=True).mean()
    assert m(one_hot, probs).item() == pytest.approx(expected.item(), rel=1e-6)
    m = metrics.BinaryCrossentropy(label_smoothing=0.2)
    expected = losses.binary_crossentropy([1.0, 0.0], [[0.8], [0.3]], label_smoothing=0.2)
    assert m([1.0, 0.0], [[0.8], [0.3]]).item() == pytest.approx(expected.mean().item())


def test_precision_and_recall_with_weights():
    y_true = torch.tensor([1, 0, 1, 1, 0])
    y_pred = torch.tensor([0.9, 0.8, 0.2, 0.7, 0.1])
    weights = torch.tensor([1.0, 2.0, 3.0, 0.0, 5.0])
    precision, recall = metrics.Precision(), metrics.Recall()
    precision.update_state(y_true, y_pred, sample_weight=weights)
    recall.update_state(y_true, y_pred, sample_weight=weights)
    # tp weight 1 (sample 0); fp weight 2 (sample 1); fn weight 3 (sample 2).
    assert precision.result().item() == pytest.approx(1 / 3)
    assert recall.result().item() == pytest.approx(1 / 4)
    assert metrics.Precision(thresholds=0.85)(y_true, y_pred).item() == 1.0
    assert metrics.Recall(class_id=1)([[0, 1], [1, 1]], [[0.9, 0.2], [0.1, 0.6]]).item() == 0.5


def test_precision_without_positive_predictions_is_zero():
    assert metrics.Precision()(torch.tensor([1, 1]), torch.tensor([0.1, 0.2])).item() == 0.0


@pytest.mark.parametrize("thresholds", [[0.3, 0.6], 1.5])
def test_precision_accepts_one_threshold_in_range(thresholds):
    with pytest.raises(ValueError, match=rf"Received: thresholds={re_escape(thresholds)}"):
        metrics.Precision(thresholds=thresholds)


def re_escape(value):
    import re

    return re.escape(repr(value))


def test_default_names_are_keras_names():
    expected = {
        metrics.Accuracy: "accuracy",
        metrics.BinaryAccuracy: "binary_accuracy",
        metrics.CategoricalAccuracy: "categorical_accuracy",
        metrics.SparseCategoricalAccuracy: "sparse_categorical_accuracy",
        metrics.TopKCategoricalAccuracy: "top_k_categorical_accuracy",
        metrics.SparseTopKCategoricalAccuracy: "sparse_top_k_categorical_accuracy",
        metrics.MeanAbsoluteError: "mean_absolute_error",
        metrics.MeanSquaredError: "mean_squared_error",
        metrics.RootMeanSquaredError: "root_mean_squared_error",
        metrics.MeanAbsolutePercentageError: "mean_absolute_percentage_error",
        metrics.MeanSquaredLogarithmicError: "mean_squared_logarithmic_error",
        metrics.BinaryCrossentropy: "binary_crossentropy",
        metrics.CategoricalCrossentropy: "categorical_crossentropy",
        metrics.SparseCategoricalCrossentropy: "sparse_categorical_crossentropy",
        metrics.Precision: "precision",
        metrics.Recall: "recall",
        metrics.Mean: "mean",
        metrics.Sum: "sum",
    }
    assert {cls: cls().name for cls in expected} == expected


def test_mean_metric_wrapper_uses_function_name_and_kwargs():
    def scaled_error(y_true, y_pred, scale):
        return scale * torch.abs(y_true - y_pred)

    m = metrics.MeanMetricWrapper(scaled_error, scale=2.0)
    assert m.name == "scaled_error"
    m.update_state(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.zeros(2, 2))
    assert m.result().item() == pytest.approx((4.0 + 0.0) / 2)
