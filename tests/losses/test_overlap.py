"""Dice, Tversky and the categorical hinge: Keras's documented examples and hand values."""

import numpy as np
import pytest

from cadence import losses

Y_TRUE = [[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]]
Y_PRED = [[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]]


def test_dice_keras_example():
    per_sample = losses.Dice(axis=(1, 2, 3), reduction=None)(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(per_sample.numpy(), [0.5, 0.75757575], rtol=1e-6)
    assert losses.Dice()(Y_TRUE, Y_PRED).item() == pytest.approx(0.6164384, rel=1e-6)
    assert isinstance(losses.get("dice"), losses.Dice)


def test_tversky_by_hand():
    # Sample 2: tp = 0.4, fp = 0.9, fn = 0.6 + 1.0 = 1.6.
    loss = losses.Tversky(alpha=0.3, beta=0.7, axis=(1, 2, 3), reduction=None)
    expected = [1 - 1 / (1 + 0.3 * 1 + 0.7 * 1), 1 - 0.4 / (0.4 + 0.3 * 0.9 + 0.7 * 1.6)]
    np.testing.assert_allclose(loss(Y_TRUE, Y_PRED).numpy(), expected, rtol=1e-6)
    # alpha = beta = 0.5 is the Dice loss.
    assert losses.Tversky()(Y_TRUE, Y_PRED).item() == pytest.approx(0.6164384, rel=1e-6)
    assert losses.get("Tversky").get_config() == {
        "name": "tversky", "reduction": "sum_over_batch_size", "alpha": 0.5, "beta": 0.5,
        "axis": None,
    }


def test_categorical_hinge_by_hand():
    y_true = [[0.0, 1.0], [1.0, 0.0]]
    y_pred = [[0.6, 0.4], [0.4, 0.6]]
    # pos = 0.4, neg = 0.6 for both: max(0.6 - 0.4 + 1, 0) = 1.2.
    assert losses.CategoricalHinge()(y_true, y_pred).item() == pytest.approx(1.2, rel=1e-6)
    assert losses.categorical_hinge([[0.0, 1.0]], [[0.0, 3.0]]).tolist() == [0.0]
    assert isinstance(losses.get("categorical_hinge"), losses.CategoricalHinge)


@pytest.mark.parametrize(("alias", "cls"), [
    ("bce", losses.BinaryCrossentropy), ("BCE", losses.BinaryCrossentropy),
    ("KLD", losses.KLDivergence), ("MAE", losses.MeanAbsoluteError),
    ("MSE", losses.MeanSquaredError), ("MAPE", losses.MeanAbsolutePercentageError),
    ("MSLE", losses.MeanSquaredLogarithmicError),
])
def test_keras_upper_case_aliases(alias, cls):
    assert type(losses.get(alias)) is cls
