"""ReduceLROnPlateau: patience, cooldown, min_lr and min_delta as in Keras 3; logs; state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import io
from cadence.callbacks import ReduceLROnPlateau


def make_model(lr=1.0):
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=lr), loss="mse")
    return model


def lr_of(model):
    return model.optimizer.param_groups[0]["lr"]


def drive(callback, model, values, key="val_loss", start=0, begin=True):
    """Return, per epoch, (learning rate logged, learning rate after the hook)."""
    callback.set_model(model)
    if begin:
        callback.on_train_begin()
    seen = []
    for epoch in range(start, len(values)):
        logs = {key: values[epoch]}
        callback.on_epoch_end(epoch, logs)
        seen.append((logs["learning_rate"], lr_of(model)))
    return seen


def test_reduces_after_patience_flat_epochs():
    model = make_model(1.0)
    seen = drive(ReduceLROnPlateau(factor=0.5, patience=2), model, [1.0] * 5)
    assert seen == [(1.0, 1.0), (1.0, 1.0), (1.0, 0.5), (0.5, 0.5), (0.5, 0.25)]


def test_improvement_resets_the_wait():
    model = make_model(1.0)
    seen = drive(ReduceLROnPlateau(factor=0.5, patience=2), model, [1.0, 1.0, 0.5, 0.5, 0.5])
    assert [after for _, after in seen] == [1.0, 1.0, 1.0, 1.0, 0.5]


def test_cooldown_keeps_the_wait_at_zero():
    model = make_model(1.0)
    seen = drive(ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2), model, [1.0] * 6)
    assert [after for _, after in seen] == [1.0, 0.5, 0.5, 0.25, 0.25, 0.125]


def test_min_lr_bounds_the_learning_rate_and_stops_the_messages(capsys):
    model = make_model(1.0)
    seen = drive(ReduceLROnPlateau(factor=0.5, patience=1, min_lr=0.3, verbose=1), model, [1.0] * 5)
    assert [after for _, after in seen] == [1.0, 0.5, 0.3, 0.3, 0.3]
    assert capsys.readouterr().out == (
        "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.5.\n"
        "\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.3.\n"
    )


def test_min_delta_decides_what_counts_as_improvement():
    model = make_model(1.0)
    values = [1.0, 0.95, 0.9, 0.85]
    seen = drive(ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.1), model, values)
    # 0.95 and 0.9 are not 0.1 below the best (1.0); 0.85 is.
    assert [after for _, after in seen] == [1.0, 0.5, 0.25, 0.25]
    model = make_model(1.0)
    seen = drive(ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.01), model, values)
    assert [after for _, after in seen] == [1.0, 1.0, 1.0, 1.0]


def test_mode_max_and_auto_for_accuracy():
    for mode in ("max", "auto"):
        model = make_model(1.0)
        values = [0.5, 0.6, 0.6, 0.7]
        seen = drive(ReduceLROnPlateau(monitor="val_accuracy", mode=mode, factor=0.5, patience=1), model,
                     values, key="val_accuracy")
        assert [after for _, after in seen] == [1.0, 1.0, 0.5, 0.5]


def test_missing_monitor_warns_once_and_still_logs_the_learning_rate():
    model = make_model(0.25)
    callback = ReduceLROnPlateau(monitor="val_acc", patience=0)
    callback.set_model(model)
    callback.on_train_begin()
    logs = {"loss": 1.0, "val_loss": 2.0}
    with pytest.warns(UserWarning) as record:
        callback.on_epoch_end(0, logs)
        callback.on_epoch_end(1, {"loss": 1.0, "val_loss": 2.0})
        callback.on_train_end()
    assert [str(w.message) for w in record] == [
        "Learning rate reduction is conditioned on metric `val_acc` which is not available. "
        "Available metrics are: loss,val_loss,learning_rate."
    ]
    assert logs == {"loss": 1.0, "val_loss": 2.0, "learning_rate": 0.25}
    assert lr_of(model) == 0.25


def test_without_validation_the_val_monitor_warning_comes_at_the_end_of_training():
    callback = ReduceLROnPlateau(monitor="val_loss")
    callback.set_model(make_model())
    callback.on_train_begin()
    callback.on_epoch_end(0, {"loss": 1.0})
    with pytest.warns(UserWarning, match=r"`val_loss` which is not available\. Available metrics are: "
                      r"loss,learning_rate\.$"):
        callback.on_train_end()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"factor": 1.0}, r"factor must be >= 0 and < 1; received: factor=1\.0\."),
    ({"factor": 2}, r"received: factor=2\."),
    ({"factor": -0.5}, r"received: factor=-0\.5\."),
    ({"patience": -1}, r"ReduceLROnPlateau patience must be an integer >= 0; received: patience=-1\."),
    ({"cooldown": 0.5}, r"received: cooldown=0\.5\."),
    ({"min_lr": -1e-3}, r"ReduceLROnPlateau min_lr must be a number >= 0; received: min_lr=-0\.001\."),
])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReduceLROnPlateau(**kwargs)


def test_end_to_end_learning_rate_in_history_and_optimizer():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    torch.manual_seed(0)
    model = make_model(0.1)
    # mode="max" on a decreasing training loss: no epoch after the first improves.
    history = model.fit(x, y, batch_size=8, epochs=4, verbose=0,
                        callbacks=[ReduceLROnPlateau(monitor="loss", mode="max", patience=1)])
    losses = history.history["loss"]
    assert losses == sorted(losses, reverse=True)
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.01, 0.001], rel=1e-12)
    assert lr_of(model) == pytest.approx(1e-4, rel=1e-12)
    assert float(model.optimizer.learning_rate) == lr_of(model)


def test_state_round_trip_resumes_wait_and_cooldown(tmp_path):
    values = [1.0] * 7
    reference_model = make_model(1.0)
    expected = drive(ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1), reference_model, values)

    model = make_model(1.0)
    first = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1)
    drive(first, model, values[:4])
    io.save_state(first.state_dict(), tmp_path / "state")
    # epoch 2 reduced (cooldown 1); epoch 3 spent the cooldown and counted one flat epoch
    assert first.state_dict() == {"best": 1.0, "wait": 1, "cooldown_counter": 0}

    resumed = ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1)
    resumed.load_state_dict(io.load_state(tmp_path / "state"))
    rest = drive(resumed, model, values, start=4)
    assert rest == expected[4:]


def test_fresh_run_resets_but_restored_run_keeps():
    model = make_model(1.0)
    callback = ReduceLROnPlateau(patience=5)
    drive(callback, model, [1.0, 2.0, 3.0])
    assert callback.wait == 2
    callback.on_train_begin()
    assert (callback.wait, callback.best, callback.cooldown_counter) == (0, None, 0)  # Keras 3 resets best to None.
    callback.load_state_dict({"best": 0.5, "wait": 3, "cooldown_counter": 1})
    callback.on_train_begin()
    assert (callback.wait, callback.best, callback.cooldown_counter) == (3, 0.5, 1)
