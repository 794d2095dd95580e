"""Model: compile variants, steps, weights, precision, accumulation and errors before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import cadence
from cadence import callbacks


def data(n=64, features=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=g)
    y = x @ torch.arange(1.0, features + 1).unsqueeze(1)
    return x, y


def linear(optimizer="sgd", **compile_kwargs):
    torch.manual_seed(0)
    model = cadence.Sequential(nn.Linear(4, 1))
    model.compile(optimizer=optimizer, loss="mse", **compile_kwargs)
    return model


def hand_sgd_steps(model, x, y, lr, batch_size, epochs=1):
    """The same training written by hand with torch.optim.SGD."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            opt.zero_grad()
            loss = ((model(x[start:start + batch_size]) - y[start:start + batch_size]) ** 2).mean()
            loss.backward()
            opt.step()


@pytest.mark.parametrize("optimizer", ["sgd", cadence.optimizers.SGD(learning_rate=0.01),
                                       torch.optim.SGD])
def test_fit_matches_a_hand_written_loop(optimizer):
    x, y = data()
    model = linear(optimizer if optimizer is not torch.optim.SGD else "sgd")
    if optimizer is torch.optim.SGD:
        model.compile(optimizer=torch.optim.SGD, loss="mse")
        for group in model.optimizer.param_groups:
            group["lr"] = 0.01
    reference = linear()
    reference.load_state_dict(model.state_dict())
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    hand_sgd_steps(reference, x, y, lr=0.01, batch_size=16, epochs=2)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_torch_optimizer_instance_is_wrapped_unchanged_and_gains_keras_attributes():
    model = cadence.Sequential(nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    model.compile(optimizer=opt, loss="mse")
    assert model.optimizer.inner_optimizer is opt and type(opt) is torch.optim.Adam
    assert model.optimizer.param_groups is opt.param_groups
    assert model.optimizer.learning_rate == pytest.approx(0.02)
    model.optimizer.lr = 0.5
    assert opt.param_groups[0]["lr"] == 0.5
    cadence.backend.set_value(model.optimizer.lr, 0.25)
    assert cadence.backend.get_value(model.optimizer.learning_rate) == 0.25


def test_torch_loss_module_and_plain_function():
    x, y = data()
    torch.manual_seed(0)
    a = cadence.Sequential(nn.Linear(4, 1))
    a.compile(optimizer="sgd", loss=nn.MSELoss())
    b = cadence.Sequential(nn.Linear(4, 1))
    b.load_state_dict(a.state_dict())

    def my_mse(y_true, y_pred):
        return ((y_pred - y_true) ** 2).mean(dim=-1)

    b.compile(optimizer="sgd", loss=my_mse)
    ha = a.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    hb = b.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    assert ha.history["loss"][0] == pytest.approx(hb.history["loss"][0], rel=1e-6)


def test_evaluate_returns_scalar_list_or_dict():
    x, y = data()
    model = linear()
    assert isinstance(model.evaluate(x, y, verbose=0), float)
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    values = model.evaluate(x, y, verbose=0)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "mae", "mse"]
    assert values == [logs["loss"], logs["mae"], logs["mse"]]
    assert logs["loss"] == pytest.approx(logs["mse"], rel=1e-6)
    assert model.metrics_names == ["loss", "mae", "mse"]


def test_predict_returns_numpy_in_order_and_structures():
    class TwoHeads(cadence.Model):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 2)
            self.b = nn.Linear(4, 1)

        def forward(self, x):
            return {"a": self.a(x), "b": self.b(x)}

    x, _ = data(n=50)
    model = TwoHeads()
    out = model.predict(x, batch_size=16, verbose=0)
    assert set(out) == {"a", "b"}
    assert isinstance(out["a"], np.ndarray) and out["a"].shape == (50, 2)
    np.testing.assert_allclose(out["b"], model.b(x).detach().numpy(), rtol=1e-6)


def test_get_set_weights_and_save_load_weights(tmp_path):
    model = linear()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(1, 4), (1,)]
    other = linear()
    other.set_weights([w + 1 for w in weights])
    np.testing.assert_array_equal(other.get_weights()[1], weights[1] + 1)
    with pytest.raises(ValueError, match=r"set_weights expects 2 arrays \(one per parameter and buffer\); received 1."):
        other.set_weights(weights[:1])
    with pytest.raises(ValueError, match=r"array 0 has shape \(4,\); expected \(1, 4\)."):
        other.set_weights([np.zeros(4), weights[1]])
    for suffix in (".pt", ".safetensors"):
        path = tmp_path / f"w{suffix}"
        model.save_weights(path)
        fresh = linear()
        fresh.set_weights([np.zeros_like(w) for w in weights])
        fresh.load_weights(path)
        for a, b in zip(fresh.get_weights(), weights, strict=True):
            np.testing.assert_array_equal(a, b)


def test_gradient_accumulation_equals_one_big_batch():
    x, y = data(n=32)
    small = linear(gradient_accumulation_steps=4)
    big = linear()
    big.load_state_dict(small.state_dict())
    small.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    big.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(small.parameters(), big.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_clipping_through_the_optimizer():
    x, y = data(n=16)
    model = cadence.Sequential(nn.Linear(4, 1))
    model.compile(optimizer=cadence.optimizers.SGD(learning_rate=1.0, clipvalue=0.01), loss="mse")
    before = [p.detach().clone() for p in model.parameters()]
    model.fit(x * 100, y * 100, batch_size=16, epochs=1, verbose=0)
    for p, b in zip(model.parameters(), before, strict=True):
        assert (p.detach() - b).abs().max() <= 0.01 + 1e-7


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_trains_on_cpu(precision):
    x, y = data()
    model = linear("adam", precision=precision)
    scalers = []

    class Watch(callbacks.Callback):
        def on_train_begin(self, logs=None):
            scalers.append(self.model._train_state.scaler)

    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[Watch()])
    assert isinstance(scalers[0], torch.amp.GradScaler) == (precision == "16-mixed")
    assert history.history["loss"][2] < history.history["loss"][0]
    assert model.predict(x, verbose=0).dtype == np.float32


def test_jit_compile_runs_through_torch_compile(monkeypatch):
    compiled = []
    original = torch.nn.Module.compile

    def spy(self, *args, **kwargs):
        compiled.append(type(self).__name__)
        return original(self, backend="eager")

    monkeypatch.setattr(torch.nn.Module, "compile", spy)
    x, y = data()
    model = linear(jit_compile=True)
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert compiled == ["Sequential"]
    assert history.history["loss"][1] < history.history["loss"][0]


def test_device_auto_is_cpu_here_and_explicit_device_is_used():
    model = linear(device="auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert model.device.type == expected
    model = linear(device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match=r"device must be 'auto'.*received device='tpu9'"):
        linear(device="tpu9")


def test_training_flag_switches_mode_and_reaches_forward():
    class WithFlag(cadence.Model):
        def __init__(self):
            super().__init__()
            self.seen = []
            self.lin = nn.Linear(4, 1)

        def forward(self, x, training=False):
            self.seen.append((training, self.training))
            return self.lin(x)

    model = WithFlag()
    model(torch.zeros(1, 4), training=True)
    model(torch.zeros(1, 4), training=False)
    assert model.seen == [(True, True), (False, False)]


# ------------------------------------------------------------------ errors before any work
def test_fit_before_compile():
    model = cadence.Sequential(nn.Linear(4, 1))
    with pytest.raises(RuntimeError, match=r"You must call compile\(\) before fit\(\)"):
        model.fit(*data())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, r"batch_size must be a positive integer; received batch_size=0."),
        ({"epochs": 2, "initial_epoch": 3},
         r"must be >= initial_epoch; received epochs=2, initial_epoch=3."),
        ({"verbose": 3}, r"verbose must be 'auto', 0, 1, 2, True or False; received verbose=3\."),
        ({"validation_split": 1.5}, r"validation_split must be a float in \[0, 1\)"),
        ({"class_weight": {0: 1.0}, "sample_weight": np.ones(64)},
         r"class_weight and sample_weight cannot be used together"),
        ({"callbacks": ["not a callback"]},
         r"Every callback must have the callback protocol \(set_model, set_params and hooks such as on_epoch_end\); received str"),
        ({"validation_freq": 0}, r"validation_freq must be an integer >= 1 or a list of epochs"),
    ],
)
def test_bad_fit_arguments_fail_before_any_work(kwargs, message):
    model = linear()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises((ValueError, TypeError), match=message):
        model.fit(*data(), verbose=kwargs.pop("verbose", 0), **kwargs)
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)


def test_ragged_lengths_name_each_input():
    model = linear()
    x, y = data()
    with pytest.raises(ValueError, match=r"Received x: 64, y: 63."):
        model.fit(x, y[:63], verbose=0)


def test_unknown_names_list_valid_ones():
    model = cadence.Sequential(nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"Unknown loss: 'msee'. Expected one of: .*'mse'"):
        model.compile(optimizer="sgd", loss="msee")
    with pytest.raises(ValueError, match=r"adamw"):
        model.compile(optimizer="adamx", loss="mse")
    with pytest.raises(ValueError, match=r"Unknown metric: 'acuracy'. Expected one of: .*'accuracy'"):
        model.compile(optimizer="sgd", loss="mse", metrics=["acuracy"])


def test_loss_needing_targets_without_y():
    model = linear()
    x, _ = data()
    message = r"compiled with a loss, which needs targets, but the batch has no y \(received x alone\)"
    with pytest.raises(ValueError, match=message):
        model.fit(x, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.evaluate(x, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.evaluate(x, verbose=0, return_dict=True)


def test_precision_and_steps_per_execution_are_checked():
    model = cadence.Sequential(nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"precision must be one of .*received precision='fp8'"):
        model.compile(optimizer="sgd", loss="mse", precision="fp8")
    with pytest.raises(ValueError, match=r"received gradient_accumulation_steps=0"):
        model.compile(optimizer="sgd", loss="mse", gradient_accumulation_steps=0)


def test_wrapping_a_non_module_is_refused():
    with pytest.raises(TypeError, match=r"cadence.Model wraps a torch.nn.Module; received int."):
        cadence.Model(3)


def test_model_without_forward_says_what_to_do():
    with pytest.raises(NotImplementedError, match=r"Subclass cadence.Model and define forward\(\)"):
        cadence.Model()(torch.zeros(1))


def test_history_is_returned_and_set_on_model():
    model = linear()
    history = model.fit(*data(), epochs=2, verbose=0)
    assert isinstance(history, callbacks.History)
    assert model.history is history
    assert history.epoch == [0, 1]


def test_unknown_metric_fails_at_compile_before_any_work():
    model = cadence.Sequential(nn.Linear(4, 1))
    with pytest.raises(ValueError, match=r"Unknown metric: 'acc2'. Expected one of: .*'accuracy'"):
        model.compile(optimizer="sgd", loss="mse", metrics=["acc2"])
    with pytest.raises(ValueError, match=r"Unknown metric: 'maee'"):
        model.compile(optimizer="sgd", loss="mse", metrics={"out": ["mae", "maee"]})
    model.compile(optimizer="sgd", loss="mse", metrics=["accuracy", "mae"])  # resolved later


def test_gradient_accumulation_continues_correctly_across_fit_calls():
    x, y = data(n=48)
    twice = linear(gradient_accumulation_steps=2)
    once = linear(gradient_accumulation_steps=2)
    once.load_state_dict(twice.state_dict())
    # Three batches per fit: the third batch's half-accumulated gradient is dropped at the
    # next fit's start, exactly as if each fit ran alone on its own data.
    twice.fit(x[:24], y[:24], batch_size=8, shuffle=False, verbose=0)
    twice.fit(x[24:], y[24:], batch_size=8, shuffle=False, verbose=0)
    alone = linear(gradient_accumulation_steps=2)
    alone.load_state_dict(once.state_dict())
    once.fit(x[:24], y[:24], batch_size=8, shuffle=False, verbose=0)
    alone.load_state_dict(once.state_dict())
    alone.optimizer.load_state_dict(once.optimizer.state_dict())
    alone.fit(x[24:], y[24:], batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(twice.parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert twice.optimizer.iterations == 2
