"""SwapEMAWeights: swaps of the optimizer's EMA for validation/evaluate/predict and epochs, by hand, and resume."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import logs as logs_module
from cadence.callbacks import Callback, SwapEMAWeights

X = torch.arange(48, dtype=torch.float32).reshape(16, 3) / 48
Y = X.sum(dim=1, keepdim=True)
XV, YV = X[:8] + 0.5, Y[:8] + 1.5


def make_model(accumulation=1, momentum=0.5, optimizer=None):
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    if optimizer is None:
        optimizer = cadence.optimizers.SGD(learning_rate=0.1, use_ema=True, ema_momentum=momentum)
    model.compile(optimizer=optimizer, loss="mse", gradient_accumulation_steps=accumulation)
    return model


def with_weights(values):
    """A model of the same shape holding ``values``."""
    model = make_model()
    with torch.no_grad():
        for p, w in zip(model.parameters(), values, strict=True):
            p.copy_(w)
    return model


def weights(model):
    return [p.detach().clone() for p in model.parameters()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


class Snapshots(Callback):
    """Records the model's weights at the hooks it is asked to watch."""

    def __init__(self, hooks):
        super().__init__()
        self.seen = {hook: [] for hook in hooks}

    def _take(self, hook):
        if hook in self.seen:
            self.seen[hook].append(weights(self.model))

    def on_train_batch_end(self, batch, logs=None):
        self._take("on_train_batch_end")

    def on_test_begin(self, logs=None):
        self._take("on_test_begin")

    def on_test_end(self, logs=None):
        self._take("on_test_end")

    def on_epoch_begin(self, epoch, logs=None):
        self._take("on_epoch_begin")

    def on_epoch_end(self, epoch, logs=None):
        self._take("on_epoch_end")


def hand_ema(snapshots, momentum):
    """Keras's average of the weights after each step: the first step copies them."""
    ema = None
    for snapshot in snapshots:
        if ema is None:
            ema = [w.clone() for w in snapshot]
        else:
            ema = [e.mul_(momentum).add_(w, alpha=1 - momentum) for e, w in zip(ema, snapshot, strict=True)]
    return ema


def averages(model):
    return model.optimizer.state_dict()["ema_averages"]


def fit(model, callbacks, epochs=2, **kwargs):
    return model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks, **kwargs)


def test_validation_runs_with_the_optimizers_ema_and_training_resumes_with_trained_weights():
    model = make_model(momentum=0.5)
    probe = Snapshots(["on_train_batch_end", "on_test_begin", "on_test_end", "on_epoch_end"])
    history = fit(model, [SwapEMAWeights(), probe], validation_data=(XV, YV))
    steps = probe.seen["on_train_batch_end"]
    assert len(steps) == 4
    expected_ema = [hand_ema(steps[:2], 0.5), hand_ema(steps, 0.5)]
    assert [same(a, b) for a, b in zip(probe.seen["on_test_begin"], expected_ema, strict=True)] == [True, True]
    assert same(probe.seen["on_test_end"][0], steps[1]) and same(probe.seen["on_epoch_end"][1], steps[3])
    for epoch, ema_weights in enumerate(expected_ema):
        check = with_weights(ema_weights)
        assert history.history["val_loss"][epoch] == pytest.approx(check.evaluate(XV, YV, verbose=0), rel=1e-6)
    # Float64 by hand: the average is Keras's formula, not an artefact of float32.
    float64 = None
    for snapshot in steps:
        snapshot = [w.double() for w in snapshot]
        float64 = snapshot if float64 is None else [0.5 * e + 0.5 * w for e, w in zip(float64, snapshot, strict=True)]
    for e, f in zip(weights(model), float64, strict=True):  # fit finalizes: the EMA is in the model.
        np.testing.assert_allclose(e.double().numpy(), f.numpy(), rtol=1e-6, atol=1e-7)


def test_swap_on_epoch_leaves_ema_weights_in_the_model_between_epochs():
    model = make_model(momentum=0.5)
    probe = Snapshots(["on_train_batch_end", "on_epoch_begin", "on_epoch_end"])
    fit(model, [SwapEMAWeights(swap_on_epoch=True), probe], epochs=3)
    steps = probe.seen["on_train_batch_end"]
    for epoch in range(3):
        assert same(probe.seen["on_epoch_end"][epoch], hand_ema(steps[: 2 * epoch + 2], 0.5))
    for epoch in (1, 2):  # swapped back before the epoch trains
        assert same(probe.seen["on_epoch_begin"][epoch], steps[2 * epoch - 1])
    # At the end of fit the optimizer leaves the EMA in the model, and in its averages.
    assert same(weights(model), hand_ema(steps, 0.5)) and same(averages(model), weights(model))
    assert model.optimizer.ema_weights_swapped is False


def test_a_run_stopped_early_while_swapped_ends_with_the_ema():
    class StopAtFirstEpochEnd(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    model = make_model(momentum=0.5)
    probe = Snapshots(["on_train_batch_end"])
    fit(model, [probe, SwapEMAWeights(swap_on_epoch=True), StopAtFirstEpochEnd()], epochs=3)
    assert same(weights(model), hand_ema(probe.seen["on_train_batch_end"], 0.5))


def test_evaluate_and_predict_use_the_ema_then_restore_the_trained_weights():
    model = make_model(momentum=0.5)
    steps = []
    for start in (0, 8, 0):
        model.train_step((X[start:start + 8], Y[start:start + 8]))
        steps.append(weights(model))
    ema_model = with_weights(hand_ema(steps, 0.5))
    assert model.evaluate(XV, YV, verbose=0, callbacks=[SwapEMAWeights()]) == ema_model.evaluate(XV, YV, verbose=0)
    assert model.evaluate(XV, YV, verbose=0) != ema_model.evaluate(XV, YV, verbose=0)
    np.testing.assert_array_equal(model.predict(XV, verbose=0, callbacks=[SwapEMAWeights()]),
                                  ema_model.predict(XV, verbose=0))
    assert same(weights(model), steps[-1]) and same(averages(model), hand_ema(steps, 0.5))


def test_a_torch_optimizer_wrapped_with_use_ema():
    def build():
        torch.manual_seed(0)
        return cadence.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))

    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.compile(optimizer=cadence.optimizers.TorchOptimizerWrapper(opt, use_ema=True, ema_momentum=0.25),
                  loss="mse")
    probe = Snapshots(["on_train_batch_end", "on_test_begin"])
    fit(model, [SwapEMAWeights(), probe], validation_data=(XV, YV))
    steps = probe.seen["on_train_batch_end"]
    assert same(probe.seen["on_test_begin"][1], hand_ema(steps, 0.25))
    assert same(weights(model), hand_ema(steps, 0.25))


def test_the_ema_updates_only_when_the_optimizer_steps():
    model = make_model(accumulation=2, momentum=0.5)
    probe = Snapshots(["on_train_batch_end", "on_test_begin"])
    fit(model, [SwapEMAWeights(), probe], epochs=2, validation_data=(XV, YV))
    assert model.optimizer.iterations == 2
    applied = probe.seen["on_train_batch_end"][1::2]
    assert same(probe.seen["on_test_begin"][1], hand_ema(applied, 0.5))


def test_an_optimizer_without_use_ema_is_refused_before_any_batch():
    message = r"^SwapEMAWeights must be used when `use_ema=True` is set on the optimizer\. Received: use_ema=False\n"
    for optimizer in (cadence.optimizers.SGD(learning_rate=0.1), "adam"):
        model = make_model(optimizer=optimizer)
        before = weights(model)
        with pytest.raises(ValueError, match=message):
            fit(model, [SwapEMAWeights()])
        assert same(weights(model), before)
    torch_model = cadence.Sequential(nn.Linear(3, 1))
    torch_model.compile(optimizer=torch.optim.SGD(torch_model.parameters(), lr=0.1), loss="mse")
    with pytest.raises(ValueError, match=message):
        torch_model.evaluate(XV, YV, verbose=0, callbacks=[SwapEMAWeights()])


def test_evaluating_before_any_step_is_refused():
    model = make_model()
    with pytest.raises(ValueError, match=r"^The optimizer has no moving average of the weights to swap in yet: "
                       r"the first optimizer step creates it \(use_ema=True, iterations=0\)\.\nRaised by callback "
                       r"SwapEMAWeights in on_test_begin\.$"):
        model.evaluate(XV, YV, verbose=0, callbacks=[SwapEMAWeights()])


def test_resumed_run_has_the_same_ema_and_weights():
    straight = make_model(momentum=0.7)
    fit(straight, [SwapEMAWeights(swap_on_epoch=True)], epochs=3)

    class Backup(Callback):
        """Saves what BackupAndRestore saves at the first epoch end, after the EMA swap, then stops."""

        def on_epoch_end(self, epoch, logs=None):
            self.saved = ({k: v.clone() for k, v in self.model.state_dict().items()},
                          copy.deepcopy(self.model.optimizer.state_dict()))
            self.model.stop_training = True

    first = make_model(momentum=0.7)
    backup = Backup()
    fit(first, [SwapEMAWeights(swap_on_epoch=True), backup], epochs=3)
    model_state, optimizer_state = backup.saved
    assert optimizer_state["ema_swapped"] is True

    resumed = make_model(momentum=0.7)
    resumed.load_state_dict(model_state)
    resumed.optimizer.load_state_dict(optimizer_state)
    assert resumed.optimizer.ema_weights_swapped
    fit(resumed, [SwapEMAWeights(swap_on_epoch=True)], epochs=3, initial_epoch=1)
    assert same(averages(resumed), averages(straight))
    assert same(weights(resumed), weights(straight))
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 6


def test_argument_errors():
    with pytest.raises(TypeError, match=r"^SwapEMAWeights: swap_on_epoch must be True or False; received 1\.$"):
        SwapEMAWeights(swap_on_epoch=1)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'decay'"):
        SwapEMAWeights(decay=0.9)  # The momentum is the optimizer's ema_momentum, as in Keras.


def test_the_callback_adds_no_log_conversion():
    def conversions(callbacks):
        before = logs_module.conversions
        fit(make_model(), callbacks)
        return logs_module.conversions - before

    assert conversions([SwapEMAWeights()]) == conversions([])


@pytest.mark.filterwarnings("ignore:Callback method .* is slow:UserWarning")
@pytest.mark.parametrize("stop_after", [2, 3, 7])
def test_backup_and_restore_resumes_the_schedulers_and_the_ema_exactly(tmp_path, stop_after):
    from torch.optim import lr_scheduler

    from cadence.callbacks import BackupAndRestore, HyperparameterScheduler, TorchScheduler

    x = torch.randn(24, 3)
    y = x.sum(dim=1, keepdim=True)

    def build():
        torch.manual_seed(0)
        model = cadence.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
        model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.05, momentum=0.5, use_ema=True,
                                                       ema_momentum=0.8), loss="mse")
        one_cycle = lr_scheduler.OneCycleLR(model.optimizer, max_lr=0.05, epochs=4, steps_per_epoch=3,
                                            cycle_momentum=False)
        return model, [
            HyperparameterScheduler("momentum", lambda step, m: min(m + 0.01, 0.9), per="batch"),
            TorchScheduler(one_cycle, per="batch"),
            SwapEMAWeights(swap_on_epoch=True),
        ]

    class Crash(Callback):
        def __init__(self):
            super().__init__()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if self.batches == stop_after:
                raise RuntimeError("crash")

    def run(model, callbacks):
        return model.fit(x, y, batch_size=8, epochs=4, verbose=0, validation_data=(x[:8], y[:8]),
                         callbacks=callbacks)

    straight, straight_callbacks = build()
    history = run(straight, straight_callbacks)

    crashed, callbacks = build()
    with pytest.raises(RuntimeError, match="crash"):
        run(crashed, [*callbacks, Crash(), BackupAndRestore(tmp_path, save_freq=1)])
    resumed, callbacks = build()
    resumed_history = run(resumed, [*callbacks, BackupAndRestore(tmp_path, save_freq=1)])

    assert resumed_history.history == history.history
    assert history.history["momentum"] == pytest.approx([0.53, 0.56, 0.59, 0.62])
    assert same(weights(resumed), weights(straight))
    assert same(averages(resumed), averages(straight))
    assert callbacks[0].batches_seen == 12 and resumed.optimizer.iterations == 12
