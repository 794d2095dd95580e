"""The steps (cadence/steps.py): every override honoured on every batch, expected values by plain torch."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks


def regression_data(n=48, features=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def linear(features=3, seed=0):
    torch.manual_seed(seed)
    return cadence.Model(nn.Linear(features, 1))


def copy_of(model):
    torch.manual_seed(99)
    twin = nn.Linear(model.module.in_features, 1)
    twin.load_state_dict(model.module.state_dict())
    return twin


def hand_sgd(module, x, y, loss_fn, lr, batch_size, epochs):
    """Plain torch: per batch zero_grad, loss, backward, step; return each epoch's mean loss."""
    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    means = []
    for epoch in range(epochs):
        total, count = 0.0, 0
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(module(xb), yb, epoch)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
            count += len(xb)
        means.append(total / count)
    return means


class HalfMSE(cadence.losses.MeanSquaredError):
    def call(self, y_true, y_pred):
        return 0.5 * torch.mean((y_true - y_pred) ** 2, dim=-1)


def test_a_loss_subclass_call_is_what_fit_trains_on_and_evaluate_reports():
    x, y = regression_data()
    model = linear()
    reference = copy_of(model)
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.05), loss=HalfMSE(), device="cpu")
    with torch.no_grad():
        before = (0.5 * ((model.module(x) - y) ** 2).mean()).item()
    assert model.evaluate(x, y, batch_size=48, verbose=0) == pytest.approx(before, rel=1e-6)
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    expected = hand_sgd(reference, x, y, lambda p, t, e: 0.5 * ((p - t) ** 2).mean(), 0.05, 16, 3)
    assert history.history["loss"] == pytest.approx(expected, rel=1e-5)
    for a, b in zip(model.module.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_label_smoothing_changed_by_a_callback_at_epoch_2_changes_the_loss_from_then_on():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 3, generator=g)
    y = (x.sum(dim=1, keepdim=True) > 0).float()
    loss = cadence.losses.BinaryCrossentropy(from_logits=True)

    class Smooth(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                loss.label_smoothing = 0.2

    model = linear()
    reference = copy_of(model)
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.1), loss=loss, device="cpu")
    history = model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=[Smooth()])

    def bce(prediction, target, epoch):
        smoothing = 0.2 if epoch >= 2 else 0.0
        target = target * (1 - smoothing) + 0.5 * smoothing
        return nn.functional.binary_cross_entropy_with_logits(prediction, target)

    expected = hand_sgd(reference, x, y, bce, 0.1, 8, 4)
    assert history.history["loss"] == pytest.approx(expected, rel=1e-5)
    for a, b in zip(model.module.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_an_optimizer_over_other_parameters_is_refused_at_compile():
    model = linear()
    other = nn.Linear(3, 1)
    message = (r"The optimizer \(SGD\) holds none of the model's 2 trainable parameters, so fit "
               r"would train nothing: .* Received an optimizer over 2 other parameters\.")
    with pytest.raises(ValueError, match=message):
        model.compile(optimizer=torch.optim.SGD(other.parameters(), lr=0.1), loss="mse")
    assert not model.compiled
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss="mse", device="cpu")
    assert model.compiled


class MetricOfDoubled(cadence.metrics.MeanAbsoluteError):
    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(y_true, 2 * y_pred, sample_weight)


class PercentMAE(cadence.metrics.MeanAbsoluteError):
    def result(self):
        return super().result() * 100


def test_a_metric_subclass_update_state_and_result_are_used_every_batch():
    x, y = regression_data()
    model = linear()
    model.compile(optimizer="sgd", loss="mse", device="cpu",
                  metrics=[MetricOfDoubled(name="doubled"), PercentMAE(name="percent")])
    with torch.no_grad():
        prediction = model.module(x)
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert logs["doubled"] == pytest.approx((2 * prediction - y).abs().mean().item(), rel=1e-6)
    assert logs["percent"] == pytest.approx(100 * (prediction - y).abs().mean().item(), rel=1e-6)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert history.history["percent"][0] > 10 * history.history["doubled"][0] / 2


class Seed003Ported(cadence.Model):
    """Seed 003's train_step ported as the README says: loss.backward() for the tape."""

    def train_step(self, data):
        x, y = data
        y_pred = self(x, training=True)
        loss = self.compiled_loss(y, y_pred, regularization_losses=self.losses)
        trainable_vars = self.trainable_variables
        loss.backward()
        gradients = [v.grad for v in trainable_vars]
        self.optimizer.apply_gradients(zip(gradients, trainable_vars, strict=True))
        self.compiled_metrics.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def test_seed_003s_ported_train_step_sees_only_its_own_batchs_gradients():
    x, y = regression_data()
    torch.manual_seed(0)
    model = Seed003Ported(nn.Linear(3, 1))
    reference = copy_of(model)
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=0.05), loss="mse", device="cpu")
    history = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    expected = hand_sgd(reference, x, y, lambda p, t, e: ((p - t) ** 2).mean(), 0.05, 16, 3)
    assert history.history["loss"] == pytest.approx(expected, rel=1e-5)
    for a, b in zip(model.module.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


class Extended(cadence.Model):
    def train_step(self, data):
        logs = super().train_step(data)
        logs["twice_loss"] = 2 * logs["loss"]
        return logs

    def test_step(self, data):
        logs = super().test_step(data)
        logs.update(extra=torch.tensor(7.0))
        return logs


def test_super_steps_return_a_plain_dict_the_users_step_extends():
    x, y = regression_data()
    torch.manual_seed(0)
    model = Extended(nn.Linear(3, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    seen = []

    class Read(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(dict(logs))

    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[Read()])
    assert all(entry["twice_loss"] == pytest.approx(2 * entry["loss"]) for entry in seen)
    assert history.history["twice_loss"] == pytest.approx([2 * history.history["loss"][0]])
    assert type(model.train_step((x[:4], y[:4]))) is dict
    assert model.evaluate(x, y, verbose=0, return_dict=True)["extra"] == 7.0


def test_a_model_without_trainable_parameters_compiles_and_fits_as_in_keras():
    x, y = regression_data()
    model = linear()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    with torch.no_grad():
        expected = ((model.module(x) - y) ** 2).mean().item()
    model.compile(optimizer="adam", loss="mse", device="cpu")
    with pytest.warns(UserWarning, match=r"^The model does not have any trainable weights\.$"):
        history = model.fit(x, y, batch_size=48, epochs=2, verbose=0)
    assert history.history["loss"] == pytest.approx([expected, expected], rel=1e-6)


@pytest.mark.parametrize(("flag", "bars"), [(False, 0), (True, 1)])
def test_verbose_takes_keras_booleans(flag, bars):
    x, y = regression_data()
    model = linear()
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    seen = []

    class Params(callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(self.params["verbose"])

    model.fit(x, y, epochs=1, verbose=flag, callbacks=[Params()])
    model.evaluate(x, y, verbose=flag)
    model.predict(x, verbose=flag)
    assert seen == [bars]


def test_stop_evaluating_and_stop_predicting_end_the_loop_after_the_batch():
    x, y = regression_data(n=40)
    model = linear()
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    batches = []

    class StopAfterTwo(callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            batches.append(("test", batch))
            if batch == 1:
                self.model.stop_evaluating = True

        def on_predict_batch_end(self, batch, logs=None):
            batches.append(("predict", batch))
            if batch == 1:
                self.model.stop_predicting = True

    with torch.no_grad():
        expected = ((model.module(x[:16]) - y[:16]) ** 2).mean().item()
    loss = model.evaluate(x, y, batch_size=8, verbose=0, callbacks=[StopAfterTwo()])
    assert loss == pytest.approx(expected, rel=1e-6)
    assert model.predict(x, batch_size=8, verbose=0, callbacks=[StopAfterTwo()]).shape == (16, 1)
    assert batches == [("test", 0), ("test", 1), ("predict", 0), ("predict", 1)]
    # Reset at the start of the next call, as in Keras 3.
    assert model.evaluate(x, y, batch_size=8, verbose=0) == pytest.approx(
        ((model.module(x) - y) ** 2).mean().item(), rel=1e-6)
    assert model.predict(x, batch_size=8, verbose=0).shape == (40, 1)


def test_fit_evaluate_predict_declare_keras_arguments():
    keras_fit = ["x", "y", "batch_size", "epochs", "verbose", "callbacks", "validation_split",
                 "validation_data", "shuffle", "class_weight", "sample_weight", "initial_epoch",
                 "steps_per_epoch", "validation_steps", "validation_batch_size", "validation_freq"]
    keras_evaluate = ["x", "y", "batch_size", "verbose", "sample_weight", "steps", "callbacks",
                      "return_dict"]
    keras_predict = ["x", "batch_size", "verbose", "steps", "callbacks"]
    for method, names in ((cadence.Model.fit, keras_fit), (cadence.Model.evaluate, keras_evaluate),
                          (cadence.Model.predict, keras_predict)):
        parameters = inspect.signature(method).parameters
        assert list(parameters)[1:len(names) + 1] == names
        assert all(p.kind is not p.VAR_KEYWORD for p in parameters.values())


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")  # torch.compile.
def test_jit_compile_gives_the_eager_history():
    x, y = regression_data()
    histories = []
    for jit in (False, True):
        torch.manual_seed(0)
        model = cadence.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        model.compile(optimizer="adam", loss="mse", metrics=["mae"], jit_compile=jit,
                      device="cpu")
        torch.manual_seed(1)
        histories.append(model.fit(x, y, batch_size=16, epochs=3, verbose=0,
                                   validation_split=0.25).history)
    eager, compiled = histories
    assert sorted(eager) == sorted(compiled)
    for key in eager:
        np.testing.assert_allclose(compiled[key], eager[key], rtol=0, atol=1e-5)


def test_the_step_function_returns_a_lazy_view_of_the_metrics_a_direct_call_a_dict():
    from cadence.logs import MetricLogs

    x, y = regression_data()
    model = linear()
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"], device="cpu")
    with torch.no_grad():
        prediction = model.module(x[:4])  # The weights before the step: what the step sees.
    expected = {"loss": ((prediction - y[:4]) ** 2).mean().item(),
                "mae": (prediction - y[:4]).abs().mean().item()}
    logs = model.make_train_function()((x[:4], y[:4]))
    assert isinstance(logs, MetricLogs)
    assert sorted(logs) == sorted(expected)
    assert logs.to_python() == pytest.approx(expected, rel=1e-6)
    assert type(model.train_step((x[:4], y[:4]))) is dict  # A direct call: a plain dict.
    assert type(model.test_step((x[:4], y[:4]))) is dict
