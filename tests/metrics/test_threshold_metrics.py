"""Confusion counts, AUC and the at-constraint metrics: Keras's documented examples."""

import numpy as np
import pytest

from cadence import metrics


@pytest.mark.parametrize(("cls", "y_true", "y_pred", "plain", "weighted"), [
    (metrics.FalsePositives, [0, 1, 0, 0], [0, 0, 1, 1], 2.0, 1.0),
    (metrics.FalseNegatives, [0, 1, 1, 1], [0, 1, 0, 0], 2.0, 1.0),
    (metrics.TrueNegatives, [0, 1, 0, 0], [1, 1, 0, 0], 2.0, 1.0),
    (metrics.TruePositives, [0, 1, 1, 1], [1, 0, 1, 1], 2.0, 1.0),
])
def test_confusion_counts(cls, y_true, y_pred, plain, weighted):
    metric = cls()
    metric.update_state(y_true, y_pred)
    assert metric.result().item() == plain
    metric.reset_state()
    metric.update_state(y_true, y_pred, sample_weight=[0, 0, 1, 0])
    assert metric.result().item() == weighted


def test_confusion_counts_at_several_unsorted_thresholds():
    metric = metrics.TruePositives(thresholds=[0.7, 0.1, 0.5])
    metric.update_state([1, 1, 1, 0], [0.2, 0.6, 0.9, 0.95])
    # Positives above 0.7: 0.9; above 0.1: all three; above 0.5: 0.6 and 0.9.
    assert metric.result().tolist() == [1.0, 3.0, 2.0]
    with pytest.raises(ValueError, match=r"^Threshold values must be in \[0, 1\]\. "
                       r"Received: \[0\.5, 2\]$"):
        metrics.FalsePositives(thresholds=[0.5, 2])


@pytest.mark.parametrize(("cls", "value", "weights", "plain", "weighted"), [
    (metrics.SensitivityAtSpecificity, 0.5, [1, 1, 2, 2, 1], 0.5, 1 / 3),
    (metrics.SpecificityAtSensitivity, 0.5, [1, 1, 2, 2, 2], 2 / 3, 0.5),
    (metrics.PrecisionAtRecall, 0.5, [2, 2, 2, 1, 1], 0.5, 1 / 3),
])
def test_at_constraint_keras_examples(cls, value, weights, plain, weighted):
    metric = cls(value)
    metric.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
    assert metric.result().item() == pytest.approx(plain, rel=1e-6)
    metric.reset_state()
    metric.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], sample_weight=weights)
    assert metric.result().item() == pytest.approx(weighted, rel=1e-6)


def test_recall_at_precision_keras_example_and_checks():
    metric = metrics.RecallAtPrecision(0.8)
    metric.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert metric.result().item() == pytest.approx(0.5)
    metric.reset_state()
    metric.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert metric.result().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"^Argument `precision` must be in the range \[0, 1\]\. "
                       r"Received: precision=1\.5$"):
        metrics.RecallAtPrecision(1.5)
    with pytest.raises(ValueError, match=r"^Argument `num_thresholds` must be an integer > 0\. "
                       r"Received: num_thresholds=0$"):
        metrics.PrecisionAtRecall(0.5, num_thresholds=0)


def test_auc_keras_example():
    metric = metrics.AUC(num_thresholds=3)
    metric.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert metric.result().item() == pytest.approx(0.75)
    metric.reset_state()
    metric.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert metric.result().item() == pytest.approx(1.0)


def test_auc_roc_matches_the_rank_statistic_by_hand():
    # With thresholds between every pair of scores, the trapezoidal ROC AUC equals the
    # fraction of (positive, negative) pairs ranked right (ties count half).
    rng = np.random.default_rng(0)
    scores = rng.permutation(np.arange(1, 40) / 40.0)
    labels = (rng.random(39) > 0.5).astype(float)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    pairs = (positives[:, None] > negatives[None, :]).mean()
    metric = metrics.AUC(thresholds=list(np.arange(1, 40) / 40.0 - 1 / 80.0))
    metric.update_state(labels, scores)
    assert metric.result().item() == pytest.approx(pairs, rel=1e-6)


def test_auc_multi_label_is_the_mean_of_the_columns():
    y_true = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
    y_pred = np.array([[0, 0.9], [0.5, 0.3], [0.3, 0.8], [0.9, 0.6]])
    joint = metrics.AUC(num_thresholds=3, multi_label=True)
    joint.update_state(y_true, y_pred)
    columns = []
    for column in range(2):
        single = metrics.AUC(num_thresholds=3)
        single.update_state(y_true[:, column], y_pred[:, column])
        columns.append(single.result().item())
    assert joint.result().item() == pytest.approx(np.mean(columns), rel=1e-6)
    saved = joint.state_dict()
    restored = metrics.AUC(num_thresholds=3, multi_label=True)
    restored.load_state_dict(saved)
    assert restored.result().item() == joint.result().item()


def test_auc_argument_checks():
    with pytest.raises(ValueError, match=r'^Invalid AUC curve value: "XY"\.'):
        metrics.AUC(curve="XY")
    with pytest.raises(ValueError, match=r"^Argument `num_thresholds` must be an integer > 1\. "
                       r"Received: num_thresholds=1$"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match=r"^`num_labels` is needed only when `multi_label` is "
                       r"True\.$"):
        metrics.AUC(num_labels=3)
