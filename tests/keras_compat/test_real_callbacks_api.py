"""Callbacks written the way real projects write them, run on cadence with only imports changed.

Each is a close variant of a callback published for tf.keras: a triangular cyclic learning rate
set per batch through ``K.set_value(self.model.optimizer.lr, ...)``, an LR finder that evaluates
inside a batch hook and restores the weights, stochastic weight averaging over
``model.layers[i].get_weights()``, and a time limit registered with
``register_keras_serializable``. Expected values are computed here, by hand or with plain torch.
"""

import cadence.keras.backend as K
import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import keras


def _data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.3).astype(np.float32)
    return x, y


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def _replay(net, x, y, batch_size, lrs, after_step=None):
    """Train a plain torch copy with SGD, batch by batch in order, with the given LRs."""
    optimizer = torch.optim.SGD(net.parameters(), lr=lrs[0])
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    step = 0
    while step < len(lrs):
        for start in range(0, len(x), batch_size):
            if step == len(lrs):
                break
            for group in optimizer.param_groups:
                group["lr"] = lrs[step]
            optimizer.zero_grad()
            loss = ((net(xs[start:start + batch_size]) - ys[start:start + batch_size]) ** 2).mean()
            loss.backward()
            optimizer.step()
            step += 1
            if after_step is not None:
                after_step(net)
    return net


class CyclicLR(keras.callbacks.Callback):
    """Triangular cyclic learning rate, per batch (after Smith 2017, as published for Keras)."""

    def __init__(self, base_lr=0.001, max_lr=0.006, step_size=2.0):
        super().__init__()
        self.base_lr, self.max_lr, self.step_size = base_lr, max_lr, step_size
        self.clr_iterations = 0.0
        self.trn_iterations = 0.0
        self.history = {}

    def clr(self):
        cycle = np.floor(1 + self.clr_iterations / (2 * self.step_size))
        x = np.abs(self.clr_iterations / self.step_size - 2 * cycle + 1)
        return self.base_lr + (self.max_lr - self.base_lr) * np.maximum(0, (1 - x))

    def on_train_begin(self, logs={}):  # noqa: B006 - written as the published callback is
        logs = logs or {}
        if self.clr_iterations == 0:
            K.set_value(self.model.optimizer.lr, self.base_lr)
        else:
            K.set_value(self.model.optimizer.lr, self.clr())

    def on_batch_end(self, epoch, logs=None):
        logs = logs or {}
        self.trn_iterations += 1
        self.clr_iterations += 1
        self.history.setdefault("lr", []).append(K.get_value(self.model.optimizer.lr))
        self.history.setdefault("iterations", []).append(self.trn_iterations)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        K.set_value(self.model.optimizer.lr, self.clr())


def test_cyclic_lr_per_batch_with_set_value():
    x, y = _data()
    model = cadence.Model(_net())
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="mse", device="cpu")
    clr = CyclicLR(base_lr=0.001, max_lr=0.006, step_size=2.0)
    model.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0, callbacks=[clr])
    # Iteration i: cycle = floor(1 + i/4), x = |i/2 - 2*cycle + 1|, lr = 0.001 + 0.005*max(0, 1-x).
    expected = [0.001, 0.0035, 0.006, 0.0035, 0.001, 0.0035, 0.006, 0.0035]
    assert clr.history["lr"] == pytest.approx(expected)
    assert clr.history["iterations"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert len(clr.history["loss"]) == 8
    assert K.get_value(model.optimizer.lr) == pytest.approx(0.001)  # clr() after the 8th batch
    replayed = _replay(_net(), x, y, 2, expected)
    for ours, theirs in zip(model.module.parameters(), replayed.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs)


class LRFinder(keras.callbacks.Callback):
    """Grow the LR every batch and record the validation loss; restore the weights at the end."""

    def __init__(self, x_val, y_val, min_lr=1e-3, max_lr=1e-1, steps=4):
        super().__init__()
        self.x_val, self.y_val = x_val, y_val
        self.min_lr = min_lr
        self.mult = (max_lr / min_lr) ** (1 / (steps - 1))
        self.lrs, self.losses = [], []

    def on_train_begin(self, logs=None):
        self.initial_weights = self.model.get_weights()
        K.set_value(self.model.optimizer.lr, self.min_lr)

    def on_train_batch_end(self, batch, logs=None):
        loss = self.model.evaluate(self.x_val, self.y_val, verbose=False)
        lr = K.get_value(self.model.optimizer.lr)
        self.lrs.append(lr)
        self.losses.append(loss)
        K.set_value(self.model.optimizer.lr, lr * self.mult)

    def on_train_end(self, logs=None):
        self.model.set_weights(self.initial_weights)


def test_lr_finder_evaluates_inside_a_batch_hook_and_restores_weights():
    x, y = _data()
    x_val, y_val = _data(n=5, seed=1)
    model = cadence.Model(_net())
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    before = model.get_weights()
    finder = LRFinder(x_val, y_val, min_lr=1e-3, max_lr=1e-1, steps=4)
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0, callbacks=[finder])
    # LRs 1e-3 * (100 ** (1/3)) ** k for k = 0..3.
    expected_lrs = [1e-3, 1e-3 * 100 ** (1 / 3), 1e-3 * 100 ** (2 / 3), 1e-1]
    assert finder.lrs == pytest.approx(expected_lrs)
    val_losses = []
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val)

    def evaluate(net):
        with torch.no_grad():
            val_losses.append(((net(xv) - yv) ** 2).mean().item())

    _replay(_net(), x, y, 2, expected_lrs, after_step=evaluate)
    assert finder.losses == pytest.approx(val_losses, rel=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert model.training is True


class SWA(keras.callbacks.Callback):
    """Stochastic weight averaging from ``start_epoch``, layer by layer."""

    def __init__(self, start_epoch):
        super().__init__()
        self.start_epoch = start_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.start_epoch:
            self.swa_weights = [self.model.layers[i].get_weights() for i in range(len(self.model.layers))]
            self.n_models = 1
        elif epoch > self.start_epoch:
            for i in range(len(self.model.layers)):
                current = self.model.layers[i].get_weights()
                self.swa_weights[i] = [(swa * self.n_models + w) / (self.n_models + 1)
                                       for swa, w in zip(self.swa_weights[i], current, strict=True)]
            self.n_models += 1

    def on_train_end(self, logs=None):
        for i in range(len(self.model.layers)):
            self.model.layers[i].set_weights(self.swa_weights[i])


class Snapshots(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([p.detach().clone() for p in self.model.parameters()])


def test_swa_averages_layer_weights_and_sets_them_at_train_end():
    x, y = _data()
    model = cadence.Model(_net())
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse", device="cpu")
    assert [layer.name for layer in model.layers] == ["linear", "tanh", "linear_1"]
    snapshots = Snapshots()
    model.fit(x, y, batch_size=4, epochs=5, shuffle=False, verbose=0,
              callbacks=[snapshots, SWA(start_epoch=2)])
    # The mean of epochs 2, 3 and 4's weights.
    expected = [(a + b + c) / 3 for a, b, c in zip(*snapshots.weights[2:], strict=True)]
    for ours, theirs in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(ours.detach(), theirs)
    assert not torch.equal(expected[0], snapshots.weights[4][0])


@keras.utils.register_keras_serializable()
class TimeLimit(keras.callbacks.Callback):
    """Stop training once ``max_seconds`` have passed since it began."""

    def __init__(self, max_seconds, clock):
        super().__init__()
        self.max_seconds = max_seconds
        self.clock = clock
        self.stopped_batch = None

    def get_config(self):
        return {"max_seconds": self.max_seconds}

    def on_train_begin(self, logs=None):
        self.start = self.clock()

    def on_batch_end(self, batch, logs=None):
        if self.clock() - self.start > self.max_seconds:
            self.model.stop_training = True
            self.stopped_batch = batch


class Counter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("batch", batch))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch", epoch))

    def on_train_end(self, logs=None):
        self.calls.append(("end",))


def test_registered_time_limit_stops_training():
    ticks = iter(range(100))  # A clock that advances one second per reading.
    limit = TimeLimit(max_seconds=2.5, clock=lambda: float(next(ticks)))
    assert keras.utils.get_registered_object("Custom>TimeLimit") is TimeLimit
    assert keras.utils.get_registered_name(TimeLimit) == "Custom>TimeLimit"
    x, y = _data()
    model = cadence.Model(_net())
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    counter = Counter()
    history = model.fit(x, y, batch_size=2, epochs=3, verbose=0, callbacks=[limit, counter])
    # Readings: 0 at train begin, then 1, 2, 3 after batches 0, 1, 2; 3 - 0 > 2.5 stops.
    assert limit.stopped_batch == 2
    assert counter.calls == [("batch", 0), ("batch", 1), ("batch", 2), ("epoch", 0), ("end",)]
    assert len(history.history["loss"]) == 1
