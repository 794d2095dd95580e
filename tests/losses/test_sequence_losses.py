"""CTC and Circle: values by hand with numpy, and Keras's recorded Circle numbers."""

import math

import numpy as np
import pytest
import torch

from cadence import losses


def _softmax(row):
    e = np.exp(row - row.max())
    return e / e.sum()


def test_ctc_by_hand():
    logits = np.array([[[0.2, 1.0, -0.5], [0.3, -0.1, 0.8]]], dtype=np.float32)  # T=2, C=3.
    p1, p2 = _softmax(logits[0, 0]), _softmax(logits[0, 1])
    # Label [1] (0 pads and is the blank): paths "1 1", "0 1", "1 0".
    expected = -math.log(p1[1] * p2[1] + p1[0] * p2[1] + p1[1] * p2[0])
    y_true = np.array([[1, 0]])
    values = losses.ctc(y_true, torch.tensor(logits))
    assert values.shape == (1,)
    assert values.item() == pytest.approx(expected, rel=1e-5)
    assert losses.CTC()(y_true, torch.tensor(logits)).item() == pytest.approx(expected, rel=1e-5)
    assert isinstance(losses.get("ctc"), losses.CTC)


def test_ctc_shape_errors():
    with pytest.raises(ValueError, match=r"^Targets `y_true` are expected to be a tensor of "
                       r"shape `\(batch_size, max_length\)` in integer format\. Received: "
                       r"y_true\.shape=\(2,\)$"):
        losses.ctc(np.array([1, 2]), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"^Logits `y_pred` are expected to be a tensor of shape "
                       r"`\(batch_size, max_length, num_classes\)`\. Received: "
                       r"y_pred\.shape=\(2, 3\)$"):
        losses.ctc(np.array([[1], [2]]), np.zeros((2, 3)))


Y_TRUE = np.array([1, 1, 2, 2, 3])
Y_PRED = np.array([
    [0.70014004, -0.42008403, 0.14002801, 0.56011203],
    [0.17609018, 0.70436073, -0.52827054, 0.44022545],
    [-0.34050261, 0.25537696, -0.68100522, 0.59587957],
    [0.32163376, -0.75047877, 0.53605627, -0.21442251],
    [0.51261459, -0.34174306, 0.17087153, 0.76892189],
])
REF_LABELS = np.array([1, 1, 2, 2, 3, 4])
REF_EMBEDDINGS = np.array([
    [0.40824829, -0.54433105, 0.27216553, 0.68041382],
    [0.76376261, 0.10910895, -0.54554473, 0.32732684],
    [-0.74420841, 0.24806947, 0.49613894, -0.3721042],
    [0.52981294, -0.13245324, 0.79471941, -0.26490647],
    [0.54554473, -0.32732684, 0.10910895, 0.76376261],
    [-0.27216553, 0.68041382, 0.40824829, -0.54433105],
])


def test_circle_keras_recorded_values():
    # Keras's losses_test.py CircleTest: the label-3 sample has no positive, so its loss is
    # 0 and the mean is over the other four.
    assert losses.Circle(gamma=80.0, margin=0.4)(Y_TRUE, Y_PRED).item() == pytest.approx(
        188.3883, abs=1e-3
    )
    assert losses.Circle(gamma=256, margin=0.25)(Y_TRUE, Y_PRED).item() == pytest.approx(
        652.7617, abs=1e-3
    )
    values = losses.circle(Y_TRUE, Y_PRED, ref_labels=REF_LABELS, ref_embeddings=REF_EMBEDDINGS,
                           gamma=80.0, margin=0.4, remove_diagonal=False)
    np.testing.assert_allclose(values.numpy(), [61.5844, 94.3465, 276.9344, 90.9873, 48.8963],
                               atol=1e-3)
    assert losses.get("circle").get_config() == {
        "name": "circle", "reduction": "sum_over_batch_size", "gamma": 80.0, "margin": 0.4,
        "remove_diagonal": True,
    }
