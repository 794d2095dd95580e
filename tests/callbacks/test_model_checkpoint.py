"""ModelCheckpoint: file names, best-only decisions, thresholds, batch frequency, formats, state."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import cadence
from cadence import io
from cadence.callbacks import ModelCheckpoint


def make_model(seed=0):
    torch.manual_seed(seed)
    model = cadence.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    model.compile(optimizer=cadence.optimizers.Adam(learning_rate=0.01), loss="mse")
    return model


def data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


def drive_epochs(callback, model, logs_per_epoch):
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, logs in enumerate(logs_per_epoch):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, dict(logs))
    callback.on_train_end()


def files(folder):
    return sorted(os.listdir(folder))


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_templated_file_names_every_epoch(tmp_path):
    callback = ModelCheckpoint(str(tmp_path / "ckpt" / "{epoch:02d}-{val_loss:.2f}.pt"))
    drive_epochs(callback, make_model(), [{"val_loss": 0.5}, {"val_loss": 0.6}, {"val_loss": 0.123}])
    assert files(tmp_path / "ckpt") == ["01-0.50.pt", "02-0.60.pt", "03-0.12.pt"]


def test_save_best_only_decisions_and_messages(tmp_path, capsys):
    callback = ModelCheckpoint(tmp_path / "{epoch}.pt", save_best_only=True, verbose=1)
    drive_epochs(callback, make_model(), [{"val_loss": 0.5}, {"val_loss": 0.6}, {"val_loss": 0.4}, {"val_loss": 0.4}])
    assert files(tmp_path) == ["1.pt", "3.pt"]
    assert callback.best == 0.4
    assert capsys.readouterr().out == (
        f"\nEpoch 1: val_loss improved from inf to 0.50000, saving model to {tmp_path / '1.pt'}\n"
        "\nEpoch 2: val_loss did not improve from 0.50000\n"
        f"\nEpoch 3: val_loss improved from 0.50000 to 0.40000, saving model to {tmp_path / '3.pt'}\n"
        "\nEpoch 4: val_loss did not improve from 0.40000\n"
    )


def test_save_best_only_overwrites_one_file_with_the_best_model(tmp_path):
    path = tmp_path / "best.pt"
    model = make_model()
    callback = ModelCheckpoint(path, save_best_only=True, save_weights_only=True)
    callback.set_model(model)
    callback.on_train_begin()
    with torch.no_grad():
        model.module[0].weight.fill_(1.0)
    callback.on_epoch_end(0, {"val_loss": 0.5})
    with torch.no_grad():
        model.module[0].weight.fill_(2.0)
    callback.on_epoch_end(1, {"val_loss": 0.7})  # worse: the file keeps epoch 0's weights
    assert torch.all(io.load_weights_file(path)["module.0.weight"] == 1.0)


def test_mode_max_and_auto_for_accuracy(tmp_path):
    for mode in ("max", "auto"):
        folder = tmp_path / mode
        callback = ModelCheckpoint(folder / "{epoch}.pt", monitor="val_accuracy", mode=mode, save_best_only=True)
        drive_epochs(callback, make_model(), [{"val_accuracy": 0.5}, {"val_accuracy": 0.4}, {"val_accuracy": 0.9}])
        assert files(folder) == ["1.pt", "3.pt"]


def test_initial_value_threshold(tmp_path, capsys):
    callback = ModelCheckpoint(tmp_path / "{epoch}.pt", save_best_only=True, initial_value_threshold=0.45, verbose=1)
    drive_epochs(callback, make_model(), [{"val_loss": 0.5}, {"val_loss": 0.6}, {"val_loss": 0.4}])
    assert files(tmp_path) == ["3.pt"]
    assert capsys.readouterr().out.splitlines()[1] == "Epoch 1: val_loss did not improve from 0.45000"


def test_initial_value_threshold_in_max_mode(tmp_path):
    callback = ModelCheckpoint(tmp_path / "{epoch}.pt", monitor="acc", save_best_only=True, initial_value_threshold=0.8)
    drive_epochs(callback, make_model(), [{"acc": 0.7}, {"acc": 0.85}, {"acc": 0.8}])
    assert files(tmp_path) == ["2.pt"]


def test_best_value_carries_across_fits_as_in_keras(tmp_path):
    callback = ModelCheckpoint(tmp_path / "{epoch}-{val_loss}.pt", save_best_only=True)
    model = make_model()
    drive_epochs(callback, model, [{"val_loss": 0.5}])
    drive_epochs(callback, model, [{"val_loss": 0.6}, {"val_loss": 0.3}])
    assert files(tmp_path) == ["1-0.5.pt", "2-0.3.pt"]


def test_save_freq_in_batches_counts_across_epochs(tmp_path):
    callback = ModelCheckpoint(tmp_path / "e{epoch}-b{batch}.pt", save_freq=3)
    model = make_model()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch in range(2):
        callback.on_epoch_begin(epoch)
        for batch in range(4):
            callback.on_train_batch_end(batch, {"loss": 1.0})
        callback.on_epoch_end(epoch, {"loss": 1.0})
    assert files(tmp_path) == ["e1-b3.pt", "e2-b2.pt"]


# Writing a file every few batches of a tiny model is slower than those batches: the
# slow-callback check may rightly say so, which is not what this test is about.
@pytest.mark.filterwarnings("ignore:Callback method `on_train_batch_end` of ModelCheckpoint is slow")
def test_save_freq_in_batches_end_to_end(tmp_path):
    x, y = data(32)
    model = make_model()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[ModelCheckpoint(tmp_path / "{epoch}-{batch}-{loss:.3f}.pt", save_freq=3)])
    names = files(tmp_path)
    assert [n.rsplit("-", 1)[0] for n in names] == ["1-3", "2-2"]
    restored = cadence.load_model(tmp_path / names[1], make_model(seed=1))
    assert restored.optimizer.state_dict()["state"][0]["step"] == 6  # epoch 2's second batch


def test_safetensors_suffix_writes_weights_only(tmp_path):
    model = make_model()
    path = tmp_path / "w.safetensors"
    drive_epochs(ModelCheckpoint(path), model, [{"val_loss": 1.0}])
    loaded = load_file(str(path))
    assert sorted(loaded) == sorted(model.state_dict())
    other = make_model(seed=1)
    assert not same_weights(model, other)
    other.load_weights(path)
    assert same_weights(model, other)


def test_pt_with_save_weights_only_writes_the_state_dict(tmp_path):
    model = make_model()
    path = tmp_path / "w.pt"
    drive_epochs(ModelCheckpoint(path, save_weights_only=True), model, [{"val_loss": 1.0}])
    loaded = io.load_weights_file(path)
    assert sorted(loaded) == sorted(model.state_dict())
    other = make_model(seed=1)
    other.load_weights(path)
    assert same_weights(model, other)


def test_full_checkpoint_loads_with_load_model_as_keras(tmp_path):
    """Keras: a ModelCheckpoint with save_weights_only=False loads with keras.models.load_model."""
    x, y = data()
    model = make_model()
    path = tmp_path / "full.pth"
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[ModelCheckpoint(path)])
    assert io.load_state(path)["optimizer"]["state"][0]["step"] == 8  # 2 epochs of 4 Adam steps
    fresh = cadence.load_model(path, make_model(seed=1))
    assert same_weights(model, fresh)
    assert torch.equal(fresh.optimizer.state_dict()["state"][0]["exp_avg"],
                       model.optimizer.state_dict()["state"][0]["exp_avg"])
    other = make_model(seed=1)
    other.load_weights(path)
    assert same_weights(model, other)


def test_every_save_goes_through_the_keras_extension_point_save_model(tmp_path):
    """Keras: subclasses override _save_model(epoch, batch, logs), called for every save."""
    calls = []

    class Recording(ModelCheckpoint):
        def _save_model(self, epoch, batch, logs):
            calls.append((epoch, batch, sorted(logs)))
            super()._save_model(epoch, batch, logs)

    x, y = data()
    make_model().fit(x, y, batch_size=8, epochs=2, verbose=0,
                     callbacks=[Recording(tmp_path / "{epoch}.pt"), Recording(tmp_path / "b{batch}.pt", save_freq=3)])
    assert [c for c in calls if c[1] is None] == [(0, None, ["loss"]), (1, None, ["loss"])]
    assert [c[:2] for c in calls if c[1] is not None] == [(0, 2), (1, 1)]
    assert files(tmp_path) == ["1.pt", "2.pt", "b2.pt", "b3.pt"]


def test_full_checkpoint_stores_numpy_hyperparameters_as_plain_numbers(tmp_path):
    model = make_model()
    for group in model.optimizer.param_groups:
        group["lr"] = np.float64(0.5)  # as a user's K.set_value(..., np.float64) might leave it
    drive_epochs(ModelCheckpoint(tmp_path / "c.pt"), model, [{"val_loss": 1.0}])
    lr = io.load_state(tmp_path / "c.pt")["optimizer"]["param_groups"][0]["lr"]
    assert type(lr) is float and lr == 0.5


def test_seed_004_checkpoint_without_suffix_then_load_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    x, y = data()
    model = make_model()
    checkpoint_filepath = './checkpoint'
    model_checkpoint_callback = ModelCheckpoint(filepath=checkpoint_filepath)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_split=0.25,
              callbacks=[model_checkpoint_callback])
    trained = [w.copy() for w in model.get_weights()]
    model.set_weights([np.zeros_like(w) for w in trained])
    model.load_weights(checkpoint_filepath)
    for got, want in zip(model.get_weights(), trained, strict=True):
        np.testing.assert_array_equal(got, want)


def test_parent_folders_are_created_and_no_temporary_files_remain(tmp_path):
    folder = tmp_path / "a" / "b"
    drive_epochs(ModelCheckpoint(folder / "{epoch}.pt"), make_model(), [{"val_loss": 1.0}, {"val_loss": 0.5}])
    assert files(folder) == ["1.pt", "2.pt"]


def test_missing_template_field_raises_naming_it(tmp_path):
    callback = ModelCheckpoint(tmp_path / "{epoch}-{val_acc:.2f}.pt")
    callback.set_model(make_model())
    callback.on_train_begin()
    with pytest.raises(KeyError, match=r"the field 'val_acc' is not available\. Available fields are: epoch, loss"):
        callback.on_epoch_end(0, {"loss": 1.0})


def test_missing_monitor_with_save_best_only_warns_once_and_saves(tmp_path):
    callback = ModelCheckpoint(tmp_path / "{epoch}.pt", save_best_only=True)
    with pytest.warns(UserWarning) as record:
        drive_epochs(callback, make_model(), [{"loss": 1.0}, {"loss": 0.5}])
    assert [str(w.message) for w in record] == [
        "ModelCheckpoint is conditioned on metric 'val_loss', which is not available. "
        "Available metrics are: loss."
    ]
    assert files(tmp_path) == ["1.pt", "2.pt"]


def test_existing_folder_as_filepath_is_refused(tmp_path):
    (tmp_path / "ckpt").mkdir()
    callback = ModelCheckpoint(tmp_path / "ckpt")
    callback.set_model(make_model())
    callback.on_train_begin()
    with pytest.raises(IsADirectoryError, match="must name a file, but .* is an existing folder"):
        callback.on_epoch_end(0, {"val_loss": 1.0})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"save_freq": 0}, r"save_freq must be 'epoch' or a positive integer number of batches; received: save_freq=0\."),
    ({"save_freq": "batch"}, r"received: save_freq='batch'\."),
    ({"save_freq": 2.0}, r"received: save_freq=2\.0\."),
    ({"filepath": "{epoch"}, r"filepath is not a valid str\.format template"),
    ({"filepath": ""}, r"filepath must be a non-empty path; received: filepath=''\."),
])
def test_invalid_arguments(kwargs, message):
    kwargs.setdefault("filepath", "x.pt")
    with pytest.raises(ValueError, match=message):
        ModelCheckpoint(**kwargs)


def test_unknown_monitor_only_matters_with_save_best_only(tmp_path):
    drive_epochs(ModelCheckpoint(tmp_path / "a.pt", monitor="val_foo"), make_model(), [{"loss": 1.0}])
    callback = ModelCheckpoint(tmp_path / "b.pt", monitor="val_foo", save_best_only=True)
    callback.set_model(make_model())
    with pytest.raises(ValueError, match="received monitor='val_foo' with mode='auto'"):
        callback.on_train_begin()


def test_state_round_trip_resumes_batch_counting_mid_epoch(tmp_path):
    model = make_model()
    first = ModelCheckpoint(tmp_path / "e{epoch}-b{batch}.pt", save_freq=3)
    first.set_model(model)
    first.on_train_begin()
    first.on_epoch_begin(0)
    for batch in range(4):
        first.on_train_batch_end(batch, {})
    first.on_epoch_end(0, {})
    first.on_epoch_begin(1)
    first.on_train_batch_end(0, {})
    io.save_state(first.state_dict(), tmp_path / "state")
    assert first.state_dict() == {
        "best": None, "batches_seen_since_last_saving": 2, "last_batch_seen": 0, "current_epoch": 1,
    }
    resumed = ModelCheckpoint(tmp_path / "e{epoch}-b{batch}.pt", save_freq=3)
    resumed.load_state_dict(io.load_state(tmp_path / "state"))
    resumed.set_model(model)
    resumed.on_train_begin()  # keeps the restored counters; no on_epoch_begin mid-epoch
    for batch in range(1, 4):
        resumed.on_train_batch_end(batch, {})
    assert files(tmp_path) == ["e1-b3.pt", "e2-b2.pt", "state"]


def test_state_round_trip_keeps_the_best_value(tmp_path):
    first = ModelCheckpoint(tmp_path / "{epoch}.pt", save_best_only=True)
    drive_epochs(first, make_model(), [{"val_loss": 0.5}])
    resumed = ModelCheckpoint(tmp_path / "{epoch}.pt", save_best_only=True)
    resumed.load_state_dict(first.state_dict())
    resumed.set_model(make_model())
    resumed.on_train_begin()
    resumed.on_epoch_end(1, {"val_loss": 0.7})
    resumed.on_epoch_end(2, {"val_loss": 0.2})
    assert files(tmp_path) == ["1.pt", "3.pt"]
