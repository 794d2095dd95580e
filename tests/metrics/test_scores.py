"""F-scores, R2Score and the IoU family: Keras's documented examples and hand values."""

import numpy as np
import pytest

from cadence import metrics

F_TRUE = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]], np.int32)
F_PRED = np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]], np.float32)


def test_fbeta_and_f1_keras_examples():
    fbeta = metrics.FBetaScore(beta=2.0, threshold=0.5)
    fbeta.update_state(F_TRUE, F_PRED)
    np.testing.assert_allclose(fbeta.result().numpy(), [0.3846154, 0.90909094, 0.8333334],
                               rtol=1e-6)
    f1 = metrics.F1Score(threshold=0.5)
    f1.update_state(F_TRUE, F_PRED)
    np.testing.assert_allclose(f1.result().numpy(), [0.5, 0.8, 0.6666667], rtol=1e-6)
    macro = metrics.F1Score(average="macro", threshold=0.5)
    macro.update_state(F_TRUE, F_PRED)
    assert macro.result().item() == pytest.approx(np.mean([0.5, 0.8, 2 / 3]), rel=1e-6)
    # Micro: pooled tp = 1 + 2 + 1, fp = 0 + 1 + 1, fn = 2 + 0 + 0 -> p = 4/6, r = 4/6.
    micro = metrics.F1Score(average="micro", threshold=0.5)
    micro.update_state(F_TRUE, F_PRED)
    assert micro.result().item() == pytest.approx(4 / 6, rel=1e-6)
    with pytest.raises(ValueError, match=r"^Invalid `beta` argument value\. It should be a Python "
                       r"float\. Received: beta=2 of type '<class 'int'>'$"):
        metrics.FBetaScore(beta=2)
    with pytest.raises(ValueError, match=r"^FBetaScore expects 2D inputs with shape "):
        metrics.F1Score().update_state([1, 0], [0.2, 0.3])


def test_r2_score_keras_example_and_per_output():
    metric = metrics.R2Score()
    metric.update_state(np.array([[1], [4], [3]], np.float32), np.array([[2], [4], [4]], np.float32))
    assert metric.result().item() == pytest.approx(0.57142854, rel=1e-6)
    y_true = np.array([[1.0, 2.0], [3.0, 5.0], [5.0, 2.0], [7.0, 3.0]])
    y_pred = np.array([[1.5, 2.0], [2.5, 4.0], [5.5, 2.5], [6.0, 3.5]])
    raw = 1 - ((y_true - y_pred) ** 2).sum(0) / ((y_true - y_true.mean(0)) ** 2).sum(0)
    per_output = metrics.R2Score(class_aggregation=None)
    per_output.update_state(y_true, y_pred)
    np.testing.assert_allclose(per_output.result().numpy(), raw, rtol=1e-6)
    adjusted = metrics.R2Score(num_regressors=1)
    adjusted.update_state(y_true, y_pred)
    assert adjusted.result().item() == pytest.approx(1 - (1 - raw.mean()) * 3 / 2, rel=1e-6)


def test_iou_family_keras_examples():
    iou = metrics.IoU(num_classes=2, target_class_ids=[0])
    iou.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    assert iou.result().item() == pytest.approx(1 / 3, rel=1e-6)
    iou.reset_state()
    iou.update_state([0, 0, 1, 1], [0, 1, 0, 1], sample_weight=[0.3, 0.3, 0.3, 0.1])
    assert iou.result().item() == pytest.approx(1 / 3, rel=1e-6)
    binary = metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.3)
    binary.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7])
    assert binary.result().item() == pytest.approx(1 / 3, rel=1e-6)
    binary.reset_state()
    binary.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7], sample_weight=[0.2, 0.3, 0.4, 0.1])
    assert binary.result().item() == pytest.approx(0.17361112, rel=1e-6)
    mean = metrics.MeanIoU(num_classes=2)
    mean.update_state([0, 0, 1, 1], [0, 1, 0, 1])
    assert mean.result().item() == pytest.approx(1 / 3, rel=1e-6)
    one_hot = metrics.OneHotMeanIoU(num_classes=3)
    one_hot.update_state(np.eye(3)[[0, 1, 2, 2]], np.eye(3)[[0, 2, 2, 1]] * 0.9)
    # Class 0: 1/1; class 1: 0/2; class 2: 1/3.
    assert one_hot.result().item() == pytest.approx((1 + 0 + 1 / 3) / 3, rel=1e-6)
    with pytest.raises(ValueError, match=r"^Target class id 2 is out of range, which is "
                       r"\[0, 2\)\.$"):
        metrics.IoU(num_classes=2, target_class_ids=[2])
