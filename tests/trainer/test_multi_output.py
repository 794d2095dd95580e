"""Multi-output models: per-output losses, loss_weights and metrics under Keras's log keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence

RNG = np.random.default_rng(2)
X = RNG.normal(size=(8, 3)).astype(np.float32)
Y1 = RNG.normal(size=(8, 1)).astype(np.float32)
Y2 = RNG.normal(size=(8, 2)).astype(np.float32)
W1 = np.array([[0.5], [-1.0], [2.0]], dtype=np.float32)
W2 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]], dtype=np.float32)
P1, P2 = X @ W1, X @ W2
MSE1, MAE1 = float(np.mean((P1 - Y1) ** 2)), float(np.mean(np.abs(P1 - Y1)))
MSE2, MAE2 = float(np.mean((P2 - Y2) ** 2)), float(np.mean(np.abs(P2 - Y2)))


class TwoHeads(cadence.Model):
    """Two linear heads with fixed weights; returns a tuple, or a dict keyed main/aux."""

    def __init__(self, as_dict=False):
        super().__init__()
        self.as_dict = as_dict
        self.head1 = nn.Linear(3, 1, bias=False)
        self.head2 = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.head1.weight.copy_(torch.from_numpy(W1.T))
            self.head2.weight.copy_(torch.from_numpy(W2.T))

    def forward(self, x):
        a, b = self.head1(x), self.head2(x)
        return {"main": a, "aux": b} if self.as_dict else (a, b)


def build(as_dict=False, **compile_args):
    model = TwoHeads(as_dict)
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.0), device="cpu", **compile_args)
    return model


def test_tuple_outputs_log_output_n_keys_with_loss_weights():
    model = build(loss=["mse", "mae"], loss_weights=[1.0, 0.5], metrics=["mean_absolute_error"])
    history = model.fit(X, (Y1, Y2), batch_size=8, epochs=1, verbose=0)
    expected = {
        "loss": MSE1 + 0.5 * MAE2,
        "output_1_loss": MSE1,
        "output_2_loss": MAE2,
        "output_1_mean_absolute_error": MAE1,
        "output_2_mean_absolute_error": MAE2,
    }
    assert list(history.history) == sorted(expected)  # Keras 3 hands callbacks logs sorted by key.
    assert {k: v[0] for k, v in history.history.items()} == pytest.approx(expected, rel=1e-5)
    assert model.metrics_names == list(expected)
    values = model.evaluate(X, [Y1, Y2], batch_size=3, verbose=0)
    assert values == pytest.approx(list(expected.values()), rel=1e-5)


def test_dict_outputs_use_their_keys_for_losses_weights_metrics_and_targets():
    model = build(as_dict=True, loss={"main": "mse", "aux": "mse"}, loss_weights={"aux": 2.0},
                  metrics={"main": ["mae"], "aux": ["mse"]})
    logs = model.evaluate(X, {"aux": Y2, "main": Y1}, batch_size=8, verbose=0, return_dict=True)
    assert logs == pytest.approx({
        "loss": MSE1 + 2.0 * MSE2, "main_loss": MSE1, "aux_loss": MSE2, "main_mae": MAE1, "aux_mse": MSE2,
    }, rel=1e-5)
    predicted = model.predict(X, batch_size=3, verbose=0)
    assert sorted(predicted) == ["aux", "main"]
    np.testing.assert_allclose(predicted["main"], P1, rtol=1e-6)
    np.testing.assert_allclose(predicted["aux"], P2, rtol=1e-6)


def test_one_loss_and_a_flat_metric_list_apply_to_every_output():
    model = build(loss="mae", metrics=["mse"])
    logs = model.evaluate(X, (Y1, Y2), batch_size=8, verbose=0, return_dict=True)
    assert logs == pytest.approx({"loss": MAE1 + MAE2, "output_1_loss": MAE1, "output_2_loss": MAE2,
                                  "output_1_mse": MSE1, "output_2_mse": MSE2}, rel=1e-5)
    predicted = model.predict(X, verbose=0)
    assert isinstance(predicted, tuple) and [p.shape for p in predicted] == [(8, 1), (8, 2)]


def test_an_output_without_a_loss_is_not_trained_on_and_has_no_loss_key():
    model = build(as_dict=True, loss={"main": "mse"})
    logs = model.evaluate(X, {"main": Y1, "aux": Y2}, batch_size=8, verbose=0, return_dict=True)
    assert logs == pytest.approx({"loss": MSE1, "main_loss": MSE1}, rel=1e-5)


def test_per_output_sample_weight_and_weighted_metrics():
    weights = np.array([1.0, 0.0] * 4, dtype=np.float32)
    model = build(loss=["mse", "mse"], weighted_metrics=["mae"])
    logs = model.evaluate(X, (Y1, Y2), sample_weight=(weights, np.ones(8, np.float32)), batch_size=8,
                          verbose=0, return_dict=True)
    kept = weights == 1.0
    assert logs["output_1_loss"] == pytest.approx(float(np.sum((P1 - Y1)[kept] ** 2) / 8), rel=1e-5)
    assert logs["output_2_loss"] == pytest.approx(MSE2, rel=1e-5)
    assert logs["output_1_mae"] == pytest.approx(float(np.mean(np.abs(P1 - Y1)[kept])), rel=1e-5)
    assert logs["output_2_mae"] == pytest.approx(MAE2, rel=1e-5)


@pytest.mark.parametrize("as_dict, compile_args, y, message", [
    (False, dict(loss="mse"), Y1, r"The model returns 2 outputs \['output_1', 'output_2'\] but y is a "
                                  "single ndarray|but y is a single Tensor"),
    (False, dict(loss="mse"), (Y1, Y2, Y2), r"y has 3 entries but the model returns 2 outputs"),
    (False, dict(loss=["mse", "mse", "mae"]), (Y1, Y2), "loss is a list of 3 losses but the model "
                                                        "returns 2 outputs"),
    (False, dict(loss="mse", loss_weights=[1.0]), (Y1, Y2), r"loss_weights has 1 entries but the model "
                                                            r"returns 2 outputs \['output_1', 'output_2'\]"),
    (True, dict(loss={"main": "mse", "extra": "mse"}), {"main": Y1, "aux": Y2},
     r"loss names outputs \['extra'\] that the model does not return"),
    (True, dict(loss="mse", loss_weights={"mian": 1.0}), {"main": Y1, "aux": Y2},
     r"loss_weights names outputs \['mian'\] that the model does not return"),
    (True, dict(loss="mse"), {"main": Y1}, r"y is a dict with keys \['main'\], but the model's outputs "
                                           r"are \['main', 'aux'\]; missing \['aux'\]"),
])
def test_mismatched_structures_are_named(as_dict, compile_args, y, message):
    model = build(as_dict=as_dict, **compile_args)
    with pytest.raises(ValueError, match=message):
        model.fit(X, y, batch_size=8, epochs=1, verbose=0)


def test_a_single_output_accepts_a_one_element_loss_list_and_weight():
    model = cadence.Sequential(nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        model.module[0].weight.copy_(torch.from_numpy(W1.T))
    model.compile(optimizer="sgd", loss=["mse"], loss_weights=[3.0], device="cpu")
    logs = model.evaluate(X, Y1, batch_size=8, verbose=0, return_dict=True)
    assert logs == pytest.approx({"loss": 3.0 * MSE1}, rel=1e-5)
