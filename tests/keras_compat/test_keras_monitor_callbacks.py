"""Keras 3 compatibility: EarlyStopping, ReduceLROnPlateau, ModelCheckpoint and their monitor logic.

Written from Keras 3's documented behaviour and its callback tests (keras/src/callbacks/
*_test.py); every expected number below is Keras's own and does not depend on the backend.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks


def make_model(lr=0.1, optimizer="adam", metrics=None, seed=0):
    torch.manual_seed(seed)
    model = cadence.Sequential(nn.Linear(3, 5), nn.Linear(5, 2))
    opt = cadence.optimizers.Adam(learning_rate=lr) if optimizer == "adam" else optimizer
    model.compile(optimizer=opt, loss="mse", metrics=metrics, device="cpu")
    return model


def data(n=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3), dtype=np.float32)
    return x, np.eye(2, dtype=np.float32)[rng.integers(0, 2, n)]


def drive(callback, model, values, monitor="loss"):
    """Call on_train_begin, then on_epoch_end with each value, until stop_training."""
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    epochs = 0
    for epoch, value in enumerate(values):
        epochs += 1
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        callback.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            break
    callback.on_train_end()
    return epochs


# ----------------------------------------------------------------- MonitorCallback
@pytest.mark.parametrize(("mode", "monitor", "expected"), [
    ("max", "val_mse", "max"), ("min", "val_loss", "min"), ("auto", "val_mse", "min"),
    ("auto", "loss", "min"), ("auto", "acc", "max"), ("auto", "val_accuracy", "max"),
    ("auto", "hinge", "min"), ("auto", "f1_score", "max"),
])
def test_monitor_direction_from_mode_and_name(mode, monitor, expected):
    """Keras monitor_callback_test: the direction each (mode, monitor) pair resolves to."""
    callback = callbacks.EarlyStopping(monitor=monitor, mode=mode)
    callback.set_model(make_model())
    callback.on_train_begin()
    assert callback.monitor_op == expected


def test_monitor_unknown_name_in_auto_mode_raises():
    """Keras: mode='auto' on a metric it cannot classify raises a ValueError."""
    callback = callbacks.EarlyStopping(monitor="unknown")
    callback.set_model(make_model())
    with pytest.raises(ValueError, match=r"monitor='unknown'.*Pass mode='min'.*mode='max'"):
        callback.on_train_begin()


def test_monitor_unknown_mode_warns_and_falls_back_to_auto():
    """Keras: `ModelCheckpoint mode 'unknown' is unknown, fallback to auto mode.` (a warning)."""
    with pytest.warns(UserWarning, match=r"^ModelCheckpoint mode 'unknown' is unknown, fallback to auto mode\.$"):
        checkpoint = callbacks.ModelCheckpoint("c.pt", mode="unknown")
    assert checkpoint.mode == "auto"


def test_monitor_min_delta():
    """Keras monitor_callback_test.test_min_delta: mode='max', min_delta=0.5."""
    callback = callbacks.EarlyStopping(monitor="acc", mode="max", min_delta=0.5)
    assert callback._is_improvement(0.75, 0)
    assert callback._is_improvement(0.5, None)
    assert not callback._is_improvement(0.5, 0)
    assert not callback._is_improvement(0.2, 0.5)


# ----------------------------------------------------------------- EarlyStopping
@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_early_stopping_patience(patience):
    """Keras: losses [10, 9, 8, 9, 8.9, ...] stop at epoch max(patience, 1) + 2."""
    stopper = callbacks.EarlyStopping(monitor="loss", patience=patience)
    drive(stopper, make_model(), [10.0, 9.0, 8.0, 9.0, 8.9, 8.8, 8.7, 8.6, 8.5])
    assert stopper.stopped_epoch == max(patience, 1) + 2


def test_early_stopping_state_is_reset_by_each_fit():
    """Keras issue 20256: on_train_begin clears best, wait, stopped_epoch, best_epoch, best_weights."""
    stopper = callbacks.EarlyStopping(monitor="loss", patience=3)
    stopper.set_model(make_model())
    stopper.on_train_begin()
    stopper.best, stopper.wait, stopper.stopped_epoch, stopper.best_epoch = 0.1, 3, 5, 5
    stopper.best_weights = {}
    stopper.on_train_begin()
    assert (stopper.best, stopper.wait, stopper.stopped_epoch, stopper.best_epoch, stopper.best_weights) == (
        None, 0, 0, 0, None
    )


def test_early_stopping_restores_the_best_epochs_weights():
    """Keras: val_loss [0.2, 0.15, 0.1, 0.11, 0.12], patience 2: weights of epoch 2 come back."""
    model = make_model()
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    assert drive(stopper, model, [0.2, 0.15, 0.1, 0.11, 0.12], "val_loss") == 5
    assert all((w == 2).all() for w in model.get_weights())


def test_early_stopping_nothing_beats_the_baseline():
    """Keras: baseline 0.5, patience 5, [0.9, 0.8, 0.7, 0.71, ...]: 5 epochs, epoch 2's weights."""
    model = make_model()
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=5, baseline=0.5, restore_best_weights=True)
    assert drive(stopper, model, [0.9, 0.8, 0.7, 0.71, 0.72, 0.73], "val_loss") == 5
    assert all((w == 2).all() for w in model.get_weights())


def test_early_stopping_restores_when_another_callback_stops():
    """Keras: a stop requested elsewhere at epoch 3 still restores epoch 2's weights."""
    model = make_model()
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=5, baseline=0.5, restore_best_weights=True)
    stopper.set_model(model)
    stopper.on_train_begin()
    for epoch, value in enumerate([0.9, 0.8, 0.7, 0.71, 0.72, 0.73]):
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        stopper.on_epoch_end(epoch, {"val_loss": value})
        if epoch == 3:
            break
    stopper.on_train_end()
    assert all((w == 2).all() for w in model.get_weights())


def test_early_stopping_start_from_epoch():
    """Keras: epochs before start_from_epoch are not monitored; patience counts from there."""
    stopper = callbacks.EarlyStopping(monitor="loss", patience=3, start_from_epoch=2)
    drive(stopper, make_model(), [5.0] * 20)
    assert stopper.stopped_epoch == 5


def test_early_stopping_in_fit_stops_and_reports(capsys):
    """Keras: `Epoch N: early stopping` (verbose=1) and history ends at the stopped epoch."""
    x, y = data()
    stopper = callbacks.EarlyStopping(monitor="loss", mode="max", patience=1, verbose=1)
    history = make_model().fit(x, y, batch_size=5, epochs=20, verbose=0, callbacks=[stopper])
    # The loss decreases, so in mode "max" epoch 1 is no improvement: patience 1 stops there.
    assert history.epoch == [0, 1] and stopper.stopped_epoch == 1
    assert capsys.readouterr().out == "Epoch 2: early stopping\n"


def test_early_stopping_missing_monitor_warning():
    """Keras: `Early stopping conditioned on metric `val_acc` which is not available. ...` (and no stop)."""
    stopper = callbacks.EarlyStopping(monitor="val_acc", patience=0)
    with pytest.warns(UserWarning, match=r"^Early stopping conditioned on metric `val_acc` which is not available\. "
                                         r"Available metrics are: loss,val_loss$"):
        stopper.set_model(make_model())
        stopper.on_train_begin()
        stopper.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})
    assert stopper.stopped_epoch == 0


# ----------------------------------------------------------------- ReduceLROnPlateau
def _reduce_fit(epochs, **kwargs):
    x, y = data()
    xv, yv = data(seed=1)
    model = make_model(lr=0.1)
    history = model.fit(x, y, batch_size=4, epochs=epochs, verbose=0, validation_data=(xv, yv),
                        callbacks=[callbacks.ReduceLROnPlateau(monitor="val_loss", patience=1, factor=0.1, **kwargs)])
    return model, history


def test_reduce_lr_with_model_fit():
    """Keras: Adam(0.1), patience 1, factor 0.1, min_delta 100, 2 epochs: lr 0.01."""
    model, history = _reduce_fit(2, min_delta=100)
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1])  # logged before reducing


def test_reduce_lr_honors_min_lr():
    """Keras: min_delta 10, min_lr 0.005, 4 epochs: lr 0.005."""
    model, _ = _reduce_fit(4, min_delta=10, min_lr=0.005)
    assert model.optimizer.learning_rate == pytest.approx(0.005)


def test_reduce_lr_cooldown():
    """Keras: cooldown 2 reduces every other epoch: 4 epochs, lr 0.001."""
    model, _ = _reduce_fit(4, min_delta=100, cooldown=2)
    assert model.optimizer.learning_rate == pytest.approx(0.001)


def test_reduce_lr_verbose_message(capsys):
    """Keras: `Epoch 2: ReduceLROnPlateau reducing learning rate to 0.01...` with verbose=1."""
    _reduce_fit(2, min_delta=100, verbose=1)
    assert "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.01" in capsys.readouterr().out


def test_reduce_lr_missing_monitor_warning():
    """Keras: `Learning rate reduction is conditioned on metric `val_acc` which is not available. ...`."""
    reduce_lr = callbacks.ReduceLROnPlateau(monitor="val_acc")
    reduce_lr.set_model(make_model())
    reduce_lr.on_train_begin()
    with pytest.warns(UserWarning, match=r"^Learning rate reduction is conditioned on metric `val_acc` which is not "
                                         r"available\. Available metrics are: loss,val_loss,learning_rate\.$"):
        reduce_lr.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})


def test_reduce_lr_state_reset_across_fit_calls():
    """Keras: on_train_begin resets best to None, wait and cooldown_counter to 0."""
    reduce_lr = callbacks.ReduceLROnPlateau(patience=1, factor=0.1, monitor="loss", min_delta=0, cooldown=2)
    reduce_lr.set_model(make_model())
    reduce_lr.on_train_begin()
    reduce_lr.best, reduce_lr.wait, reduce_lr.cooldown_counter = 0.5, 3, 2
    reduce_lr.on_train_begin()
    assert (reduce_lr.best, reduce_lr.wait, reduce_lr.cooldown_counter) == (None, 0, 0)


def test_reduce_lr_refuses_a_learning_rate_schedule():
    """Keras: TypeError `This optimizer was created with a LearningRateSchedule` ..."""
    schedule = cadence.optimizers.schedules.PolynomialDecay(initial_learning_rate=0.1, decay_steps=10)
    model = make_model(optimizer=cadence.optimizers.Adam(learning_rate=schedule))
    x, y = data()
    with pytest.raises(TypeError, match="This optimizer was created with a `LearningRateSchedule`"):
        model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y),
                  callbacks=[callbacks.ReduceLROnPlateau(patience=1, min_delta=100)])


# ----------------------------------------------------------------- ModelCheckpoint
def test_model_checkpoint_int_save_freq_counts_batches_across_epochs(tmp_path):
    """Keras: save_freq=15 with 5 batches an epoch saves at epochs 3, 6 and 9 of 10."""
    x, y = data(30)
    path = os.path.join(tmp_path, "checkpoint.epoch{epoch:02d}.pt")
    make_model().fit(x, y, batch_size=6, epochs=10, verbose=0,
                     callbacks=[callbacks.ModelCheckpoint(path, monitor="loss", save_freq=15)])
    assert sorted(os.listdir(tmp_path)) == [f"checkpoint.epoch{e:02d}.pt" for e in (3, 6, 9)]


def test_model_checkpoint_batch_in_file_name(tmp_path):
    """Keras: save_freq=1 with `{epoch:02d}batch{batch:02d}` names a file per batch (batch from 1)."""
    x, y = data(30)
    path = os.path.join(tmp_path, "e{epoch:02d}b{batch:02d}.pt")
    make_model().fit(x, y, batch_size=10, epochs=2, verbose=0,
                     callbacks=[callbacks.ModelCheckpoint(path, save_freq=1)])
    assert sorted(os.listdir(tmp_path)) == [f"e{e:02d}b{b:02d}.pt" for e in (1, 2) for b in (1, 2, 3)]


def test_model_checkpoint_missing_monitor_warns_and_saves(tmp_path):
    """Keras: save_best_only with a monitor not in the logs warns, then saves anyway."""
    x, y = data()
    path = tmp_path / "c.pt"
    with pytest.warns(UserWarning, match="unknown"):
        make_model().fit(x, y, epochs=1, verbose=0,
                         callbacks=[callbacks.ModelCheckpoint(path, monitor="unknown", save_best_only=True, mode="min")])
    assert path.exists()


def test_model_checkpoint_full_model_loads_with_load_model(tmp_path):
    """Keras: a checkpoint with save_weights_only=False is loaded by load_model."""
    x, y = data()
    model = make_model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.ModelCheckpoint(tmp_path / "{epoch}.pt")])
    restored = cadence.load_model(tmp_path / "2.pt", make_model(seed=1))
    for a, b in zip(restored.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_save_best_only_messages(tmp_path, capsys):
    """Keras: `Epoch 1: val_loss improved from ... to 0.50000, saving model to ...`; `did not improve`."""
    checkpoint = callbacks.ModelCheckpoint(tmp_path / "{epoch}.pt", save_best_only=True, verbose=1)
    checkpoint.set_model(make_model())
    checkpoint.on_train_begin()
    for epoch, value in enumerate([0.5, 0.6]):
        checkpoint.on_epoch_begin(epoch)
        checkpoint.on_epoch_end(epoch, {"val_loss": value})
    out = capsys.readouterr().out
    assert "\nEpoch 1: val_loss improved from " in out and f" to 0.50000, saving model to {tmp_path / '1.pt'}\n" in out
    assert out.endswith("\nEpoch 2: val_loss did not improve from 0.50000\n")
    assert sorted(os.listdir(tmp_path)) == ["1.pt"]
