"""TorchOptimizerWrapper: a user's torch optimizer, unchanged, with Keras's extras, against plain torch."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler

import cadence
from cadence import backend as K
from cadence import optimizers
from cadence.callbacks import BackupAndRestore, Callback, LambdaCallback, TorchScheduler
from cadence.optimizers import TorchOptimizerWrapper, schedules

X = torch.linspace(-1.0, 1.0, 36).reshape(12, 3)
Y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.25


def new_net():
    torch.manual_seed(0)
    return nn.Linear(3, 1)


def plain_torch_run(epochs, batch_size=4, scheduler_per_epoch=True):
    """The same training written with plain torch: SGD with momentum, StepLR per epoch."""
    net = new_net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(epochs):
        for start in range(0, len(X), batch_size):
            opt.zero_grad()
            loss = ((net(X[start:start + batch_size]) - Y[start:start + batch_size]) ** 2).mean()
            loss.backward()
            opt.step()
        if scheduler_per_epoch:
            sched.step()
    return net


def compiled_with_a_torch_optimizer():
    """A model compiled with a torch SGD and a StepLR the user built on it before compile."""
    net = new_net()
    model = cadence.Model(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    model.compile(optimizer=opt, loss="mse")
    return model, opt, sched


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def fit(model, callbacks, epochs=3, **kwargs):
    return model.fit(X, Y, batch_size=4, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks, **kwargs)


@pytest.mark.parametrize("driver", ["TorchScheduler", "user callback"])
def test_a_scheduler_built_on_the_users_optimizer_before_compile_drives_training(driver):
    model, opt, sched = compiled_with_a_torch_optimizer()
    if driver == "TorchScheduler":
        callbacks = [TorchScheduler(sched)]
    else:
        callbacks = [LambdaCallback(on_epoch_end=lambda epoch, logs: sched.step())]
    history = fit(model, callbacks)
    reference = plain_torch_run(epochs=3)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert opt.param_groups[0]["lr"] == model.optimizer.lr == 0.1 * 0.5**3
    assert model.optimizer.iterations == 9
    if driver == "TorchScheduler":
        assert history.history["learning_rate"] == [0.1, 0.05, 0.025]


def test_the_users_optimizer_is_left_unchanged_and_shared():
    model, opt, _ = compiled_with_a_torch_optimizer()
    wrapper = model.optimizer
    assert type(opt) is torch.optim.SGD and not hasattr(opt, "iterations")
    assert isinstance(wrapper, torch.optim.Optimizer) and wrapper.inner_optimizer is opt
    assert wrapper.param_groups is opt.param_groups and wrapper.state is opt.state
    assert wrapper.defaults is opt.defaults
    # A state dict loaded into the user's object replaces its groups: the wrapper still reads them.
    fresh = torch.optim.SGD(list(model.parameters()), lr=0.3, momentum=0.9)
    opt.load_state_dict(fresh.state_dict())
    assert wrapper.param_groups is opt.param_groups and wrapper.lr == 0.3
    extra = torch.zeros(2, requires_grad=True)
    wrapper.add_param_group({"params": [extra], "lr": 0.5})
    assert opt.param_groups[1]["params"] == [extra] and opt.param_groups[1]["lr"] == 0.5
    assert repr(wrapper).startswith("TorchOptimizerWrapper(SGD (")


def test_keras_hyperparameters_read_and_write_the_users_groups():
    model, opt, _ = compiled_with_a_torch_optimizer()
    assert model.optimizer.learning_rate == 0.1 and model.optimizer.momentum == 0.9
    model.optimizer.lr = 0.05
    assert opt.param_groups[0]["lr"] == 0.05
    K.set_value(model.optimizer.lr, 0.25)
    assert opt.param_groups[0]["lr"] == 0.25 and K.get_value(model.optimizer.learning_rate) == 0.25
    model.optimizer.momentum = 0.5
    assert opt.param_groups[0]["momentum"] == 0.5
    assert model.optimizer.get_config() == {
        "name": "sgd", "learning_rate": 0.25, "momentum": 0.5, "weight_decay": 0.0, "nesterov": False,
        "clipnorm": None, "clipvalue": None, "global_clipnorm": None,
        "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
    }
    rms = TorchOptimizerWrapper(torch.optim.RMSprop([torch.zeros(1, requires_grad=True)], alpha=0.8))
    assert rms.rho == 0.8
    with pytest.raises(AttributeError, match=r"^Adagrad optimizer has no hyperparameter 'momentum'; it has: "
                       r"learning_rate, epsilon, weight_decay\.$"):
        TorchOptimizerWrapper(torch.optim.Adagrad([torch.zeros(1, requires_grad=True)])).momentum = 0.9


def test_clipnorm_with_and_without_a_closure():
    weight = torch.tensor([3.0, 4.0], requires_grad=True)
    opt = TorchOptimizerWrapper(torch.optim.SGD([weight], lr=1.0), clipnorm=1.0)
    weight.grad = torch.tensor([3.0, 4.0])
    opt.step()  # The gradient's norm 5 is clipped to 1: [0.6, 0.8].
    torch.testing.assert_close(weight.detach(), torch.tensor([2.4, 3.2]), rtol=0, atol=0)

    def closure():
        weight.grad = torch.tensor([0.0, -10.0])
        return torch.tensor(7.0)

    assert opt.step(closure).item() == 7.0
    torch.testing.assert_close(weight.detach(), torch.tensor([2.4, 4.2]), rtol=0, atol=0)
    opt.clipnorm = None
    opt.clipvalue = 0.5
    opt.step(closure)
    torch.testing.assert_close(weight.detach(), torch.tensor([2.4, 4.7]), rtol=0, atol=0)
    assert opt.iterations == 3 and opt.get_config()["clipvalue"] == 0.5


def test_schedule_decay_and_ema_by_hand():
    weight = torch.tensor([1.0], requires_grad=True)
    opt = TorchOptimizerWrapper(torch.optim.SGD([weight], lr=1.0),
                                learning_rate=schedules.ExponentialDecay(1.0, 1, 0.5),
                                use_ema=True, ema_momentum=0.5)
    for _ in range(3):
        weight.grad = torch.tensor([1.0])
        opt.step()
    # Rates 1, 0.5, 0.25: weights 0, -0.5, -0.75; averages 0 (first step copies), -0.25, -0.5.
    assert weight.item() == -0.75 and opt.learning_rate == 0.125
    assert opt.state_dict()["ema_averages"][0].item() == -0.5
    opt.finalize_variable_values()
    assert weight.item() == -0.5
    decayed = torch.tensor([0.0], requires_grad=True)
    plain = torch.optim.SGD([decayed], lr=1.0)
    opt = TorchOptimizerWrapper(plain, decay=1.0)
    for _ in range(3):
        decayed.grad = torch.tensor([1.0])
        opt.step()
    expected = torch.tensor([0.0])
    for rate in (1.0, 1.0 / 2, 1.0 / 3):  # learning_rate / (1 + decay * iterations)
        expected.add_(torch.tensor([1.0]), alpha=-rate)
    assert torch.equal(decayed.detach(), expected) and plain.param_groups[0]["lr"] == 1.0


def test_state_dict_round_trip_and_pickle_keep_the_extras():
    weight = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = TorchOptimizerWrapper(torch.optim.Adam([weight], lr=0.1), clipvalue=0.5, use_ema=True)
    for _ in range(2):
        weight.grad = torch.tensor([1.0, -1.0])
        opt.step()
    state = opt.state_dict()
    assert state["iterations"] == 2 and len(state["ema_averages"]) == 1
    assert set(state) == {"state", "param_groups", "iterations", "ema_averages", "ema_swapped"}
    other_weight = torch.tensor([1.0, 2.0], requires_grad=True)
    other = TorchOptimizerWrapper(torch.optim.Adam([other_weight], lr=0.1), use_ema=True)
    other.load_state_dict(copy.deepcopy(state))
    assert other.iterations == 2 and torch.equal(other.inner_optimizer.state[other_weight]["exp_avg"],
                                                 opt.inner_optimizer.state[weight]["exp_avg"])
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert type(clone) is TorchOptimizerWrapper and type(clone.inner_optimizer) is torch.optim.Adam
        assert clone.iterations == 2 and clone.clipvalue == 0.5 and clone.use_ema
        assert clone.param_groups is clone.inner_optimizer.param_groups
        clone.param_groups[0]["params"][0].grad = torch.tensor([1.0, 1.0])
        clone.step()
        assert clone.iterations == 3
    assert opt.iterations == 2


def test_hooks_registered_through_the_wrapper_run_on_the_users_optimizer():
    weight = torch.tensor([0.0], requires_grad=True)
    plain = torch.optim.SGD([weight], lr=0.1)
    opt = TorchOptimizerWrapper(plain)
    calls = []
    opt.register_step_pre_hook(lambda optimizer, args, kwargs: calls.append(("pre", optimizer)))
    opt.register_step_post_hook(lambda optimizer, args, kwargs: calls.append(("post", optimizer)))
    weight.grad = torch.tensor([1.0])
    opt.step()
    assert calls == [("pre", plain), ("post", plain)]
    opt.zero_grad()
    assert weight.grad is None


def test_a_scheduler_built_on_model_optimizer_after_compile():
    model, _, _ = compiled_with_a_torch_optimizer()
    sched = lr_scheduler.StepLR(model.optimizer, step_size=1, gamma=0.5)
    fit(model, [TorchScheduler(sched)])
    reference = plain_torch_run(epochs=3)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_grad_scaler_steps_the_wrapper():
    weight = torch.tensor([1.0, -1.0], requires_grad=True)
    opt = TorchOptimizerWrapper(torch.optim.SGD([weight], lr=0.5), clipnorm=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    scaler.scale((weight * torch.tensor([3.0, 4.0])).sum()).backward()
    scaler.step(opt)
    scaler.update()
    # Unscaled gradient [3, 4], clipped to [0.6, 0.8], then an SGD step of rate 0.5.
    torch.testing.assert_close(weight.detach(), torch.tensor([0.7, -1.4]), rtol=0, atol=1e-7)
    assert opt.iterations == 1


def test_backup_and_restore_resumes_a_torch_optimizer_to_the_bit(tmp_path):
    def build():
        net = new_net()
        model = cadence.Model(net)
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        model.compile(optimizer=optimizers.TorchOptimizerWrapper(opt, clipnorm=1.0), loss="mse")
        return model, [TorchScheduler(sched)]

    class Crash(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == 5:
                raise RuntimeError("crash")

    straight, callbacks = build()
    history = fit(straight, callbacks)
    crashed, callbacks = build()
    with pytest.raises(RuntimeError, match="crash"):
        fit(crashed, [*callbacks, Crash(), BackupAndRestore(tmp_path, save_freq=1)])
    resumed, callbacks = build()
    resumed_history = fit(resumed, [*callbacks, BackupAndRestore(tmp_path, save_freq=1)])
    assert resumed_history.history == history.history
    assert same(resumed.parameters(), straight.parameters())
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 9
    assert resumed.optimizer.lr == straight.optimizer.lr == 0.05 * 0.5**3


def test_refusals():
    with pytest.raises(TypeError, match=r"^TorchOptimizerWrapper expects a torch\.optim\.Optimizer instance; "
                       r"received str: 'sgd'\.$"):
        TorchOptimizerWrapper("sgd")
    built = optimizers.get("sgd", [torch.zeros(1, requires_grad=True)])
    with pytest.raises(TypeError, match=r"^TorchOptimizerWrapper wraps a plain torch optimizer; received a cadence "
                       r"optimizer \(SGD\), which has the Keras extras already\. Pass it to compile as it is\.$"):
        TorchOptimizerWrapper(built)
    with pytest.raises(ValueError, match=r"^`ema_momentum` must be in the range \[0, 1\]"):
        TorchOptimizerWrapper(torch.optim.SGD([torch.zeros(1, requires_grad=True)]), ema_momentum=2)


def test_a_saved_model_names_the_torch_class_of_the_wrapped_optimizer(tmp_path):
    model, opt, _ = compiled_with_a_torch_optimizer()
    fit(model, [], epochs=1)
    assert model.compile_config["optimizer"] == "SGD"
    path = tmp_path / "model.pt"
    model.save(path)
    fresh = cadence.Model(new_net())  # Not compiled: rebuilt from the saved configuration.
    cadence.load_model(path, fresh)
    assert type(fresh.optimizer).__name__ == "SGD" and isinstance(fresh.optimizer, torch.optim.SGD)
    assert fresh.optimizer.iterations == 3 and fresh.optimizer.lr == 0.1 and fresh.optimizer.momentum == 0.9
    assert same(fresh.parameters(), model.parameters())
    adam_model = cadence.Model(new_net())
    adam_model.compile(optimizer=torch.optim.Adam(adam_model.parameters()), loss="mse")
    with pytest.raises(ValueError, match=r"holds the state of a SGD optimizer; the model's optimizer is a Adam\. "
                       r"Compile the model with the same optimizer\.$"):
        cadence.load_model(path, adam_model)
