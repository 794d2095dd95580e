"""Sequence (PyDataset): seed 003's DataGenerator with and without worker processes, on_epoch_end, errors."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.data import PyDataset, get_adapter
from cadence.utils import Sequence  # was: from keras.utils import Sequence

# Seed 003's DataGenerator lives in examples/ with only its imports changed.
from examples.seed_003_custom_training import DataGenerator  # noqa: E402


@pytest.fixture
def sample_files(tmp_path, monkeypatch):
    """Twelve samples of shape (4, 1) as data/<ID>.npy in a temporary working directory."""
    (tmp_path / "data").mkdir()
    rng = np.random.default_rng(7)
    labels = {}
    for i in range(12):
        sample_id = f"sample-{i}"
        np.save(tmp_path / "data" / f"{sample_id}.npy", rng.normal(size=(4, 1)))
        labels[sample_id] = i % 3
    monkeypatch.chdir(tmp_path)
    return [f"sample-{i}" for i in range(12)], labels


class Classifier(cadence.Model):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Softmax(dim=-1))
        self.seen = []

    def forward(self, x):
        self.seen.append(x[:, 0, 0].tolist())
        return self.net(x)


def train_seed_generator(ids, labels, **loader):
    np.random.seed(0)
    torch.manual_seed(0)
    generator = DataGenerator(ids, labels, batch_size=4, dim=(4,), n_channels=1, n_classes=3,
                              shuffle=True)
    model = Classifier()
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.5),
                  loss="categorical_crossentropy", metrics=["accuracy"], device="cpu")
    history = model.fit(generator, epochs=2, verbose=0, **loader)
    return model, history


def test_seed_003_data_generator_same_weights_with_and_without_worker_processes(sample_files):
    ids, labels = sample_files
    in_process, history = train_seed_generator(ids, labels)
    in_workers, worker_history = train_seed_generator(ids, labels, workers=2, use_multiprocessing=True)
    assert len(in_process.seen) == 6
    assert in_workers.seen == in_process.seen
    # Batches come from the seed's shuffled indexes: the two epochs differ in order.
    assert in_process.seen[:3] != in_process.seen[3:]
    for a, b in zip(in_process.state_dict().values(), in_workers.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert worker_history.history == history.history


class Counting(PyDataset):
    def __init__(self, size=3, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.ends = 0

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        x = np.full((2, 1), float(index), dtype=np.float32)
        return x, x

    def on_epoch_end(self):
        self.ends += 1


def small_model():
    model = cadence.Sequential(nn.Linear(1, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    return model


@pytest.mark.parametrize("steps_per_epoch", [None, 2, 5])
def test_on_epoch_end_is_called_once_per_training_epoch(steps_per_epoch):
    data, validation = Counting(), Counting()
    # 3 batches a pass: with steps_per_epoch 2 or 5 some epoch runs out of data (Keras's warning).
    ran_out = pytest.warns(UserWarning, match="Your input ran out of data")
    with ran_out if steps_per_epoch else contextlib.nullcontext():
        small_model().fit(data, epochs=3, steps_per_epoch=steps_per_epoch, verbose=0,
                          validation_data=validation)
    assert data.ends == 3
    assert validation.ends == 0


def test_workers_come_from_the_sequence_or_from_fit():
    sequence = Counting(workers=3, use_multiprocessing=True, max_queue_size=7)
    adapter = get_adapter(sequence)
    assert (adapter.num_workers, adapter.max_queue_size) == (3, 7)
    assert get_adapter(sequence, workers=2).num_workers == 2
    assert get_adapter(sequence, use_multiprocessing=False).num_workers == 0
    assert get_adapter(Counting(workers=4)).num_workers == 0  # no processes without multiprocessing
    with pytest.raises(ValueError, match="workers must be an integer >= 0; received workers=-1"):
        Counting(workers=-1)


class Broken(Sequence):
    """A Sequence whose item ``bad`` is malformed in the way ``kind`` says."""

    def __init__(self, bad, kind):
        self.bad, self.kind = bad, kind

    def __len__(self):
        return 3

    def __getitem__(self, index):
        x = np.ones((2, 1), dtype=np.float32)
        if index != self.bad:
            return x, x
        return {
            "four": (x, x, x, x),
            "ragged": (x, np.ones((3, 1), dtype=np.float32)),
            "structure": x,
            "none": None,
            "text": (x, "label"),
        }[self.kind]


@pytest.mark.parametrize("bad, kind, message", [
    (1, "four", r"Broken.__getitem__\(1\) returned a tuple of 4 elements; expected x, \(x,\), "
                r"\(x, y\) or \(x, y, sample_weight\)"),
    (0, "ragged", r"Broken.__getitem__\(0\) returned parts with different batch sizes \[2, 3\]"),
    (2, "structure", r"Broken.__getitem__\(2\) returned a batch structured as tensor, but the "
                     r"first batch was \(tensor, tensor\)"),
    (0, "none", r"Broken.__getitem__\(0\) returned None"),
    (1, "text", r"Broken.__getitem__\(1\) returned a str \('label'\) inside the batch"),
])
def test_a_malformed_item_is_named_by_its_index(bad, kind, message):
    model = small_model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=message):
        model.fit(Broken(bad, kind), epochs=1, verbose=0)
    if bad == 0:  # the first batch is checked before the first step: nothing moved
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_an_empty_sequence_is_refused_before_any_work():
    with pytest.raises(ValueError, match="The data is empty: len\\(\\) of the Counting is 0"):
        small_model().fit(Counting(size=0), epochs=1, verbose=0)
