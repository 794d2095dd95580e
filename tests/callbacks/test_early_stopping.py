"""EarlyStopping: Keras 3's stopping rule on scripted values and end to end, weights, state."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import io
from cadence.callbacks import EarlyStopping, LambdaCallback


class FakeModel(nn.Module):
    """What EarlyStopping touches: stop_training and the state_dict (one weight per epoch)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(1, 1, bias=False)
        self.stop_training = False

    def mark(self, value):
        with torch.no_grad():
            self.layer.weight.fill_(value)

    @property
    def value(self):
        return float(self.layer.weight.detach())


def drive(callback, values, key="val_loss", model=None, start=0):
    """Run the hooks as fit does for scripted values; return the epochs that ran."""
    model = model or FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    ran = []
    for epoch in range(start, len(values)):
        model.mark(float(epoch))  # the weights "after" this epoch are the epoch index
        callback.on_epoch_end(epoch, {"loss": 0.0, key: values[epoch]})
        ran.append(epoch)
        if model.stop_training:
            break
    callback.on_train_end()
    return ran


@pytest.mark.parametrize(("kwargs", "values", "last_epoch"), [
    # patience=0: the first epoch without improvement stops.
    ({}, [1.0, 0.9, 0.95, 0.8], 2),
    # patience=2: two epochs without improvement after the best.
    ({"patience": 2}, [1.0, 0.9, 0.91, 0.92, 0.5, 0.6], 3),
    # improvement resets the wait
    ({"patience": 2}, [1.0, 1.1, 0.9, 1.0, 0.8, 0.85, 0.86, 0.1], 6),
    # min_delta: 0.95 is not better than 1.0 by more than 0.1.
    ({"patience": 1, "min_delta": 0.1}, [1.0, 0.95, 0.5], 1),
    ({"patience": 1, "min_delta": 0.1}, [1.0, 0.875, 0.8, 0.75], 2),
    # never stops while it improves
    ({"patience": 0}, [5.0, 4.0, 3.0, 2.0, 1.0], 4),
    # mode max on a name that auto would minimize
    ({"mode": "max"}, [1.0, 2.0, 1.5, 3.0], 2),
    # NaN is never an improvement
    ({"patience": 1}, [1.0, float("nan"), 2.0], 1),
])
def test_stops_at_the_epoch_keras_stops(kwargs, values, last_epoch):
    callback = EarlyStopping(**kwargs)
    ran = drive(callback, values)
    assert ran[-1] == last_epoch
    stopped = last_epoch if last_epoch < len(values) - 1 else 0
    assert callback.stopped_epoch == stopped


def test_auto_mode_maximizes_accuracy():
    callback = EarlyStopping(monitor="val_accuracy", patience=1)
    ran = drive(callback, [0.5, 0.6, 0.55, 0.58, 0.9], key="val_accuracy")
    assert ran[-1] == 2 and callback.best == 0.6 and callback.best_epoch == 1


def test_baseline_never_beaten_stops_after_patience_epochs():
    callback = EarlyStopping(monitor="val_accuracy", baseline=0.5, patience=2)
    ran = drive(callback, [0.3, 0.2, 0.25, 0.1], key="val_accuracy")
    assert ran == [0, 1]
    assert callback.best == 0.3 and callback.stopped_epoch == 1


def test_baseline_improvements_below_it_do_not_reset_the_wait():
    # Keras: an improvement that does not beat the baseline keeps counting (and does not stop);
    # the first epoch without improvement then stops at once, since the wait is long past patience.
    callback = EarlyStopping(monitor="val_loss", baseline=0.5, patience=2)
    ran = drive(callback, [0.9, 0.8, 0.7, 0.6, 0.65, 0.1], key="val_loss")
    assert ran == [0, 1, 2, 3, 4]
    assert callback.wait == 5 and callback.best == 0.6 and callback.stopped_epoch == 4


def test_baseline_beaten_behaves_like_no_baseline():
    callback = EarlyStopping(monitor="val_accuracy", baseline=0.5, patience=2)
    ran = drive(callback, [0.6, 0.55, 0.58, 0.5, 0.9], key="val_accuracy")
    assert ran == [0, 1, 2]


def test_start_from_epoch_ignores_the_warm_up_epochs():
    callback = EarlyStopping(monitor="loss", start_from_epoch=2)
    ran = drive(callback, [1.0, 2.0, 3.0, 4.0, 5.0], key="loss")
    assert ran == [0, 1, 2, 3]
    assert callback.best == 3.0 and callback.stopped_epoch == 3


def test_never_stops_at_epoch_zero():
    callback = EarlyStopping(patience=0)
    model = FakeModel()
    callback.set_model(model)
    callback.load_state_dict({"best": 0.0, "wait": 0, "stopped_epoch": 0, "best_epoch": 0, "best_weights": None})
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_loss": 1.0})
    assert not model.stop_training and callback.wait == 1
    callback.on_epoch_end(1, {"val_loss": 1.0})
    assert model.stop_training and callback.stopped_epoch == 1


def test_restore_best_weights_when_training_runs_to_the_end(capsys):
    callback = EarlyStopping(patience=10, restore_best_weights=True, verbose=1)
    model = FakeModel()
    ran = drive(callback, [1.0, 0.5, 0.7, 0.8], model=model)
    assert ran == [0, 1, 2, 3]
    assert model.value == 1.0  # the weights after epoch 1
    assert capsys.readouterr().out == "Restoring model weights from the end of the best epoch: 2.\n"


def test_restore_best_weights_after_stopping_prints_both_lines(capsys):
    callback = EarlyStopping(patience=1, restore_best_weights=True, verbose=1)
    model = FakeModel()
    drive(callback, [1.0, 0.5, 0.7, 0.8], model=model)
    assert model.value == 1.0
    assert capsys.readouterr().out == (
        "Epoch 3: early stopping\nRestoring model weights from the end of the best epoch: 2.\n"
    )


def test_verbose_zero_is_silent_and_no_restore_keeps_last_weights(capsys):
    callback = EarlyStopping(patience=1)
    model = FakeModel()
    drive(callback, [1.0, 0.5, 0.7, 0.8], model=model)
    assert model.value == 2.0 and callback.best_weights is None
    assert capsys.readouterr().out == ""


def test_best_weights_are_a_copy_on_the_model_device():
    callback = EarlyStopping(patience=5, restore_best_weights=True)
    model = FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    model.mark(7.0)
    callback.on_epoch_end(0, {"val_loss": 1.0})
    model.mark(-1.0)  # training goes on in place
    assert float(callback.best_weights["layer.weight"]) == 7.0
    assert callback.best_weights["layer.weight"].device == model.layer.weight.device
    assert callback.best_weights["layer.weight"].data_ptr() != model.layer.weight.data_ptr()


def test_restore_without_any_improvement_after_warm_up_uses_the_first_monitored_epoch():
    callback = EarlyStopping(monitor="loss", start_from_epoch=1, patience=5, restore_best_weights=True)
    model = FakeModel()
    drive(callback, [0.1, 1.0, 2.0, 3.0], key="loss", model=model)
    assert model.value == 1.0 and callback.best_epoch == 1


def test_missing_monitor_warns_once_and_never_stops():
    callback = EarlyStopping(monitor="val_acc", patience=0)
    with pytest.warns(UserWarning) as record:
        ran = drive(callback, [1.0, 2.0, 3.0], key="val_loss")
    assert ran == [0, 1, 2]
    assert [str(w.message) for w in record] == [
        "Early stopping conditioned on metric `val_acc` which is not available. "
        "Available metrics are: loss,val_loss"
    ]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"patience": -1}, r"EarlyStopping patience must be an integer >= 0; received: patience=-1\."),
    ({"patience": 1.5}, r"received: patience=1\.5\."),
    ({"start_from_epoch": -2}, r"received: start_from_epoch=-2\."),
])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStopping(**kwargs)


def test_reused_instance_starts_fresh_in_a_new_fit():
    callback = EarlyStopping(patience=0)
    drive(callback, [1.0, 2.0])
    assert callback.stopped_epoch == 1
    ran = drive(callback, [5.0, 4.0, 3.0])
    assert ran == [0, 1, 2] and callback.stopped_epoch == 0 and callback.best == 3.0


# ----------------------------------------------------------------- state


def test_state_round_trip_resumes_the_same_decisions(tmp_path):
    values = [1.0, 0.5, 0.6, 0.55, 0.7, 0.8, 0.9]
    reference = EarlyStopping(patience=3, restore_best_weights=True)
    reference_model = FakeModel()
    expected = drive(reference, values, model=reference_model)
    assert expected == [0, 1, 2, 3, 4]

    first = EarlyStopping(patience=3, restore_best_weights=True)
    model = FakeModel()
    first.set_model(model)
    first.on_train_begin()
    for epoch in range(3):
        model.mark(float(epoch))
        first.on_epoch_end(epoch, {"val_loss": values[epoch]})
    io.save_state(first.state_dict(), tmp_path / "es.state")

    resumed = EarlyStopping(patience=3, restore_best_weights=True)
    resumed.load_state_dict(io.load_state(tmp_path / "es.state"))
    ran = drive(resumed, values, model=model, start=3)
    assert ran == [3, 4]
    assert resumed.state_dict()["wait"] == reference.wait == 3
    assert resumed.stopped_epoch == reference.stopped_epoch == 4
    assert model.value == reference_model.value == 1.0


def test_load_after_on_train_begin_replaces_the_state():
    callback = EarlyStopping(patience=1)
    model = FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    callback.load_state_dict({"best": 0.25, "wait": 1, "stopped_epoch": 0, "best_epoch": 4, "best_weights": None})
    callback.on_epoch_end(5, {"val_loss": 0.3})
    assert model.stop_training and callback.stopped_epoch == 5 and callback.best_epoch == 4


def test_state_dict_holds_plain_values():
    callback = EarlyStopping()
    drive(callback, [1.0, 0.5])
    assert callback.state_dict() == {
        "best": 0.5, "wait": 0, "stopped_epoch": 0, "best_epoch": 1, "best_weights": None,
    }


# ----------------------------------------------------------------- end to end


def _model(lr):
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=lr), loss="mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(("patience", "epochs_run"), [(1, 2), (3, 4)])
def test_end_to_end_constant_loss_stops_after_patience(patience, epochs_run):
    x, y = _data()
    model = _model(0.0)  # nothing moves: every epoch has the same loss
    history = model.fit(x, y, batch_size=8, epochs=10, verbose=0, shuffle=False,
                        callbacks=[EarlyStopping(monitor="loss", patience=patience)])
    assert len(history.history["loss"]) == epochs_run
    assert history.epoch == list(range(epochs_run))


def test_end_to_end_restores_the_best_weights_although_training_ran_to_the_end():
    x, y = _data()
    model = _model(0.05)
    snapshots = []
    record = LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    # mode="max" on a decreasing loss: epoch 0 stays the best, training never stops (patience).
    stopper = EarlyStopping(monitor="loss", mode="max", patience=10, restore_best_weights=True)
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0, callbacks=[record, stopper])
    losses = history.history["loss"]
    assert losses == sorted(losses, reverse=True) and len(losses) == 4
    assert stopper.stopped_epoch == 0 and stopper.best_epoch == 0
    for got, want in zip(model.get_weights(), snapshots[0], strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(model.get_weights()[0], snapshots[-1][0])


def test_end_to_end_validation_loss_with_seed_004_arguments():
    x, y = _data()
    model = _model(0.05)
    stopper = EarlyStopping(monitor="val_loss", min_delta=0.01, patience=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_split=0.25,
                            callbacks=[stopper])
    assert len(history.history["val_loss"]) == 3
    assert stopper.best == min(history.history["val_loss"])


def test_end_to_end_validation_freq_2_decides_on_validation_epochs_without_warning():
    x, y = _data()
    model = _model(0.0)  # constant val_loss
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = model.fit(x, y, batch_size=8, epochs=10, verbose=0, shuffle=False, validation_split=0.25,
                            validation_freq=2, callbacks=[EarlyStopping(patience=1)])
    # validation runs after epochs 1 and 3: epoch 1 is the best, epoch 3 does not improve.
    assert history.epoch == [0, 1, 2, 3]
    assert len(history.history["val_loss"]) == 2
