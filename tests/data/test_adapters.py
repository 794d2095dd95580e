"""Every input kind through fit, evaluate and predict: the batches the model saw, and the logs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.data import Sequence, get_adapter
from cadence.data import array_adapter as adapters_module
from cadence.data.adapters import (
    ArrayAdapter,
    DataLoaderAdapter,
    DatasetAdapter,
    IterableAdapter,
    IterableDatasetAdapter,
    SequenceAdapter,
    pass_generator,
)

N, BATCH = 10, 4
IDS = np.arange(N, dtype=np.float32)
X = np.stack([IDS, np.zeros(N, np.float32)], axis=1)  # column 0 identifies the sample
Y = (2 * IDS)[:, None]
EXPECTED_BATCHES = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
# y_pred = x[:, 0] = id and y = 2 * id: mse = mean(id^2) = 28.5, mae = mean(id) = 4.5.
LOSS, MAE = float(np.mean(IDS**2)), float(np.mean(IDS))


class Recorder(cadence.Model):
    """y = x[:, 0] (frozen by lr=0); records the ids of every batch it sees, per mode."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(2, 1)
        with torch.no_grad():
            self.dense.weight.copy_(torch.tensor([[1.0, 0.0]]))
            self.dense.bias.zero_()
        self.seen = {"train": [], "eval": []}

    def forward(self, x):
        self.seen["train" if self.training else "eval"].append(x[:, 0].long().tolist())
        return self.dense(x)


def compiled():
    model = Recorder()
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.0), loss="mse",
                  metrics=["mae"], device="cpu")
    return model


def batches():
    return [(torch.from_numpy(X[i:i + BATCH]), torch.from_numpy(Y[i:i + BATCH]))
            for i in range(0, N, BATCH)]


class Batches(Sequence):
    def __len__(self):
        return 3

    def __getitem__(self, index):
        return X[index * BATCH:(index + 1) * BATCH], Y[index * BATCH:(index + 1) * BATCH]


class Samples(torch.utils.data.IterableDataset):
    def __init__(self, with_y=True):
        self.with_y = with_y

    def __iter__(self):
        for i in range(N):
            yield (torch.from_numpy(X[i]), torch.from_numpy(Y[i])) if self.with_y else torch.from_numpy(X[i])


def generator(with_y=True):
    for x, y in batches():
        yield (x, y) if with_y else x


# Each kind: (fit/evaluate arguments, predict argument), built fresh for every call.
KINDS = {
    "numpy": lambda: ((X, Y, BATCH), X),
    "tensor": lambda: ((torch.from_numpy(X), torch.from_numpy(Y), BATCH), torch.from_numpy(X)),
    "Dataset": lambda: (
        (torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), None, BATCH),
        torch.utils.data.TensorDataset(torch.from_numpy(X)),
    ),
    "IterableDataset": lambda: ((Samples(), None, BATCH), Samples(with_y=False)),
    "DataLoader": lambda: (
        (torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)), batch_size=BATCH),
         None, None),
        torch.utils.data.DataLoader(torch.from_numpy(X), batch_size=BATCH),
    ),
    "generator": lambda: ((generator(), None, None), generator(with_y=False)),
    "iterator": lambda: ((iter(batches()), None, None), iter([(x,) for x, _ in batches()])),
    "Sequence": lambda: ((Batches(), None, None), Batches()),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_through_fit_evaluate_predict(kind):
    model = compiled()
    (x, y, batch_size), _ = KINDS[kind]()
    history = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    assert model.seen == {"train": EXPECTED_BATCHES, "eval": []}
    assert history.history["loss"] == [pytest.approx(LOSS, rel=1e-6)]
    assert history.history["mae"] == [pytest.approx(MAE, rel=1e-6)]

    model.seen = {"train": [], "eval": []}
    (x, y, batch_size), predict_x = KINDS[kind]()
    logs = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    assert model.seen == {"train": [], "eval": EXPECTED_BATCHES}
    assert logs == {"loss": pytest.approx(LOSS, rel=1e-6), "mae": pytest.approx(MAE, rel=1e-6)}

    model.seen = {"train": [], "eval": []}
    predicted = model.predict(predict_x, batch_size=batch_size, verbose=0)
    assert model.seen == {"train": [], "eval": EXPECTED_BATCHES}
    assert isinstance(predicted, np.ndarray)
    np.testing.assert_array_equal(predicted, IDS[:, None])


def test_factory_picks_one_adapter_per_kind():
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X))
    assert type(get_adapter(X)) is ArrayAdapter
    assert type(get_adapter((X, X), Y)) is ArrayAdapter
    assert type(get_adapter(dataset)) is DatasetAdapter
    assert type(get_adapter(Samples())) is IterableDatasetAdapter
    assert type(get_adapter(torch.utils.data.DataLoader(dataset))) is DataLoaderAdapter
    assert type(get_adapter(generator())) is IterableAdapter
    assert type(get_adapter(Batches())) is SequenceAdapter
    with pytest.raises(TypeError, match="x must be arrays or tensors .* received str"):
        get_adapter("data.csv")
    with pytest.raises(ValueError, match="y and sample_weight must be None when x is a TensorDataset"):
        get_adapter(dataset, Y)


class TwoInputs(cadence.Model):
    """forward(inputs) receives the whole structure, as Keras's call(inputs)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.received = []

    def forward(self, inputs):
        self.received.append(type(inputs).__name__)
        if isinstance(inputs, dict):
            a, b = inputs["a"], inputs["b"]
        else:
            a, b = inputs
        return self.scale * (a + b)


@pytest.mark.parametrize("structure", ["tuple", "list", "dict"])
def test_multi_input_structure_reaches_forward_as_one_argument(structure):
    a = np.arange(6, dtype=np.float32)[:, None]
    b = 10 * a
    x = {"tuple": (a, b), "list": [a, b], "dict": {"a": a, "b": b}}[structure]
    model = TwoInputs()
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.0), loss="mse", device="cpu")
    history = model.fit(x, 11 * a, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"] == [0.0]
    np.testing.assert_array_equal(model.predict(x, batch_size=4, verbose=0), 11 * a)
    assert model.received == [structure] * 4


class _RunKeeper(cadence.callbacks.Callback):
    """Keeps the run's state that fit hands to callbacks (self.run)."""


def test_shuffle_is_a_seeded_permutation_per_pass_and_validation_split_takes_the_last_samples():
    model = compiled()
    run = _RunKeeper()
    history = model.fit(X, Y, batch_size=BATCH, epochs=3, shuffle=True, validation_split=0.2, verbose=0,
                        callbacks=[run])
    seed = run.run.data_seed
    train = model.seen["train"]
    assert [len(b) for b in train] == [4, 4] * 3
    for epoch in range(3):
        order = torch.randperm(8, generator=pass_generator(seed, epoch)).tolist()
        assert train[2 * epoch] + train[2 * epoch + 1] == order
    assert model.seen["eval"] == [[8, 9]] * 3
    assert len(history.history["val_loss"]) == 3
    assert history.history["val_loss"][0] == pytest.approx(float(np.mean(IDS[8:] ** 2)))

    torch.manual_seed(0)
    again = compiled()
    again.fit(X, Y, batch_size=BATCH, epochs=3, shuffle=True, validation_split=0.2, verbose=0)
    assert again.seen["train"] == train


def test_shuffle_false_keeps_the_order():
    model = compiled()
    model.fit(X, Y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    assert model.seen["train"] == EXPECTED_BATCHES * 2


def test_dataset_is_shuffled_with_the_same_seeded_order_as_arrays():
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    from_arrays, from_dataset = compiled(), compiled()
    torch.manual_seed(3)
    from_arrays.fit(X, Y, batch_size=BATCH, epochs=2, verbose=0)
    torch.manual_seed(3)
    from_dataset.fit(dataset, batch_size=BATCH, epochs=2, verbose=0)
    assert from_dataset.seen == from_arrays.seen
    assert sorted(sum(from_dataset.seen["train"][:3], [])) == list(range(N))
    assert from_dataset.seen["train"][:3] != EXPECTED_BATCHES


def test_steps_per_epoch_continues_where_the_last_epoch_stopped_and_ends_with_the_data():
    # Keras 3: the next epoch reads on from the same pass; a pass that runs out ends its epoch
    # (with Keras's warning) and the next epoch starts a fresh pass.
    model = compiled()
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        history = model.fit(X, Y, batch_size=BATCH, epochs=3, steps_per_epoch=2, shuffle=False,
                            verbose=0)
    assert model.seen["train"] == EXPECTED_BATCHES + EXPECTED_BATCHES[:2]
    assert len(history.history["loss"]) == 3

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y)),
        batch_size=BATCH, shuffle=True)
    model = compiled()
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        model.fit(loader, epochs=3, steps_per_epoch=2, verbose=0)
    seen = model.seen["train"]
    assert len(seen) == 5
    # One live iterator: the first three batches are one whole shuffled pass, not restarts.
    assert sorted(sum(seen[:3], [])) == list(range(N))
    assert len(set(sum(seen[3:], []))) == 8


def test_generator_with_steps_per_epoch_spans_epochs_and_warns_when_it_runs_out():
    model = compiled()
    history = model.fit(generator(), epochs=3, steps_per_epoch=1, verbose=0)
    assert model.seen["train"] == EXPECTED_BATCHES
    assert len(history.history["loss"]) == 3

    model = compiled()
    with pytest.warns(UserWarning, match="Your input ran out of data; interrupting training"):
        history = model.fit(generator(), epochs=3, steps_per_epoch=2, verbose=0)
    assert model.seen["train"] == EXPECTED_BATCHES
    assert len(history.history["loss"]) == 2


class EpochLog(cadence.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.begun, self.ended = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.begun.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.ended.append((epoch, "val_loss" in logs))


def test_initial_epoch_runs_the_remaining_epochs():
    model = compiled()
    callback = EpochLog()
    history = model.fit(X, Y, batch_size=BATCH, epochs=3, initial_epoch=1, shuffle=False,
                        verbose=0, callbacks=[callback])
    assert callback.begun == [1, 2]
    assert len(history.history["loss"]) == 2
    assert model.seen["train"] == EXPECTED_BATCHES * 2


@pytest.mark.parametrize("kind", ["tuple", "Dataset", "DataLoader", "Sequence", "generator"])
def test_validation_data_kinds_steps_and_batch_size(kind):
    tensors = (torch.from_numpy(X), torch.from_numpy(Y))
    validation = {
        "tuple": lambda: (X, Y),
        "Dataset": lambda: torch.utils.data.TensorDataset(*tensors),
        "DataLoader": lambda: torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors),
                                                          batch_size=BATCH),
        "Sequence": Batches,
        "generator": generator,
    }[kind]()
    model = compiled()
    steps = 1 if kind == "generator" else None
    history = model.fit(X[:4], Y[:4], batch_size=4, epochs=2, verbose=0, validation_data=validation,
                        validation_steps=steps, validation_batch_size=BATCH)
    expected = [[0, 1, 2, 3], [4, 5, 6, 7]] if kind == "generator" else EXPECTED_BATCHES * 2
    assert model.seen["eval"] == expected
    if kind != "generator":
        assert history.history["val_loss"] == [pytest.approx(LOSS, rel=1e-6)] * 2
        assert history.history["val_mae"] == [pytest.approx(MAE, rel=1e-6)] * 2


def test_validation_batch_size_and_validation_steps_on_arrays():
    model = compiled()
    model.fit(X[:2], Y[:2], batch_size=2, epochs=1, verbose=0, validation_data=(X, Y),
              validation_batch_size=3, validation_steps=2)
    assert model.seen["eval"] == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("freq, validated", [(2, [1, 3]), ([1, 4], [0, 3]), (1, [0, 1, 2, 3])])
def test_validation_freq(freq, validated):
    callback = EpochLog()
    model = compiled()
    model.fit(X[:4], Y[:4], batch_size=4, epochs=4, verbose=0, validation_data=(X[:2], Y[:2]),
              validation_freq=freq, callbacks=[callback])
    assert callback.ended == [(epoch, epoch in validated) for epoch in range(4)]
    assert model.seen["eval"] == [[0, 1]] * len(validated)


def test_pandas_like_objects_are_read_through_to_numpy():
    class Frame:
        def __init__(self, values):
            self.values = values
            self.shape = values.shape

        def to_numpy(self):
            return self.values

    model = compiled()
    model.fit(Frame(X), Frame(Y), batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    assert model.seen["train"] == EXPECTED_BATCHES


def test_a_dataset_loaded_by_worker_processes_gives_the_same_batches():
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(Y))
    in_process, in_workers = compiled(), compiled()
    torch.manual_seed(4)
    in_process.fit(dataset, batch_size=BATCH, epochs=1, verbose=0)
    torch.manual_seed(4)
    in_workers.fit(dataset, batch_size=BATCH, epochs=1, verbose=0, workers=2, use_multiprocessing=True)
    assert in_workers.seen == in_process.seen
    assert get_adapter(dataset, workers=2, use_multiprocessing=True).num_workers == 2


@pytest.mark.parametrize("with_weights", [False, True])
def test_data_on_a_device_is_gathered_there_with_the_order_moved_once_per_pass(
    monkeypatch, with_weights
):
    # The "meta" device stands in for a GPU: tensors that live off the CPU.
    moves = []
    original = adapters_module._to_device_once

    def counted(order, device):
        moves.append(device.type)
        return original(order, device)

    monkeypatch.setattr(adapters_module, "_to_device_once", counted)
    x = torch.empty(40, 3, device="meta")
    y = torch.empty(40, device="meta")
    weights = torch.empty(40, device="meta") if with_weights else None
    adapter = ArrayAdapter(x, y, weights, batch_size=8, shuffle=True, seed=3, pin_memory=True)
    for pass_index in range(2):
        batches = list(adapter.iterate(pass_index))
        assert len(batches) == 5
        assert all(part.device.type == "meta" and part.shape[0] == 8 for part in batches[0])
    assert moves == ["meta", "meta"]
