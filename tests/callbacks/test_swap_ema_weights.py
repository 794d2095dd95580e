"""SwapEMAWeights: exact EMA values, swaps for validation/evaluate/predict and epochs, finalize, state."""

from __future__ import annotations

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


def make_model(accumulation=1):
    model = cadence.Sequential(nn.Linear(3, 4), nn.Linear(4, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.1), loss="mse",
                  gradient_accumulation_steps=accumulation)
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


def hand_ema(snapshots, decay):
    ema = None
    for snapshot in snapshots:
        if ema is None:
            ema = [w.clone() for w in snapshot]
        else:
            ema = [e.mul_(decay).add_(w, alpha=1 - decay) for e, w in zip(ema, snapshot, strict=True)]
    return ema


def fit(model, callbacks, epochs=2, **kwargs):
    return model.fit(X, Y, batch_size=8, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks, **kwargs)


def test_ema_is_exact_against_a_hand_computation():
    model = make_model()
    ema = SwapEMAWeights(decay=0.9, finalize=False)
    probe = Snapshots(["on_train_batch_end"])
    fit(model, [ema, probe], epochs=3)
    steps = probe.seen["on_train_batch_end"]
    assert len(steps) == 6 and ema.updates == 6
    assert same(ema.ema_weights, hand_ema(steps, 0.9))
    float64 = None
    for snapshot in steps:
        snapshot = [w.double() for w in snapshot]
        float64 = snapshot if float64 is None else [0.9 * e + 0.1 * w for e, w in zip(float64, snapshot, strict=True)]
    for e, f in zip(ema.ema_weights, float64, strict=True):
        np.testing.assert_allclose(e.double().numpy(), f.numpy(), rtol=1e-6, atol=1e-7)
    assert same(weights(model), steps[-1])  # finalize=False: the trained weights stay


def test_validation_runs_with_ema_weights_and_training_resumes_with_trained_ones():
    model = make_model()
    ema = SwapEMAWeights(decay=0.5, finalize=False)
    probe = Snapshots(["on_train_batch_end", "on_test_begin", "on_test_end", "on_epoch_end"])
    history = fit(model, [ema, probe], validation_data=(XV, YV))
    steps = probe.seen["on_train_batch_end"]
    expected_ema = [hand_ema(steps[:2], 0.5), hand_ema(steps, 0.5)]
    assert [same(a, b) for a, b in zip(probe.seen["on_test_begin"], expected_ema, strict=True)] == [True, True]
    assert same(probe.seen["on_test_end"][0], steps[1]) and same(probe.seen["on_epoch_end"][1], steps[3])
    check = make_model()
    for epoch, ema_weights in enumerate(expected_ema):
        with torch.no_grad():
            for p, w in zip(check.parameters(), ema_weights, strict=True):
                p.copy_(w)
        assert history.history["val_loss"][epoch] == pytest.approx(check.evaluate(XV, YV, verbose=0), rel=1e-6)


def test_swap_on_epoch_leaves_ema_weights_in_the_model_between_epochs():
    model = make_model()
    ema = SwapEMAWeights(swap_on_epoch=True, decay=0.5, finalize=False)
    probe = Snapshots(["on_train_batch_end", "on_epoch_begin", "on_epoch_end"])
    fit(model, [ema, probe], epochs=3)
    steps = probe.seen["on_train_batch_end"]
    for epoch in range(3):
        assert same(probe.seen["on_epoch_end"][epoch], hand_ema(steps[: 2 * epoch + 2], 0.5))
    for epoch in (1, 2):  # swapped back before the epoch trains
        assert same(probe.seen["on_epoch_begin"][epoch], steps[2 * epoch - 1])
    assert same(weights(model), steps[-1]) and not ema.ema_in_model


def test_finalize_writes_the_ema_into_the_model_as_keras_use_ema_does():
    for swap_on_epoch in (False, True):
        model = make_model()
        ema = SwapEMAWeights(swap_on_epoch=swap_on_epoch, decay=0.5)
        probe = Snapshots(["on_train_batch_end"])
        fit(model, [ema, probe])
        assert same(weights(model), hand_ema(probe.seen["on_train_batch_end"], 0.5))
        assert not ema.ema_in_model


def test_evaluate_and_predict_use_the_ema_then_restore_the_trained_weights():
    model = make_model()
    ema = SwapEMAWeights(decay=0.5, finalize=False)
    fit(model, [ema])
    trained = weights(model)
    ema_model = make_model()
    with torch.no_grad():
        for p, w in zip(ema_model.parameters(), ema.ema_weights, strict=True):
            p.copy_(w)
    assert model.evaluate(XV, YV, verbose=0, callbacks=[ema]) == ema_model.evaluate(XV, YV, verbose=0)
    assert model.evaluate(XV, YV, verbose=0) != ema_model.evaluate(XV, YV, verbose=0)
    np.testing.assert_array_equal(model.predict(XV, verbose=0, callbacks=[ema]), ema_model.predict(XV, verbose=0))
    assert same(weights(model), trained)


def test_ema_updates_only_when_the_optimizer_steps():
    model = make_model(accumulation=2)
    ema = SwapEMAWeights(decay=0.5, finalize=False)
    probe = Snapshots(["on_train_batch_end"])
    fit(model, [ema, probe], epochs=2)
    assert model.optimizer.iterations == 2 and ema.updates == 2
    assert same(ema.ema_weights, hand_ema(probe.seen["on_train_batch_end"][1::2], 0.5))


def test_decay_zero_tracks_the_weights():
    model = make_model()
    ema = SwapEMAWeights(decay=0.0, finalize=False)
    fit(model, [ema])
    assert same(ema.ema_weights, weights(model))


def test_resumed_run_has_the_same_ema_and_weights():
    reference = make_model()

    def new_model():
        model = make_model()
        model.load_state_dict(reference.state_dict())
        return model

    straight = new_model()
    straight_ema = SwapEMAWeights(swap_on_epoch=True, decay=0.7)
    fit(straight, [straight_ema], epochs=3)

    first = new_model()
    first_ema = SwapEMAWeights(swap_on_epoch=True, decay=0.7)

    class Backup(Callback):
        """Saves what BackupAndRestore saves at the first epoch end, after the EMA swap, then stops."""

        def on_epoch_end(self, epoch, logs=None):
            self.saved = (first_ema.state_dict(), {k: v.clone() for k, v in self.model.state_dict().items()},
                          self.model.optimizer.state_dict())
            self.model.stop_training = True

    backup = Backup()
    fit(first, [first_ema, backup], epochs=3)
    ema_state, model_state, optimizer_state = backup.saved
    assert ema_state["in_model"] is True and ema_state["backup"] is not None

    resumed = make_model()
    resumed.load_state_dict(model_state)
    resumed.optimizer.load_state_dict(optimizer_state)
    resumed_ema = SwapEMAWeights(swap_on_epoch=True, decay=0.7)
    resumed_ema.load_state_dict(ema_state)
    fit(resumed, [resumed_ema], epochs=3, initial_epoch=1)
    assert same(resumed_ema.ema_weights, straight_ema.ema_weights)
    assert same(weights(resumed), weights(straight))
    assert resumed_ema.updates == straight_ema.updates == 6


def test_state_for_another_model_is_rejected_at_train_begin():
    ema = SwapEMAWeights()
    fit(make_model(), [ema], epochs=1)
    other = cadence.Sequential(nn.Linear(3, 1))
    other.compile(optimizer="sgd", loss="mse")
    moved = SwapEMAWeights()
    moved.load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match=r"^SwapEMAWeights: the EMA holds 4 tensors of shapes \[\(4, 3\), \(4,\), "
                       r"\(1, 4\), \(1,\)\], but the model has 2 floating-point parameters of shapes \[\(1, 3\), "
                       r"\(1,\)\]\. Use one SwapEMAWeights per model\."):
        other.fit(X, Y, epochs=1, verbose=0, callbacks=[moved])


def test_argument_errors():
    with pytest.raises(ValueError, match=r"^SwapEMAWeights: decay must be a number in \[0, 1\); received decay=1\.$"):
        SwapEMAWeights(decay=1)
    with pytest.raises(ValueError, match=r"received decay=True\.$"):
        SwapEMAWeights(decay=True)
    with pytest.raises(TypeError, match=r"^SwapEMAWeights: swap_on_epoch must be True or False; received 1\.$"):
        SwapEMAWeights(swap_on_epoch=1)
    with pytest.raises(TypeError, match=r"^SwapEMAWeights: finalize must be True or False; received None\.$"):
        SwapEMAWeights(finalize=None)


def test_no_host_transfer_in_the_per_batch_update(monkeypatch):
    model = make_model()
    ema = SwapEMAWeights(decay=0.5)
    ema.set_model(model)
    ema.on_train_begin()

    def forbidden(*args, **kwargs):
        raise AssertionError("host-device transfer")

    for batch in range(3):
        model.train_step((X[:8], Y[:8]))
        with monkeypatch.context() as patch:
            for name in ("item", "__float__", "__bool__", "tolist", "cpu", "numpy"):
                patch.setattr(torch.Tensor, name, forbidden)
            ema.on_train_batch_end(batch)
    assert ema.updates == 3

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
        model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.05, momentum=0.5), loss="mse")
        one_cycle = lr_scheduler.OneCycleLR(model.optimizer, max_lr=0.05, epochs=4, steps_per_epoch=3,
                                            cycle_momentum=False)
        return model, [
            HyperparameterScheduler("momentum", lambda step, m: min(m + 0.01, 0.9), per="batch"),
            TorchScheduler(one_cycle, per="batch"),
            SwapEMAWeights(swap_on_epoch=True, decay=0.8),
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
    assert same(callbacks[2].ema_weights, straight_callbacks[2].ema_weights)
    assert callbacks[0].batches_seen == 12 and callbacks[2].updates == 12
