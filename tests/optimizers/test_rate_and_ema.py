"""A schedule as the learning rate, tf.keras 2's decay and Keras 3's EMA on cadence optimizers.

Expected values are worked out by hand from Keras's formulas: SGD with a constant
gradient of 1 moves a weight by exactly the learning rate of each step.
"""

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import backend as K
from cadence import callbacks, optimizers
from cadence.optimizers import schedules

NOT_SETTABLE = (
    r"^This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
    r"constructor argument, hence its learning rate is not settable\. If you need the learning "
    r"rate to be settable, you should instantiate the optimizer with a float `learning_rate` "
    r"argument\."
)


def _weight(value=1.0):
    return nn.Parameter(torch.tensor([value], dtype=torch.float64))


def _steps(optimizer, weight, count, grad=1.0):
    for _ in range(count):
        weight.grad = torch.full_like(weight, grad)
        optimizer.step()


def test_schedule_is_evaluated_at_iterations_before_each_step():
    weight = _weight()
    opt = optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.5, 1, 0.5)).build([weight])
    assert opt.iterations == 0 and float(opt.learning_rate) == 0.5
    _steps(opt, weight, 3)
    # Rates 0.5, 0.25, 0.125 at iterations 0, 1, 2.
    assert weight.item() == 1.0 - 0.5 - 0.25 - 0.125
    assert opt.iterations == 3
    assert float(opt.learning_rate) == 0.0625  # The rate of the next step.
    assert K.get_value(opt.lr) == 0.0625
    assert isinstance(opt.learning_rate_schedule, schedules.ExponentialDecay)
    assert opt.get_config()["learning_rate"] == {
        "module": "cadence.optimizers.schedules", "class_name": "ExponentialDecay",
        "config": {"initial_learning_rate": 0.5, "decay_steps": 1, "decay_rate": 0.5,
                   "staircase": False, "name": "ExponentialDecay"},
    }


def test_number_cannot_be_assigned_to_a_scheduled_rate():
    opt = optimizers.Adam(learning_rate=schedules.CosineDecay(0.1, 10)).build([_weight()])
    with pytest.raises(TypeError, match=NOT_SETTABLE + "$"):
        opt.learning_rate = 0.01
    with pytest.raises(TypeError, match=NOT_SETTABLE + "$"):
        K.set_value(opt.lr, 0.01)


def test_schedule_assigned_to_a_torch_optimizer_and_a_rate_callable():
    weight = _weight()
    opt = optimizers.get(torch.optim.SGD([weight], lr=1.0))
    opt.learning_rate = schedules.PiecewiseConstantDecay([1], [0.5, 0.25])
    _steps(opt, weight, 3)
    assert weight.item() == 1.0 - 0.5 - 0.5 - 0.25  # Steps 0 and 1 <= boundary 1.
    opt.learning_rate = lambda: 0.125  # Keras: a callable without arguments.
    _steps(opt, weight, 1)
    assert weight.item() == -0.25 - 0.125
    opt.learning_rate = 0.5  # A number replaces a callable (not a schedule).
    _steps(opt, weight, 1)
    assert weight.item() == -0.375 - 0.5 and opt.learning_rate_schedule is None


def test_iterations_and_schedule_resume_exactly():
    schedule = schedules.InverseTimeDecay(1.0, 1, 1.0)
    weight = _weight()
    opt = optimizers.SGD(learning_rate=schedule).build([weight])
    _steps(opt, weight, 2)
    state = opt.state_dict()
    assert state["iterations"] == 2
    resumed_weight = _weight(weight.item())
    resumed = optimizers.SGD(learning_rate=schedule).build([resumed_weight])
    resumed.load_state_dict(state)
    assert resumed.iterations == 2
    _steps(resumed, resumed_weight, 1)
    # Rates 1/1, 1/2, then 1/3 after the resume.
    assert resumed_weight.item() == pytest.approx(1.0 - 1.0 - 0.5 - 1.0 / 3.0, rel=1e-15)


def test_compiled_schedule_drives_fit():
    linear = nn.Linear(1, 1, bias=False)
    model = cadence.Sequential(linear)
    with torch.no_grad():
        linear.weight.fill_(0.0)
    model.compile(optimizer=optimizers.SGD(learning_rate=schedules.ExponentialDecay(0.1, 1, 0.5)),
                  loss="mse")
    x = torch.ones(4, 1)
    y = torch.ones(4, 1)
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    # Plain SGD by hand: d/dw mean((w - 1)^2) = 2 (w - 1); rates 0.1 then 0.05.
    w = 0.0
    for rate in (0.1, 0.05):
        w -= rate * 2 * (w - 1.0)
    assert linear.weight.item() == pytest.approx(w, rel=1e-6)
    assert model.optimizer.iterations == 2


@pytest.mark.parametrize(
    "callback",
    [lambda model: callbacks.LearningRateScheduler(lambda epoch, lr: lr),
     lambda model: callbacks.ReduceLROnPlateau(monitor="loss"),
     lambda model: callbacks.HyperparameterScheduler("learning_rate", lambda epoch: 0.1),
     lambda model: callbacks.TorchScheduler(torch.optim.lr_scheduler.StepLR(model.optimizer, 1))],
)
def test_lr_callbacks_refuse_a_scheduled_optimizer_before_training(callback):
    model = cadence.Sequential(nn.Linear(1, 1))
    model.compile(optimizer=optimizers.SGD(learning_rate=schedules.CosineDecay(0.1, 10)),
                  loss="mse")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(TypeError, match=NOT_SETTABLE):
        model.fit(torch.ones(4, 1), torch.ones(4, 1), epochs=1, verbose=0,
                  callbacks=[callback(model)])
    assert model.optimizer.iterations == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_tf_keras_2_decay():
    weight = _weight()
    opt = optimizers.SGD(learning_rate=0.1, decay=0.5).build([weight])
    assert opt.decay == 0.5
    _steps(opt, weight, 3)
    # lr / (1 + decay * iterations) with iterations 0, 1, 2.
    assert weight.item() == pytest.approx(1.0 - 0.1 - 0.1 / 1.5 - 0.1 / 2.0, rel=1e-15)
    assert float(opt.learning_rate) == 0.1 and opt.param_groups[0]["lr"] == 0.1
    opt.decay = 0.0
    _steps(opt, weight, 1)
    assert weight.item() == pytest.approx(1.0 - 0.1 - 0.1 / 1.5 - 0.1 / 2.0 - 0.1, rel=1e-15)
    with pytest.raises(ValueError, match=r"^decay cannot be less than 0\. Received: decay=-1\.$"):
        opt.decay = -1
    assert optimizers.SGD(decay=0.25).get_config()["decay"] == 0.25


def test_decay_on_top_of_a_schedule():
    weight = _weight()
    opt = optimizers.get(torch.optim.SGD([weight], lr=1.0))
    opt.learning_rate = schedules.ExponentialDecay(1.0, 1, 0.5)
    opt.decay = 1.0
    _steps(opt, weight, 2)
    assert weight.item() == 1.0 - 1.0 - 0.5 / 2.0


def test_ema_averages_and_finalize():
    weight = _weight(0.0)
    opt = optimizers.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.5).build([weight])
    assert (opt.use_ema, opt.ema_momentum, opt.ema_overwrite_frequency) == (True, 0.5, None)
    _steps(opt, weight, 3, grad=-1.0)
    # Weights 1, 2, 3; average 1 (first step copies), 0.5*1 + 0.5*2, 0.5*1.5 + 0.5*3.
    assert weight.item() == 3.0
    assert opt.state_dict()["ema_averages"][0].item() == 2.25
    opt.finalize_variable_values()
    assert weight.item() == 2.25


def test_ema_overwrite_frequency():
    weight = _weight(0.0)
    opt = optimizers.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.5,
                         ema_overwrite_frequency=2).build([weight])
    _steps(opt, weight, 3, grad=-1.0)
    # Step 2 overwrites the weight 2 with the average 1.5; step 3 gives 2.5, average 2.0.
    assert weight.item() == 2.5
    assert opt.state_dict()["ema_averages"][0].item() == 2.0


def test_ema_state_resumes_exactly():
    weight = _weight(0.0)
    opt = optimizers.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.5).build([weight])
    _steps(opt, weight, 2, grad=-1.0)
    resumed_weight = _weight(weight.item())
    resumed = optimizers.SGD(learning_rate=1.0, use_ema=True, ema_momentum=0.5).build(
        [resumed_weight]
    )
    resumed.load_state_dict(opt.state_dict())
    _steps(resumed, resumed_weight, 1, grad=-1.0)
    resumed.finalize_variable_values()
    assert resumed_weight.item() == 2.25
    with pytest.raises(ValueError, match=r"^The optimizer state holds 1 EMA averages for 2 "
                       r"parameters; expected one average per parameter\.$"):
        optimizers.SGD(use_ema=True).build([_weight(), _weight()]).load_state_dict(
            opt.state_dict()
        )


def test_ema_argument_checks():
    with pytest.raises(ValueError, match=r"^`ema_momentum` must be in the range \[0, 1\]\. "
                       r"Received: ema_momentum=1\.5$"):
        optimizers.Adam(use_ema=True, ema_momentum=1.5)
    with pytest.raises(ValueError, match=r"^`ema_overwrite_frequency` must be an integer >= 1 "
                       r"or None\. Received: ema_overwrite_frequency=0$"):
        optimizers.Adam(use_ema=True, ema_overwrite_frequency=0)


def test_fit_finalizes_ema_weights():
    linear = nn.Linear(1, 1, bias=False)
    model = cadence.Sequential(linear)
    with torch.no_grad():
        linear.weight.fill_(0.0)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5),
                  loss="mse")
    model.fit(torch.ones(4, 1), torch.ones(4, 1), batch_size=2, epochs=1, shuffle=False,
              verbose=0)
    # By hand: w 0 -> 0.2 -> 0.36; averages 0.2, then 0.5*0.2 + 0.5*0.36 = 0.28.
    assert linear.weight.item() == pytest.approx(0.28, rel=1e-6)


def _resumable_fit(directory, crash_at=None):
    """Fit with a schedule, decay and EMA, crashing once after optimizer step `crash_at`."""

    class Crash(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == crash_at:
                raise RuntimeError("crash")

    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    schedule = schedules.CosineDecay(0.01, 20, warmup_target=0.02, warmup_steps=3)
    model.compile(optimizer=optimizers.Adam(learning_rate=schedule, decay=0.01, use_ema=True,
                                            ema_momentum=0.9, ema_overwrite_frequency=4),
                  loss="mse")
    x = np.random.default_rng(0).random((40, 4), dtype=np.float32)
    y = np.random.default_rng(1).random((40, 1), dtype=np.float32)
    extra = [] if crash_at is None else [Crash()]
    torch.manual_seed(1)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0,
              callbacks=[*extra, callbacks.BackupAndRestore(str(directory), save_freq=1)])
    return model


def test_schedule_decay_and_ema_resume_to_the_bit(tmp_path):
    reference = _resumable_fit(tmp_path / "a")
    with pytest.raises(RuntimeError, match="crash"):
        _resumable_fit(tmp_path / "b", crash_at=7)
    resumed = _resumable_fit(tmp_path / "b")
    assert resumed.optimizer.iterations == reference.optimizer.iterations == 15
    for (key, a), b in zip(reference.state_dict().items(), resumed.state_dict().values(),
                           strict=True):
        assert torch.equal(a, b), key
