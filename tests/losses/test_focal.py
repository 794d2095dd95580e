"""Focal crossentropies: Keras's documented example values (backend-independent)."""

import math

import numpy as np
import pytest

from cadence import losses


def test_binary_focal_crossentropy_keras_examples():
    y_true = np.array([0, 1, 0, 0])
    y_pred = np.array([-18.6, 0.51, 2.94, -12.8])
    assert losses.BinaryFocalCrossentropy(gamma=2, from_logits=True)(y_true, y_pred).item() \
        == pytest.approx(0.691, abs=5e-4)
    balanced = losses.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=2, from_logits=True)
    assert balanced(y_true, y_pred).item() == pytest.approx(0.51, abs=5e-3)
    y_true = np.array([[0, 1], [0, 0]])
    y_pred = np.array([[-18.6, 0.51], [2.94, -12.8]])
    gamma3 = losses.BinaryFocalCrossentropy(gamma=3, from_logits=True)
    assert gamma3(y_true, y_pred).item() == pytest.approx(0.647, abs=5e-4)
    assert gamma3(y_true, y_pred, sample_weight=[0.8, 0.2]).item() == pytest.approx(0.133, abs=5e-4)
    summed = losses.BinaryFocalCrossentropy(gamma=4, from_logits=True, reduction="sum")
    assert summed(y_true, y_pred).item() == pytest.approx(1.222, abs=5e-4)
    per_sample = losses.BinaryFocalCrossentropy(gamma=5, from_logits=True, reduction=None)
    np.testing.assert_allclose(per_sample(y_true, y_pred).numpy(), [0.0017, 1.1561], atol=5e-5)


def test_binary_focal_crossentropy_by_hand_and_by_name():
    # One probability 0.8 for class 1, gamma 2: (1 - 0.8)^2 * -log(0.8).
    expected = 0.2**2 * -math.log(0.8)
    assert losses.binary_focal_crossentropy([[1.0]], [[0.8]]).item() == pytest.approx(expected)
    loss = losses.get("binary_focal_crossentropy")
    assert isinstance(loss, losses.BinaryFocalCrossentropy)
    assert loss.get_config() == {
        "name": "binary_focal_crossentropy", "reduction": "sum_over_batch_size",
        "apply_class_balancing": False, "alpha": 0.25, "gamma": 2.0, "from_logits": False,
        "label_smoothing": 0.0, "axis": -1,
    }


def test_categorical_focal_crossentropy_keras_examples():
    y_true = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    y_pred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    loss = losses.CategoricalFocalCrossentropy()
    assert loss(y_true, y_pred).item() == pytest.approx(0.23315276, rel=1e-5)
    assert loss(y_true, y_pred, sample_weight=np.array([0.3, 0.7])).item() == pytest.approx(
        0.1632, abs=5e-5
    )
    assert losses.CategoricalFocalCrossentropy(reduction="sum")(y_true, y_pred).item() \
        == pytest.approx(0.46631, abs=5e-6)
    np.testing.assert_allclose(
        losses.CategoricalFocalCrossentropy(reduction=None)(y_true, y_pred).numpy(),
        [3.2058331e-05, 4.6627346e-01], rtol=1e-5,
    )
    assert isinstance(losses.get("CategoricalFocalCrossentropy"),
                      losses.CategoricalFocalCrossentropy)
    with pytest.raises(ValueError, match=r"^`axis` must be of type `int`\. Received: axis=True"):
        losses.categorical_focal_crossentropy(y_true, y_pred, axis=True)


def test_categorical_generalized_cross_entropy_by_hand():
    y_true = np.array([0, 1, 0, 1])
    y_pred = np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]])
    # (1 - p ** 0.5) / 0.5 for the true class's probabilities 0.7, 0.8, 0.6, 0.6.
    expected = np.mean([(1 - p**0.5) / 0.5 for p in (0.7, 0.8, 0.6, 0.6)])
    loss = losses.CategoricalGeneralizedCrossEntropy()
    assert loss(y_true, y_pred).item() == pytest.approx(expected, rel=1e-12)
    assert loss.get_config()["q"] == 0.5
    with pytest.raises(ValueError, match=r"^q must be in the interval \(0, 1\)$"):
        losses.CategoricalGeneralizedCrossEntropy(q=1.0)
