"""TorchScheduler: torch lr_scheduler objects per epoch and per batch, ReduceLROnPlateau fed the logs."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler

import cadence
from cadence import logs as logs_module
from cadence.callbacks import Callback, CallbackList, TorchScheduler

X = torch.arange(48, dtype=torch.float32).reshape(16, 3) / 48
Y = X.sum(dim=1, keepdim=True)


def make_model(lr=0.1):
    model = cadence.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=lr, momentum=0.9), loss="mse")
    return model


class BatchLR(Callback):
    def __init__(self):
        super().__init__()
        self.lrs = []

    def on_train_batch_begin(self, batch, logs=None):
        self.lrs.append(self.model.optimizer.param_groups[0]["lr"])


def fit(model, callbacks, epochs=3, **kwargs):
    return model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks, **kwargs)


def test_step_lr_per_epoch_logs_each_epochs_rate():
    model = make_model()
    scheduler = lr_scheduler.StepLR(model.optimizer, step_size=2, gamma=0.5)
    probe = BatchLR()
    history = fit(model, [TorchScheduler(scheduler), probe], epochs=5)
    assert history.history["learning_rate"] == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert probe.lrs == [0.1] * 4 + [0.05] * 4 + [0.025] * 2
    assert scheduler.last_epoch == 5
    assert model.optimizer.param_groups[0]["lr"] == 0.025


def test_one_cycle_per_batch_matches_a_hand_loop():
    model = make_model()
    scheduler = lr_scheduler.OneCycleLR(model.optimizer, max_lr=0.05, epochs=3, steps_per_epoch=2)
    probe = BatchLR()
    history = fit(model, [TorchScheduler(scheduler, per="batch"), probe], epochs=3)

    hand_params = [torch.zeros(1, requires_grad=True)]
    hand_optimizer = torch.optim.SGD(hand_params, lr=0.1, momentum=0.9)
    hand_scheduler = lr_scheduler.OneCycleLR(hand_optimizer, max_lr=0.05, epochs=3, steps_per_epoch=2)
    expected, momenta = [], []
    for _ in range(6):
        expected.append(hand_optimizer.param_groups[0]["lr"])
        momenta.append(hand_optimizer.param_groups[0]["momentum"])
        hand_optimizer.step()
        hand_scheduler.step()
    assert probe.lrs == expected
    assert history.history["learning_rate"] == [expected[1], expected[3], expected[5]]
    assert model.optimizer.param_groups[0]["momentum"] == hand_optimizer.param_groups[0]["momentum"]


class Recording(lr_scheduler.ReduceLROnPlateau):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fed = []

    def step(self, metrics, epoch=None):
        self.fed.append(metrics)
        super().step(metrics)


def test_reduce_lr_on_plateau_is_fed_val_loss_end_to_end():
    model = make_model(lr=0.01)
    # threshold=1 (relative, mode min): no value is ever an improvement (torch compares with
    # best * 0, and inf * 0 is nan), so with patience=0 every epoch halves the rate.
    scheduler = Recording(model.optimizer, factor=0.5, patience=0, threshold=1.0)
    history = fit(model, [TorchScheduler(scheduler)], epochs=4, validation_data=(X[:8], Y[:8]))
    assert scheduler.fed == history.history["val_loss"]
    assert history.history["learning_rate"] == [0.01, 0.005, 0.0025, 0.00125]


def test_reduce_lr_on_plateau_with_scripted_logs_and_a_monitor():
    model = make_model(lr=1.0)
    scheduler = Recording(model.optimizer, mode="max", factor=0.1, patience=1)
    callbacks = CallbackList([TorchScheduler(scheduler, monitor="accuracy")], model=model,
                             epochs=5, steps=1, verbose=0)
    callbacks.on_train_begin()
    logged = []
    for epoch, accuracy in enumerate([0.5, 0.6, 0.6, 0.6, 0.7]):
        logs = {"loss": 1.0, "accuracy": accuracy}
        callbacks.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
    assert scheduler.fed == [0.5, 0.6, 0.6, 0.6, 0.7]
    assert logged == [1.0, 1.0, 1.0, 1.0, 0.1]
    assert model.optimizer.param_groups[0]["lr"] == 0.1


def test_missing_monitor_warns_once_naming_the_keys_and_does_not_step():
    model = make_model()
    scheduler = Recording(model.optimizer, patience=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(model, [TorchScheduler(scheduler)], epochs=3)
    assert [str(w.message) for w in caught] == [
        "TorchScheduler: Recording is conditioned on 'val_loss', which is not in the epoch logs; "
        "the scheduler was not stepped. Available keys: loss."
    ]
    assert caught[0].category is RuntimeWarning
    assert scheduler.fed == []


def test_scheduler_on_another_optimizer_is_rejected_before_any_batch():
    model = make_model()
    other = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"^TorchScheduler: the scheduler was built on another optimizer "
                       r"\(SGD at 0x[0-9a-f]+\) than model\.optimizer \(SGD at 0x[0-9a-f]+\)\. Build it on "
                       r"model\.optimizer after model\.compile\(\.\.\.\)"):
        fit(model, [TorchScheduler(lr_scheduler.StepLR(other, step_size=1))])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_argument_errors():
    model = make_model()
    step = lr_scheduler.StepLR(model.optimizer, step_size=1)
    with pytest.raises(TypeError, match=r"^TorchScheduler: scheduler must be a torch\.optim\.lr_scheduler object "
                       r"built on model\.optimizer; received SGD, which has no optimizer\.$"):
        TorchScheduler(model.optimizer)
    with pytest.raises(ValueError, match=r"^TorchScheduler: per must be 'epoch' or 'batch'; received per='step'\.$"):
        TorchScheduler(step, per="step")
    with pytest.raises(ValueError, match=r"^TorchScheduler: monitor is only used by schedulers whose step\(\) "
                       r"takes a value, like ReduceLROnPlateau; StepLR takes none\. Received monitor='loss'\.$"):
        TorchScheduler(step, monitor="loss")
    plateau = lr_scheduler.ReduceLROnPlateau(model.optimizer)
    with pytest.raises(ValueError, match=r"^TorchScheduler: ReduceLROnPlateau is fed a monitored value from the "
                       r"epoch logs, so it steps per epoch; received per='batch'\.$"):
        TorchScheduler(plateau, per="batch")
    with pytest.raises(ValueError, match=r"^TorchScheduler: monitor must be a log key; received monitor=''\.$"):
        TorchScheduler(plateau, monitor="")
    assert TorchScheduler(plateau).monitor == "val_loss"


def test_duck_typed_scheduler_whose_step_takes_a_value_is_fed_the_monitor():
    model = make_model()

    class Custom:
        def __init__(self, optimizer):
            self.optimizer = optimizer
            self.values = []

        def step(self, value):
            self.values.append(value)

        def state_dict(self):
            return {"values": list(self.values)}

        def load_state_dict(self, state):
            self.values = list(state["values"])

    custom = Custom(model.optimizer)
    history = fit(model, [TorchScheduler(custom, monitor="loss")], epochs=2)
    assert custom.values == history.history["loss"]


def test_state_dict_delegates_and_a_resumed_run_matches():
    def new(model):
        return lr_scheduler.OneCycleLR(model.optimizer, max_lr=0.05, epochs=4, steps_per_epoch=2)

    straight = make_model()
    first = make_model()
    first.load_state_dict(straight.state_dict())
    straight_probe = BatchLR()
    fit(straight, [TorchScheduler(new(straight), per="batch"), straight_probe], epochs=4)

    callback = TorchScheduler(new(first), per="batch")
    probe = BatchLR()
    fit(first, [callback, probe], epochs=2)
    state = callback.state_dict()
    assert state == {"scheduler": callback.scheduler.state_dict()}
    # As BackupAndRestore does: the scheduler is built before fit, then the states are loaded.
    resumed = make_model()
    again = TorchScheduler(new(resumed), per="batch")
    resumed.load_state_dict(first.state_dict())
    resumed.optimizer.load_state_dict(first.optimizer.state_dict())
    again.load_state_dict(state)
    assert again.scheduler.last_epoch == 4
    fit(resumed, [again, probe], epochs=4, initial_epoch=2)
    assert probe.lrs == straight_probe.lrs
    assert all(torch.isfinite(p).all() for p in straight.parameters())
    assert all(torch.equal(a, b) for a, b in zip(straight.parameters(), resumed.parameters(), strict=True))


def test_per_batch_stepping_adds_no_log_conversion():
    def conversions(callbacks_for):
        model = make_model()
        before = logs_module.conversions
        fit(model, callbacks_for(model), epochs=2)
        return logs_module.conversions - before

    baseline = conversions(lambda model: [])
    with_scheduler = conversions(
        lambda model: [TorchScheduler(lr_scheduler.LinearLR(model.optimizer, total_iters=4), per="batch")]
    )
    assert with_scheduler == baseline


def test_per_batch_steps_once_per_optimizer_step_with_gradient_accumulation():
    model = cadence.Sequential(nn.Linear(3, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.1), loss="mse", gradient_accumulation_steps=2)
    scheduler = lr_scheduler.StepLR(model.optimizer, step_size=1, gamma=0.5)
    probe = BatchLR()
    # No torch warning about scheduler.step() before optimizer.step(): warnings are errors here.
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, shuffle=False,
              callbacks=[TorchScheduler(scheduler, per="batch"), probe])
    assert model.optimizer.iterations == 2 and scheduler.last_epoch == 2
    assert probe.lrs == [0.1, 0.1, 0.05, 0.05]


def test_a_scheduler_built_before_compile_on_the_users_torch_optimizer():
    model = cadence.Sequential(nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # On the user's object, before compile.
    model.compile(optimizer=opt, loss="mse", gradient_accumulation_steps=2)
    probe = BatchLR()
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0, shuffle=False,
              callbacks=[TorchScheduler(scheduler, per="batch"), probe])
    # Stepped once per optimizer step (model.optimizer counts them), and the model trains at its rate.
    assert model.optimizer.iterations == 2 and scheduler.last_epoch == 2
    assert probe.lrs == [0.1, 0.1, 0.05, 0.05] and opt.param_groups[0]["lr"] == 0.025
