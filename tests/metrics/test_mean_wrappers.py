"""Hinge, probabilistic, similarity and correlation metrics: Keras's documented examples."""

import numpy as np
import pytest

from cadence import metrics

Y_TRUE = [[0, 1], [0, 0]]
Y_PRED = [[0.6, 0.4], [0.4, 0.6]]


@pytest.mark.parametrize(("cls", "plain", "weighted"), [
    (metrics.Hinge, 1.3, 1.1),
    (metrics.SquaredHinge, 1.86, 1.46),
    (metrics.CategoricalHinge, 1.4, 1.2),
    (metrics.KLDivergence, 0.45814306, 0.9162892),
])
def test_keras_examples_on_the_same_batch(cls, plain, weighted):
    metric = cls()
    metric.update_state(Y_TRUE, Y_PRED)
    assert metric.result().item() == pytest.approx(plain, rel=1e-5)
    metric.reset_state()
    metric.update_state(Y_TRUE, Y_PRED, sample_weight=[1, 0])
    assert metric.result().item() == pytest.approx(weighted, rel=1e-5)


def test_poisson_and_logcosh_keras_examples():
    poisson, logcosh = metrics.Poisson(), metrics.LogCoshError()
    for metric in (poisson, logcosh):
        metric.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
    assert poisson.result().item() == pytest.approx(0.49999997, rel=1e-6)
    assert logcosh.result().item() == pytest.approx(0.10844523, rel=1e-6)
    assert logcosh.name == "logcosh"


def test_cosine_similarity_keras_example():
    metric = metrics.CosineSimilarity(axis=1)
    metric.update_state([[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]])
    assert metric.result().item() == pytest.approx(0.5, rel=1e-6)
    metric.reset_state()
    metric.update_state([[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]],
                        sample_weight=[0.3, 0.7])
    assert metric.result().item() == pytest.approx(0.7, rel=1e-6)


def test_pearson_and_concordance_by_hand():
    y_true = np.array([[1.0, 2.0, 3.0, 4.0]])
    y_pred = np.array([[2.0, 4.0, 5.0, 9.0]])
    pearson = metrics.PearsonCorrelation()
    pearson.update_state(y_true, y_pred)
    assert pearson.result().item() == pytest.approx(np.corrcoef(y_true[0], y_pred[0])[0, 1],
                                                    rel=1e-6)
    # Keras's formula: mean(2 (t - mean(p)) (p - mean(p)) / (var t + var p + (mean t - mean p)^2)).
    t, p = y_true[0], y_pred[0]
    expected = np.mean(2 * (t - p.mean()) * (p - p.mean())
                       / (t.var() + p.var() + (t.mean() - p.mean()) ** 2 + 1e-7))
    concordance = metrics.ConcordanceCorrelation()
    concordance.update_state(y_true, y_pred)
    assert concordance.result().item() == pytest.approx(expected, rel=1e-6)
