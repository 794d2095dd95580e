import re

import numpy as np
import pytest
import torch
from torch import nn

from cadence import losses


@pytest.mark.parametrize(
    ("identifier", "cls"),
    [
        ("mse", losses.MeanSquaredError),
        ("mean_squared_error", losses.MeanSquaredError),
        ("mae", losses.MeanAbsoluteError),
        ("mean_absolute_error", losses.MeanAbsoluteError),
        ("mape", losses.MeanAbsolutePercentageError),
        ("mean_absolute_percentage_error", losses.MeanAbsolutePercentageError),
        ("msle", losses.MeanSquaredLogarithmicError),
        ("mean_squared_logarithmic_error", losses.MeanSquaredLogarithmicError),
        ("binary_crossentropy", losses.BinaryCrossentropy),
        ("categorical_crossentropy", losses.CategoricalCrossentropy),
        ("sparse_categorical_crossentropy", losses.SparseCategoricalCrossentropy),
        ("huber", losses.Huber),
        ("hinge", losses.Hinge),
        ("squared_hinge", losses.SquaredHinge),
        ("kld", losses.KLDivergence),
        ("kl_divergence", losses.KLDivergence),
        ("poisson", losses.Poisson),
        ("cosine_similarity", losses.CosineSimilarity),
        ("log_cosh", losses.LogCosh),
        ("logcosh", losses.LogCosh),
        ("MeanSquaredError", losses.MeanSquaredError),
    ],
)
def test_get_by_name(identifier, cls):
    assert type(losses.get(identifier)) is cls


def test_get_passes_through_none_and_instances_and_instantiates_classes():
    loss = losses.Huber(delta=2.0)
    assert losses.get(None) is None
    assert losses.get(loss) is loss
    assert type(losses.get(losses.Poisson)) is losses.Poisson


def test_unknown_name_lists_valid_names_sorted():
    names = losses.valid_names()
    assert names == sorted(names)
    assert "mse" in names and "BinaryCrossentropy" in names
    expected = "Unknown loss: 'msee'. Expected one of: " + ", ".join(repr(n) for n in names)
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        losses.get("msee")


def test_unsupported_type_is_rejected():
    with pytest.raises(
        TypeError, match=r"Could not interpret loss identifier: 3 \(of type int\)\. Expected"
    ):
        losses.get(3)


def per_sample_abs(y_true, y_pred):
    return torch.abs(y_true - y_pred)


def scalar_abs(y_true, y_pred):
    return torch.abs(y_true - y_pred).mean()


def test_function_returning_per_sample_values_is_weighted_per_sample():
    loss = losses.get(per_sample_abs)
    assert loss.name == "per_sample_abs"
    y_true = torch.tensor([1, 2, 3])  # integer targets are cast, (n,) meets (n, 1)
    y_pred = torch.tensor([[2.0], [2.0], [7.0]])
    assert loss(y_true, y_pred).item() == pytest.approx(5 / 3)
    got = loss(y_true, y_pred, sample_weight=torch.tensor([1.0, 1.0, 0.0]))
    assert got.item() == pytest.approx(1 / 3)


def test_function_returning_a_scalar_is_scaled_by_the_mean_weight():
    loss = losses.get(scalar_abs)
    y_true = torch.tensor([[1.0], [2.0], [3.0]])
    y_pred = torch.tensor([[2.0], [2.0], [7.0]])
    assert loss(y_true, y_pred).item() == pytest.approx(5 / 3)
    got = loss(y_true, y_pred, sample_weight=torch.tensor([1.0, 2.0, 0.0]))
    assert got.item() == pytest.approx(5 / 3 * 1.0)
    total = losses.LossFunctionWrapper(scalar_abs, reduction="sum")
    assert total(y_true, y_pred, sample_weight=[1.0, 2.0, 0.0]).item() == pytest.approx(5.0)


def test_torch_module_is_called_torch_style():
    loss = losses.get(nn.CrossEntropyLoss())
    assert loss.name == "cross_entropy_loss"
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 2])
    expected = nn.functional.cross_entropy(logits, labels)
    assert loss(labels, logits).item() == pytest.approx(expected.item())


def test_torch_module_with_sample_weight_uses_unreduced_copy():
    module = nn.MSELoss()
    loss = losses.get(module)
    assert loss.name == "mse_loss"
    y_true = torch.tensor([1, 2, 3])  # (n,) integer targets meet (n, 1) predictions
    y_pred = torch.tensor([[2.0], [2.0], [5.0]])
    assert loss(y_true, y_pred).item() == pytest.approx(5 / 3)
    got = loss(y_true, y_pred, sample_weight=np.array([0.0, 1.0, 2.0]))
    assert got.item() == pytest.approx(8 / 3)
    assert module.reduction == "mean"


def test_torch_module_class_is_instantiated():
    loss = losses.get(nn.BCEWithLogitsLoss)
    assert loss.name == "bce_with_logits_loss"
    got = loss(torch.tensor([1, 0]), torch.tensor([[0.0], [0.0]]))
    assert got.item() == pytest.approx(np.log(2.0))


def test_torch_module_without_reduction_cannot_be_weighted():
    class Custom(nn.Module):
        def forward(self, y_pred, y_true):
            return ((y_pred - y_true) ** 2).mean()

    loss = losses.get(Custom())
    assert loss.name == "custom"
    assert loss(torch.ones(2, 1), torch.zeros(2, 1)).item() == 1.0
    with pytest.raises(
        ValueError,
        match=r"Loss module Custom cannot be used with `sample_weight`: it has no "
        r"`reduction` attribute",
    ):
        loss(torch.ones(2, 1), torch.zeros(2, 1), sample_weight=torch.ones(2))
