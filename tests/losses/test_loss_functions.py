import numpy as np
import pytest
import torch

from cadence import losses

EPS = 1e-7

Y_TRUE = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
Y_PRED = np.array([[0.5, 1.5, 1.0], [2.0, 1.0, 0.25]])


def t(array):
    return torch.tensor(np.asarray(array), dtype=torch.float64)


def check(loss, y_true, y_pred, expected_per_sample, **kwargs):
    got = loss(t(y_true), t(y_pred), **kwargs)
    np.testing.assert_allclose(got.numpy(), expected_per_sample, rtol=1e-10, atol=1e-12)
    assert got.shape == (len(expected_per_sample),)


def test_regression_functions_match_numpy():
    diff = Y_PRED - Y_TRUE
    check(losses.mean_squared_error, Y_TRUE, Y_PRED, np.mean(diff**2, axis=-1))
    check(losses.mean_absolute_error, Y_TRUE, Y_PRED, np.mean(np.abs(diff), axis=-1))
    mape = 100 * np.mean(np.abs(diff) / np.maximum(np.abs(Y_TRUE), EPS), axis=-1)
    check(losses.mean_absolute_percentage_error, Y_TRUE, Y_PRED, mape)
    msle = np.mean(
        (np.log1p(np.maximum(Y_PRED, EPS)) - np.log1p(np.maximum(Y_TRUE, EPS))) ** 2, axis=-1
    )
    check(losses.mean_squared_logarithmic_error, Y_TRUE, Y_PRED, msle)
    check(losses.log_cosh, Y_TRUE, Y_PRED, np.mean(np.log(np.cosh(diff)), axis=-1))


def test_huber_is_quadratic_then_linear():
    err = np.abs(Y_PRED - Y_TRUE)
    expected = np.mean(np.where(err <= 1.0, 0.5 * err**2, err - 0.5), axis=-1)
    check(losses.huber, Y_TRUE, Y_PRED, expected)
    delta = 0.6
    expected = np.mean(
        np.where(err <= delta, 0.5 * err**2, delta * err - 0.5 * delta**2), axis=-1
    )
    check(losses.huber, Y_TRUE, Y_PRED, expected, delta=delta)


def test_poisson_kld_and_cosine():
    rates = np.array([[0.5, 2.0], [1.0, 3.0]])
    counts = np.array([[1.0, 2.0], [0.0, 4.0]])
    check(losses.poisson, counts, rates, np.mean(rates - counts * np.log(rates + EPS), -1))
    p = np.array([[0.2, 0.8], [0.0, 1.0]])
    q = np.array([[0.5, 0.5], [0.3, 0.7]])
    pc, qc = np.clip(p, EPS, 1), np.clip(q, EPS, 1)
    check(losses.kl_divergence, p, q, np.sum(pc * np.log(pc / qc), axis=-1))
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0]])
    check(losses.cosine_similarity, a, b, np.array([-1.0, 1.0]))


def test_hinge_maps_zero_one_labels_to_signs():
    y_pred = np.array([[0.3, -2.0], [0.8, 1.5]])
    signs = np.array([[1.0, -1.0], [-1.0, 1.0]])
    expected = np.mean(np.maximum(1 - signs * y_pred, 0), axis=-1)
    check(losses.hinge, signs, y_pred, expected)
    check(losses.hinge, (signs + 1) / 2, y_pred, expected)
    check(losses.squared_hinge, signs, y_pred, np.mean(np.maximum(1 - signs * y_pred, 0) ** 2, -1))


def test_hinge_keeps_labels_that_are_not_binary():
    y_true = np.array([[2.0, 0.0]])
    y_pred = np.array([[0.25, 0.5]])
    check(losses.hinge, y_true, y_pred, np.array([np.mean(np.maximum(1 - y_true * y_pred, 0))]))


def test_binary_crossentropy_on_probabilities_clips():
    y_true = np.array([[1.0, 0.0], [1.0, 1.0]])
    y_pred = np.array([[0.9, 0.2], [1.0, 0.0]])
    p = np.clip(y_pred, EPS, 1 - EPS)
    expected = np.mean(-(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)), axis=-1)
    check(losses.binary_crossentropy, y_true, y_pred, expected)


def test_binary_crossentropy_from_logits_and_label_smoothing():
    y_true = np.array([[1.0], [0.0], [1.0]])
    logits = np.array([[2.0], [-30.0], [-1.0]])
    smoothed = y_true * 0.8 + 0.1
    p = 1 / (1 + np.exp(-logits))
    expected = -(smoothed * np.log(p) + (1 - smoothed) * np.log1p(-p))[:, 0]
    check(
        losses.binary_crossentropy, y_true, logits, expected, from_logits=True, label_smoothing=0.2
    )


def test_categorical_crossentropy_renormalises_and_smooths():
    y_true = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    y_pred = np.array([[0.2, 0.6, 0.2], [1.0, 1.0, 2.0]])
    probs = np.clip(y_pred / y_pred.sum(-1, keepdims=True), EPS, 1 - EPS)
    check(losses.categorical_crossentropy, y_true, y_pred, -np.sum(y_true * np.log(probs), -1))
    smooth = y_true * 0.7 + 0.1
    check(
        losses.categorical_crossentropy,
        y_true,
        y_pred,
        -np.sum(smooth * np.log(probs), -1),
        label_smoothing=0.3,
    )


def test_categorical_crossentropy_from_logits():
    y_true = np.array([[0.0, 1.0, 0.0]])
    logits = np.array([[1.0, 2.0, 0.5]])
    log_softmax = logits - np.log(np.sum(np.exp(logits)))
    check(losses.categorical_crossentropy, y_true, logits, [-log_softmax[0, 1]], from_logits=True)


def test_categorical_crossentropy_rejects_mismatched_shapes():
    with pytest.raises(
        ValueError,
        match=r"same shape for categorical crossentropy\. Received: y_true\.shape=\(2, 2\), "
        r"y_pred\.shape=\(2, 3\)",
    ):
        losses.categorical_crossentropy(torch.zeros(2, 2), torch.ones(2, 3))


def test_sparse_categorical_crossentropy_accepts_flat_and_column_labels():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    expected = -np.log(np.array([0.7, 0.8]))
    for labels in (np.array([0, 2]), np.array([[0], [2]])):
        got = losses.sparse_categorical_crossentropy(torch.tensor(labels), t(probs))
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_sparse_categorical_crossentropy_from_logits_is_stable():
    logits = torch.tensor([[1000.0, 0.0], [0.0, 1000.0]], dtype=torch.float64)
    got = losses.sparse_categorical_crossentropy(torch.tensor([1, 1]), logits, from_logits=True)
    np.testing.assert_allclose(got.numpy(), [1000.0, 0.0])


def test_sparse_categorical_crossentropy_zeroes_ignored_class():
    probs = t([[0.5, 0.5], [0.9, 0.1], [0.25, 0.75]])
    got = losses.sparse_categorical_crossentropy(
        torch.tensor([0, -1, 1]), probs, ignore_class=-1
    )
    np.testing.assert_allclose(got.numpy(), [-np.log(0.5), 0.0, -np.log(0.75)], rtol=1e-12)


def test_sparse_labels_with_wrong_shape_are_rejected():
    with pytest.raises(
        ValueError,
        match=r"without its class axis \(optionally with a trailing axis of 1\)\. "
        r"Received: y_true\.shape=\(3,\), y_pred\.shape=\(2, 4\)",
    ):
        losses.sparse_categorical_crossentropy(torch.tensor([0, 1, 2]), torch.ones(2, 4))


def test_extra_axes_are_averaged_per_sample():
    y_true = np.arange(12.0).reshape(2, 3, 2)
    y_pred = y_true + np.arange(12.0).reshape(2, 3, 2) / 4
    expected = np.mean((y_pred - y_true) ** 2, axis=(1, 2))
    check(losses.mean_squared_error, y_true, y_pred, expected)


def test_rank_one_inputs_are_one_value_per_sample():
    check(losses.mean_absolute_error, [1.0, 2.0, 3.0], [1.5, 2.0, 1.0], [0.5, 0.0, 2.0])


def test_column_predictions_meet_flat_targets():
    got = losses.mean_squared_error(torch.tensor([1.0, 2.0]), torch.tensor([[2.0], [4.0]]))
    assert got.tolist() == [1.0, 4.0]


def test_integer_and_bool_targets_are_cast_to_prediction_dtype():
    got = losses.binary_crossentropy(torch.tensor([True, False]), torch.tensor([[0.5], [0.5]]))
    assert got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), [np.log(2.0)] * 2, rtol=1e-6)
    got = losses.mean_squared_error(torch.tensor([1, 3]), torch.tensor([[2.0], [2.0]]))
    assert got.tolist() == [1.0, 1.0]


def test_numpy_inputs_are_accepted():
    got = losses.mean_absolute_error(np.array([[1.0, 2.0]]), np.array([[2.0, 4.0]]))
    assert got.tolist() == [1.5]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_predictions_are_computed_in_float32(dtype):
    y_pred = torch.tensor([[0.1, 0.7, 0.2]], dtype=dtype)
    got = losses.sparse_categorical_crossentropy(torch.tensor([1]), y_pred)
    assert got.dtype == torch.float32
    expected = -np.log(y_pred.float().numpy()[0, 1] / y_pred.float().numpy().sum())
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert losses.mean_squared_error(torch.ones(2), y_pred[:, :2].T).dtype == torch.float32
