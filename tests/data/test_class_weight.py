"""class_weight: per-sample weights from classes, Keras's rules, every input kind, and recall."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

import cadence
from cadence.data.class_weight import (
    apply_class_weight,
    check_class_weight,
    sample_weight_from_class_weight,
)


@pytest.mark.parametrize("y", [
    np.array([0, 2, 1, 2]),
    np.array([[0], [2], [1], [2]], dtype=np.float32),
    np.eye(3, dtype=np.float32)[[0, 2, 1, 2]],
    np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.2, 0.5, 0.3], [0.0, 0.4, 0.6]]),
])
def test_the_class_is_the_label_the_squeezed_column_or_the_argmax(y):
    weights = sample_weight_from_class_weight(y, {0: 0.5, 1: 2.0, 2: 3.0})
    assert weights.tolist() == [0.5, 3.0, 2.0, 3.0]


def test_a_class_without_a_weight_and_a_negative_label_get_one():
    weights = sample_weight_from_class_weight(torch.tensor([0, 1, 5, -1]), {0: 4.0})
    assert weights.tolist() == [4.0, 1.0, 1.0, 1.0]


def test_check_class_weight_accepts_numpy_keys_and_refuses_bad_entries():
    assert check_class_weight({np.int64(1): np.float64(2.5), 0: 1}) == {1: 2.5, 0: 1.0}
    with pytest.raises(TypeError, match="class_weight must be a dict mapping class indices to weights; "
                                        "received list"):
        check_class_weight([1.0, 2.0])
    with pytest.raises(ValueError, match="class_weight keys must be integer class indices; received key 'cat'"):
        check_class_weight({"cat": 1.0})
    with pytest.raises(ValueError, match=r"class_weight keys must be integer class indices >= 0; received key -1"):
        check_class_weight({-1: 1.0})
    with pytest.raises(ValueError, match="class_weight values must be numbers; received 'high' for class 1"):
        check_class_weight({1: "high"})


def test_class_weight_needs_a_single_output_and_no_weights_of_its_own():
    with pytest.raises(ValueError, match="class_weight is only supported for a single output; the targets are a tuple"):
        sample_weight_from_class_weight((np.zeros(2), np.zeros(2)), {0: 1.0})
    with pytest.raises(ValueError, match="class_weight cannot be used with data whose batches carry their own"):
        apply_class_weight((torch.ones(2, 1), torch.zeros(2), torch.ones(2)), {0: 2.0})
    x = torch.ones(2, 1)
    assert apply_class_weight((x,), {0: 2.0}) == (x,)


def linear(seed=0):
    torch.manual_seed(seed)
    model = cadence.Sequential(nn.Linear(2, 3))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.1),
                  loss=cadence.losses.SparseCategoricalCrossentropy(from_logits=True), device="cpu")
    return model


def test_class_weight_is_the_same_through_arrays_sample_weight_dataloader_and_generator():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 2)).astype(np.float32)
    y = np.array([0, 1, 2, 2] * 3)
    table = {0: 0.5, 2: 4.0}
    reference = linear()
    reference.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0,
                  sample_weight=np.array([table.get(c, 1.0) for c in y], dtype=np.float32))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=4)
    generator = ((x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4))
    for data, target in ((x, y), (loader, None), (generator, None)):
        model = linear()
        model.fit(data, target, batch_size=4 if target is not None else None, epochs=1,
                  shuffle=False, verbose=0, class_weight=table)
        for a, b in zip(reference.parameters(), model.parameters(), strict=True):
            assert torch.equal(a, b)


def test_class_weight_with_batches_that_carry_sample_weight_fails_before_the_first_step():
    model = linear()
    before = [p.detach().clone() for p in model.parameters()]
    batches = iter([(np.ones((2, 2), np.float32), np.array([0, 1]), np.ones(2, np.float32))])
    with pytest.raises(ValueError, match="class_weight cannot be used with data whose batches carry"):
        model.fit(batches, epochs=1, verbose=0, class_weight={0: 1.0})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def recall_of_rare_class(class_weight):
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0.0, 1.0, size=(90, 2)), rng.normal(0.8, 1.0, size=(10, 2))])
    y = np.array([0] * 90 + [1] * 10)
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(2, 2))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.5),
                  loss=cadence.losses.SparseCategoricalCrossentropy(from_logits=True), device="cpu")
    model.fit(x.astype(np.float32), y, batch_size=100, epochs=60, shuffle=False, verbose=0,
              class_weight=class_weight)
    predicted = model.predict(x.astype(np.float32), verbose=0).argmax(axis=1)
    return float(np.mean(predicted[y == 1] == 1))


def test_balanced_class_weight_from_scikit_learn_raises_the_recall_of_a_rare_class():
    y = np.array([0] * 90 + [1] * 10)
    # Seed 003's generate_class_weights, on integer labels.
    labels = np.unique(y)
    weights = dict(zip(labels, compute_class_weight(class_weight="balanced", classes=labels, y=y),
                       strict=True))
    assert weights == {0: pytest.approx(100 / 180), 1: pytest.approx(5.0)}
    unweighted = recall_of_rare_class(None)
    weighted = recall_of_rare_class(weights)
    # Deterministic (fixed data, init and order); 1 of the 10 rare samples found without
    # weights, 8 of 10 with them.
    assert (unweighted, weighted) == (0.1, 0.8)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_negative_or_non_finite_class_weight_is_refused(bad):
    from cadence.data.class_weight import check_class_weight

    with pytest.raises(ValueError, match=r"class_weight values must be finite numbers >= 0; received .* for class 0."):
        check_class_weight({0: bad, 1: 1.0})
