import numpy as np
import pytest
import torch

from cadence import losses

Y_TRUE = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
Y_PRED = torch.tensor([[2.0], [2.0], [5.0], [8.0]])
PER_SAMPLE = np.array([1.0, 0.0, 4.0, 16.0])  # squared errors
WEIGHTS = np.array([1.0, 2.0, 0.0, 0.5])


def test_sum_over_batch_size_divides_by_samples_not_weights():
    loss = losses.MeanSquaredError()
    assert loss(Y_TRUE, Y_PRED).item() == pytest.approx(PER_SAMPLE.mean())
    got = loss(Y_TRUE, Y_PRED, sample_weight=torch.tensor(WEIGHTS))
    assert got.item() == pytest.approx(np.sum(PER_SAMPLE * WEIGHTS) / 4)
    assert got.dim() == 0


def test_zero_weight_removes_a_sample():
    loss = losses.MeanSquaredError(reduction="sum")
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert loss(Y_TRUE, Y_PRED, sample_weight=weights).item() == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("reduction", "expected"),
    [
        ("sum", np.sum(PER_SAMPLE * WEIGHTS)),
        ("mean", np.sum(PER_SAMPLE * WEIGHTS) / 4),
        ("mean_with_sample_weight", np.sum(PER_SAMPLE * WEIGHTS) / WEIGHTS.sum()),
    ],
)
def test_reductions_with_weights(reduction, expected):
    loss = losses.MeanSquaredError(reduction=reduction)
    got = loss(Y_TRUE, Y_PRED, sample_weight=WEIGHTS.reshape(4, 1))
    assert got.item() == pytest.approx(expected)


@pytest.mark.parametrize("reduction", ["none", None])
def test_reduction_none_returns_weighted_per_sample_values(reduction):
    loss = losses.MeanSquaredError(reduction=reduction)
    got = loss(Y_TRUE, Y_PRED, sample_weight=torch.tensor(WEIGHTS, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), PER_SAMPLE * WEIGHTS)


def test_mean_with_sample_weight_is_zero_when_all_weights_are_zero():
    loss = losses.MeanSquaredError(reduction="mean_with_sample_weight")
    assert loss(Y_TRUE, Y_PRED, sample_weight=np.zeros(4)).item() == 0.0


def test_unknown_reduction_is_rejected():
    with pytest.raises(
        ValueError,
        match=r"Invalid value for argument `reduction`\. Expected one of \['mean', "
        r"'mean_with_sample_weight', 'none', 'sum', 'sum_over_batch_size'\]\. "
        r"Received: reduction='avg'",
    ):
        losses.MeanSquaredError(reduction="avg")


def test_weights_for_another_batch_size_are_rejected():
    with pytest.raises(
        ValueError,
        match=r"one weight per sample\. Received: sample_weight\.shape=\(3,\) for losses "
        r"of shape \(4,\)",
    ):
        losses.MeanSquaredError()(Y_TRUE, Y_PRED, sample_weight=[1.0, 1.0, 1.0])


def test_default_names_are_keras_names():
    expected = {
        losses.MeanSquaredError: "mean_squared_error",
        losses.MeanAbsoluteError: "mean_absolute_error",
        losses.MeanAbsolutePercentageError: "mean_absolute_percentage_error",
        losses.MeanSquaredLogarithmicError: "mean_squared_logarithmic_error",
        losses.BinaryCrossentropy: "binary_crossentropy",
        losses.CategoricalCrossentropy: "categorical_crossentropy",
        losses.SparseCategoricalCrossentropy: "sparse_categorical_crossentropy",
        losses.Huber: "huber_loss",
        losses.Hinge: "hinge",
        losses.SquaredHinge: "squared_hinge",
        losses.KLDivergence: "kl_divergence",
        losses.Poisson: "poisson",
        losses.CosineSimilarity: "cosine_similarity",
        losses.LogCosh: "log_cosh",
    }
    assert {cls: cls().name for cls in expected} == expected
    assert losses.Huber(name="h").name == "h"


def test_class_arguments_reach_the_function():
    y_true = torch.tensor([[0.0, 1.0]])
    logits = torch.tensor([[0.5, 1.5]])
    loss = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    expected = losses.categorical_crossentropy(y_true, logits, from_logits=True, label_smoothing=0.1)
    assert loss(y_true, logits).item() == pytest.approx(expected.item())
    assert loss.get_config() == {
        "name": "categorical_crossentropy",
        "reduction": "sum_over_batch_size",
        "from_logits": True,
        "label_smoothing": 0.1,
        "axis": -1,
    }
    assert losses.Huber(delta=0.5)(torch.tensor([0.0]), torch.tensor([2.0])).item() == 0.875


def test_sparse_crossentropy_ignore_class_averages_over_valid_entries():
    probs = torch.tensor([[[0.5, 0.5], [0.9, 0.1]], [[0.2, 0.8], [0.6, 0.4]]], dtype=torch.float64)
    labels = torch.tensor([[0, 7], [1, 7]])
    loss = losses.SparseCategoricalCrossentropy(ignore_class=7)
    expected = (-np.log(0.5) - np.log(0.8)) / (2 + 1e-7) * 4 / 4
    assert loss(labels, probs).item() == pytest.approx(expected, rel=1e-12)
    total = losses.SparseCategoricalCrossentropy(ignore_class=7, reduction="sum")(labels, probs)
    assert total.item() == pytest.approx((-np.log(0.5) - np.log(0.8)) / 2, rel=1e-12)


def test_subclass_call_returning_per_element_values_is_reduced_like_keras():
    class Squares(losses.Loss):
        def call(self, y_true, y_pred):
            return (y_pred - y_true) ** 2

    y_true = torch.zeros(2, 3)
    y_pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    loss = Squares(name="squares")
    weights = torch.tensor([1.0, 0.5])
    assert loss(y_true, y_pred, sample_weight=weights).item() == pytest.approx(
        (14.0 * 1 + 36.0 * 0.5) / 6
    )


def test_base_call_must_be_implemented():
    with pytest.raises(NotImplementedError, match=r"Loss must implement `call\(y_true, y_pred\)`"):
        losses.Loss()(torch.zeros(1), torch.zeros(1))


def test_loss_is_differentiable():
    y_pred = torch.tensor([[0.3], [0.6]], requires_grad=True)
    losses.BinaryCrossentropy()(torch.tensor([1, 0]), y_pred).backward()
    expected = np.array([-1 / 0.3, 1 / 0.4]) / 2
    np.testing.assert_allclose(y_pred.grad.numpy()[:, 0], expected, rtol=1e-5)
