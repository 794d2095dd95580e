"""sample_weight: as an array or as the third element of a batch; zero moves nothing; weighted metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.data import Sequence

RNG = np.random.default_rng(1)
X = RNG.normal(size=(12, 3)).astype(np.float32)
Y = RNG.normal(size=(12, 1)).astype(np.float32)
FIRST_ONLY = np.array([1.0] * 4 + [0.0] * 8, dtype=np.float32)


def model(**compile_args):
    torch.manual_seed(0)
    net = cadence.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    # Plain SGD: a zero gradient is an exact no-op (momentum or Adam would keep moving).
    net.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.1), loss="mse", device="cpu",
                **compile_args)
    return net


def same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def weighted_batches():
    for i in range(0, 12, 4):
        yield X[i:i + 4], Y[i:i + 4], FIRST_ONLY[i:i + 4]


class WeightedBatches(Sequence):
    def __len__(self):
        return 3

    def __getitem__(self, index):
        part = slice(4 * index, 4 * index + 4)
        return X[part], Y[part], FIRST_ONLY[part]


def test_zero_weight_on_all_but_the_first_batch_equals_training_on_the_first_batch_alone():
    # torch.equal, not allclose: multiplying a loss by 1.0 or 0.0 is exact in floating point,
    # the zero-weighted batches give exactly zero gradients, and SGD adds exactly zero, so
    # nothing can differ by even one bit. (Same order matters: a shuffled batch of the same
    # four samples sums in another order and differs in the last bit.)
    alone = model()
    alone.fit(X[:4], Y[:4], batch_size=4, epochs=1, shuffle=False, verbose=0)
    alone_weighted = model()
    alone_weighted.fit(X[:4], Y[:4], sample_weight=np.ones(4, np.float32), batch_size=4, epochs=1,
                       shuffle=False, verbose=0)
    assert same(alone, alone_weighted)

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*map(torch.from_numpy, (X, Y, FIRST_ONLY))), batch_size=4)
    sources = {
        "array": dict(x=X, y=Y, sample_weight=FIRST_ONLY, batch_size=4, shuffle=False),
        "column": dict(x=X, y=Y, sample_weight=FIRST_ONLY[:, None], batch_size=4, shuffle=False),
        "generator": dict(x=weighted_batches(), steps_per_epoch=3),
        "Sequence": dict(x=WeightedBatches()),
        "DataLoader": dict(x=loader),
    }
    untouched = model()
    for name, arguments in sources.items():
        trained = model()
        trained.fit(epochs=1, verbose=0, **arguments)
        assert same(trained, alone), name
        assert not same(trained, untouched), name


def test_all_zero_weights_move_nothing():
    trained, untouched = model(), model()
    trained.fit(X, Y, sample_weight=np.zeros(12, np.float32), batch_size=4, epochs=2, verbose=0)
    assert same(trained, untouched)


def test_weighted_metrics_use_the_weights_and_metrics_do_not():
    net = model(metrics=["mae"], weighted_metrics=["mae", "mse"])
    weights = np.array([0.0, 1.0, 2.0, 3.0] * 3, dtype=np.float32)
    logs = net.evaluate(X, Y, sample_weight=weights, batch_size=5, verbose=0, return_dict=True)
    error = net.predict(X, verbose=0) - Y
    assert sorted(logs) == ["loss", "mae", "mse", "weighted_mae"]
    assert logs["mae"] == pytest.approx(float(np.mean(np.abs(error))), rel=1e-5)
    assert logs["weighted_mae"] == pytest.approx(
        float(np.sum(weights * np.abs(error[:, 0])) / weights.sum()), rel=1e-5)
    assert logs["mse"] == pytest.approx(float(np.sum(weights * error[:, 0] ** 2) / weights.sum()), rel=1e-5)
    # The loss divides by the number of samples (Keras's sum_over_batch_size), batch by batch.
    expected = [np.sum(weights[i:i + 5] * error[i:i + 5, 0] ** 2) / len(weights[i:i + 5])
                for i in range(0, 12, 5)]
    sizes = [5, 5, 2]
    assert logs["loss"] == pytest.approx(float(np.dot(expected, sizes) / 12), rel=1e-5)


def test_sample_weight_must_match_the_number_of_samples():
    with pytest.raises(ValueError, match="Data cardinality is ambiguous: .* Received x: 12, y: 12, "
                                         "sample_weight: 11"):
        model().fit(X, Y, sample_weight=np.ones(11), verbose=0)
