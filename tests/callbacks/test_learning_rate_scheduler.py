"""LearningRateScheduler: Keras's schedule(epoch, lr), its return types, errors, logs and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence.callbacks import Callback, LearningRateScheduler

X = torch.arange(48, dtype=torch.float32).reshape(16, 3) / 48
Y = X.sum(dim=1, keepdim=True)


def make_model(lr=0.1, groups=False):
    model = cadence.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    if groups:
        optimizer = torch.optim.SGD(
            [{"params": model.layers[0].parameters()}, {"params": model.layers[1].parameters(), "lr": 0.5}],
            lr=lr,
        )
    else:
        optimizer = cadence.optimizers.SGD(learning_rate=lr)
    model.compile(optimizer=optimizer, loss="mse")
    return model


class EpochLR(Callback):
    """Records every group's learning rate when each epoch begins (after the scheduler ran)."""

    def __init__(self):
        super().__init__()
        self.lrs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.lrs.append([g["lr"] for g in self.model.optimizer.param_groups])


def fit(model, callbacks, epochs=3, **kwargs):
    return model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks, **kwargs)


def hand(schedule, lr, epochs):
    out = []
    for epoch in range(epochs):
        lr = schedule(epoch, lr)
        out.append(float(lr))
    return out


def test_float_schedule_sets_every_group_and_logs_learning_rate():
    model = make_model(groups=True)
    probe = EpochLR()
    history = fit(model, [LearningRateScheduler(lambda epoch, lr: lr * 0.5), probe])
    assert history.history["learning_rate"] == [0.05, 0.025, 0.0125]
    assert probe.lrs == [[0.05, 0.05], [0.025, 0.025], [0.0125, 0.0125]]
    assert all(isinstance(v, float) for v in history.history["learning_rate"])


def test_numpy_return_seed_004_exp_decay():
    schedule = lambda epoch, lr: lr * np.exp(-0.1)  # noqa: E731
    history = fit(make_model(), [LearningRateScheduler(schedule)], epochs=4)
    assert history.history["learning_rate"] == hand(schedule, 0.1, 4)


def test_tensor_return_seed_004_schedule_ported_to_torch():
    def lr_schedule(epoch, lr):
        """Seed 004's schedule with tf.math.exp(-0.1) written as torch.exp(torch.tensor(-0.1))."""
        if epoch < 10:
            return lr + 0.001
        else:
            return lr * torch.exp(torch.tensor(-0.1))

    history = fit(make_model(), [LearningRateScheduler(lr_schedule)], epochs=12)
    assert history.history["learning_rate"] == hand(lr_schedule, 0.1, 12)
    assert history.history["learning_rate"][9] == pytest.approx(0.11)
    assert history.history["learning_rate"][11] == pytest.approx(0.11 * np.exp(-0.2), rel=1e-6)


def test_one_argument_schedule_and_int_return():
    history = fit(make_model(), [LearningRateScheduler(lambda epoch: 1 if epoch == 0 else 0.5 / epoch)])
    assert history.history["learning_rate"] == [1.0, 0.5, 0.25]


def test_schedule_without_a_readable_signature_falls_back_as_keras_does():
    class Opaque:
        __signature__ = "unreadable"  # inspect.signature raises TypeError

        def __init__(self):
            self.calls = []

        def __call__(self, *args):
            self.calls.append(args)
            if len(args) == 2:
                raise TypeError("takes 1 positional argument")
            return 0.2

    schedule = Opaque()
    history = fit(make_model(), [LearningRateScheduler(schedule)], epochs=1)
    assert schedule.calls == [(0, 0.1), (0,)]
    assert history.history["learning_rate"] == [0.2]


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ("0.1", r"schedule\(0, 0\.1\) returned builtins\.str: '0\.1'\."),
        (None, r"schedule\(0, 0\.1\) returned builtins\.NoneType: None\."),
        (True, r"schedule\(0, 0\.1\) returned builtins\.bool: True\."),
        (torch.tensor([0.1]), r"schedule\(0, 0\.1\) returned torch\.Tensor of shape \(1,\): tensor\(\[0\.1000\]\)\."),
        (torch.tensor(1), r"schedule\(0, 0\.1\) returned torch\.Tensor of shape \(\): tensor\(1\)\."),
        (np.array([0.1]), r"schedule\(0, 0\.1\) returned numpy\.ndarray of shape \(1,\)"),
    ],
)
def test_bad_returns_raise_naming_the_type_before_any_batch(returned, message):
    model = make_model()
    before = model.get_weights()
    with pytest.raises(
        TypeError,
        match=r"^LearningRateScheduler: the schedule must return a float, a numpy number or a 0-d "
        r"floating-point tensor; " + message,
    ):
        fit(model, [LearningRateScheduler(lambda epoch, lr: returned)])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert model.optimizer.param_groups[0]["lr"] == 0.1


def test_verbose_prints_keras_message(capsys):
    fit(make_model(), [LearningRateScheduler(lambda epoch, lr: lr / 2, verbose=1)], epochs=2)
    assert capsys.readouterr().out == (
        "\nEpoch 1: LearningRateScheduler setting learning rate to 0.05.\n"
        "\nEpoch 2: LearningRateScheduler setting learning rate to 0.025.\n"
    )


def test_verbose_zero_prints_nothing(capsys):
    fit(make_model(), [LearningRateScheduler(lambda epoch, lr: lr / 2)], epochs=2)
    assert capsys.readouterr().out == ""


def test_argument_errors():
    with pytest.raises(TypeError, match=r"^LearningRateScheduler: schedule must be a function f\(epoch, lr\) "
                       r"or f\(epoch\); received float: 0\.1\.$"):
        LearningRateScheduler(0.1)
    with pytest.raises(ValueError, match=r"^LearningRateScheduler: verbose must be an integer >= 0; "
                       r"received verbose=-1\.$"):
        LearningRateScheduler(lambda e: 0.1, verbose=-1)
    with pytest.raises(TypeError, match="takes no positional argument"):
        LearningRateScheduler(lambda: 0.1)


def test_optimizer_without_a_learning_rate_is_rejected_at_train_begin():
    class NoLR:
        param_groups = [{"params": [], "momentum": 0.9}]

    class Fake:
        optimizer = NoLR()

    callback = LearningRateScheduler(lambda e: 0.1)
    callback.set_model(Fake())
    with pytest.raises(ValueError, match=r"^LearningRateScheduler: the NoLR optimizer has no hyperparameter "
                       r"'learning_rate'\. It has the Keras names \[\] and the param_groups keys \['momentum'\]\.$"):
        callback.on_train_begin()


def test_plain_torch_optimizer_is_driven_through_param_groups():
    layer = nn.Linear(2, 1)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.01)

    class Fake:
        pass

    fake = Fake()
    fake.optimizer = optimizer
    callback = LearningRateScheduler(lambda epoch, lr: lr * 3)
    callback.set_model(fake)
    callback.on_train_begin()
    callback.on_epoch_begin(0)
    logs = {"loss": 1.0}
    callback.on_epoch_end(0, logs)
    assert optimizer.param_groups[0]["lr"] == 0.01 * 3
    assert logs == {"loss": 1.0, "learning_rate": 0.01 * 3}


def test_seed_002_custom_learning_rate_scheduler_equivalent(capsys):
    # Seed 002's schedule and CustomLearningRateScheduler, from examples/ (imports changed only).
    from examples.seed_002_custom_callbacks import CustomLearningRateScheduler, lr_schedule

    theirs, ours = make_model(), make_model()
    ours.load_state_dict(theirs.state_dict())
    their_probe, our_probe = EpochLR(), EpochLR()
    fit(theirs, [CustomLearningRateScheduler(lr_schedule), their_probe], epochs=15)
    history = fit(ours, [LearningRateScheduler(lr_schedule), our_probe], epochs=15)
    expected = [0.1] * 3 + [0.05] * 3 + [0.01] * 3 + [0.005] * 3 + [0.001] * 3
    assert history.history["learning_rate"] == expected
    assert [lrs[0] for lrs in their_probe.lrs] == expected == [lrs[0] for lrs in our_probe.lrs]
    assert all(torch.equal(a, b) for a, b in zip(theirs.parameters(), ours.parameters(), strict=True))
    assert "Epoch 00003: Learning rate is 0.0500." in capsys.readouterr().out


def test_resume_is_exact_because_the_rate_lives_in_the_optimizer_state():
    schedule = lambda epoch, lr: lr * 0.5  # noqa: E731
    straight = make_model()
    first = make_model()
    first.load_state_dict(straight.state_dict())
    full = fit(straight, [LearningRateScheduler(schedule)], epochs=4)

    fit(first, [LearningRateScheduler(schedule)], epochs=2)
    resumed = make_model()
    resumed.load_state_dict(first.state_dict())
    resumed.optimizer.load_state_dict(first.optimizer.state_dict())
    rest = fit(resumed, [LearningRateScheduler(schedule)], epochs=4, initial_epoch=2)
    assert rest.history["learning_rate"] == full.history["learning_rate"][2:]
    assert all(torch.isfinite(p).all() for p in straight.parameters())
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters(), strict=True))
