"""Planned steps: the same values as the general steps, to the bit, and the general way whenever
a batch, the model or its settings fall outside the plan."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import cadence
from cadence.losses import fused
from cadence.trainer import step_plan


class GeneralModel(cadence.Model):
    """Overrides the steps with themselves: never planned, so it runs the general steps."""

    def train_step(self, data):
        return super().train_step(data)

    def test_step(self, data):
        return super().test_step(data)


def _regression(samples=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((samples, 6), dtype=np.float32)
    y = (x @ rng.random(6, dtype=np.float32) + 0.1 * rng.random(samples, dtype=np.float32))
    return x, y.astype(np.float32)


def _classification(samples=96, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((samples, 6), dtype=np.float32)
    return x, rng.integers(0, classes, samples)


def _twins(module_fn, **compile_kwargs):
    """Return a planned model and a general one with the same weights and settings."""
    models = []
    for cls in (cadence.Model, GeneralModel):
        torch.manual_seed(0)
        model = cls(module_fn())
        # Each its own loss and metric objects: a metric object keeps its state.
        model.compile(device="cpu", **copy.deepcopy(compile_kwargs))
        models.append(model)
    return models


def _fit_both(planned, general, x, y, **fit_kwargs):
    histories = []
    for model in (planned, general):
        torch.manual_seed(1)
        histories.append(model.fit(x, y, verbose=0, **fit_kwargs).history)
    return histories


def _assert_same(planned, general, histories):
    assert histories[0] == histories[1]  # Floats compared exactly.
    for a, b in zip(planned.parameters(), general.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("loss", "metrics", "kind", "outputs"),
    [
        ("mse", ["mae", "mse"], "regression", 1),
        ("mean_absolute_error", ["mean_squared_error"], "regression", 1),
        (cadence.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"], "classes", 4),
        (cadence.losses.BinaryCrossentropy(from_logits=True), ["binary_accuracy"], "binary", 1),
        ("huber", [cadence.metrics.RootMeanSquaredError()], "regression", 1),  # no fused kernels
        ("mse", [cadence.metrics.MeanAbsoluteError(), "mae"], "regression", 3),  # per-sample means
    ],
)
def test_planned_fit_and_evaluate_equal_the_general_steps_to_the_bit(loss, metrics, kind, outputs):
    if kind == "classes":
        x, y = _classification()
    else:
        x, y = _regression()
        if kind == "binary":
            y = (y > np.median(y)).astype(np.float32)
        if outputs > 1:
            y = np.repeat(y[:, None], outputs, axis=1)
    planned, general = _twins(
        lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, outputs)),
        optimizer="adam", loss=loss, metrics=metrics,
    )
    histories = _fit_both(planned, general, x, y, batch_size=16, epochs=3, validation_split=0.25)
    _assert_same(planned, general, histories)
    evaluated = [m.evaluate(x, y, batch_size=32, verbose=0, return_dict=True) for m in (planned, general)]
    assert evaluated[0] == evaluated[1]


def test_the_general_step_runs_once_per_fit_and_once_per_evaluation(monkeypatch):
    calls = {"train": 0, "test": 0}
    train_finish, test_finish = cadence.Model._train_on_prediction, cadence.Model._test_on_prediction

    def counted_train(self, *args):
        calls["train"] += 1
        return train_finish(self, *args)

    def counted_test(self, *args):
        calls["test"] += 1
        return test_finish(self, *args)

    monkeypatch.setattr(cadence.Model, "_train_on_prediction", counted_train)
    monkeypatch.setattr(cadence.Model, "_test_on_prediction", counted_test)
    planned, _ = _twins(lambda: nn.Linear(6, 1), optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = _regression()
    planned.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=0)
    # 2 epochs of 5 batches, 2 validations of 2 batches: only the first batch of each goes the
    # general way (it builds the loss and metrics the plan is made from).
    assert calls == {"train": 1, "test": 2}


def test_a_batch_unlike_the_planned_ones_goes_the_general_way():
    # A Sequence whose targets change dtype and shape from batch to batch.
    x, y = _regression(64)

    class Shifting(cadence.utils.Sequence):
        def __len__(self):
            return 4

        def __getitem__(self, index):
            rows = slice(index * 16, (index + 1) * 16)
            xb, yb = torch.from_numpy(x[rows]), torch.from_numpy(y[rows])
            if index == 1:
                return xb, yb.double()
            if index == 2:
                return xb, yb[:, None]
            if index == 3:
                return xb[:8], yb[:8]
            return xb, yb

    planned, general = _twins(lambda: nn.Linear(6, 1), optimizer="sgd", loss="mse", metrics=["mae"])
    histories = _fit_both(planned, general, Shifting(), None, epochs=3)
    _assert_same(planned, general, histories)


def test_sample_weights_and_class_weights_take_the_general_step_with_the_same_values():
    x, y = _classification()
    weights = np.linspace(0.5, 2.0, len(x)).astype(np.float32)
    for fit_kwargs in ({"sample_weight": weights}, {"class_weight": {0: 1.0, 1: 2.0, 2: 0.5, 3: 1.0}}):
        planned, general = _twins(
            lambda: nn.Linear(6, 4), optimizer="sgd",
            loss=cadence.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"], weighted_metrics=["accuracy"],
        )
        histories = _fit_both(planned, general, x, y, batch_size=16, epochs=2, **fit_kwargs)
        _assert_same(planned, general, histories)


def test_a_model_recompiled_by_a_callback_is_planned_again_for_its_new_loss(monkeypatch):
    class Recompile(cadence.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.compile(optimizer="sgd", loss="mae", metrics=["mse"], device="cpu")

    general_batches = []
    finish = cadence.Model._train_on_prediction

    def counted(self, *args):
        general_batches.append(self)
        return finish(self, *args)

    monkeypatch.setattr(cadence.Model, "_train_on_prediction", counted)
    planned, general = _twins(lambda: nn.Linear(6, 1), optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = _regression()
    histories = _fit_both(planned, general, x, y, batch_size=16, epochs=3, callbacks=[Recompile()])
    _assert_same(planned, general, histories)
    assert list(histories[0]) == ["loss", "mae", "mse"]
    # The first batch after each compile went the general way; every other one was planned.
    assert general_batches.count(planned) == 2 and general_batches.count(general) == 18


def test_a_forward_hook_added_during_training_is_called_on_every_later_batch():
    seen = []

    class AddHook(cadence.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2 and not seen:
                self.model.register_forward_hook(lambda module, args, output: seen.append(1))

    planned, _ = _twins(lambda: nn.Linear(6, 1), optimizer="sgd", loss="mse")
    x, y = _regression(96)
    planned.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[AddHook()])
    assert len(seen) == 3  # Batches 3, 4 and 5 of 6.


@pytest.mark.parametrize(
    "override",
    ["train_step", "compute_loss", "compute_metrics", "backward_and_step", "get_metrics_result",
     "autocast", "_train_on_prediction"],
)
def test_a_model_that_overrides_a_step_method_is_never_planned(override):
    def passthrough(self, *args, **kwargs):
        return getattr(cadence.Model, override)(self, *args, **kwargs)

    subclass = type("Custom", (cadence.Model,), {override: passthrough})
    model = subclass(nn.Linear(6, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    assert step_plan.train_function(model) == model.train_step
    assert step_plan.test_function(model) == model.test_step


def test_a_step_replaced_on_the_instance_is_the_one_fit_calls():
    model = cadence.Model(nn.Linear(6, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu")
    calls = []

    def train_step(data):
        calls.append(1)
        return {}

    model.train_step = train_step
    x, y = _regression(32)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert calls == [1, 1]


@pytest.mark.parametrize(
    "settings",
    [{"precision": "bf16-mixed"}, {"gradient_accumulation_steps": 2}],
)
def test_mixed_precision_and_accumulation_take_the_general_steps(settings, monkeypatch):
    general_calls = []
    original = cadence.Model.train_step

    def counted(self, data):
        general_calls.append(1)
        return original(self, data)

    monkeypatch.setattr(cadence.Model, "train_step", counted)
    model = cadence.Model(nn.Linear(6, 1))
    model.compile(optimizer="sgd", loss="mse", device="cpu", **settings)
    x, y = _regression(64)
    step = step_plan.train_function(model)
    for begin in range(0, 64, 16):
        step((torch.from_numpy(x[begin:begin + 16]), torch.from_numpy(y[begin:begin + 16])))
    assert len(general_calls) == 4


def test_the_native_loss_kernels_give_torch_functional_values_to_the_bit():
    assert set(fused._NATIVE) == {F.mse_loss, F.l1_loss}
    generator = torch.Generator().manual_seed(0)
    prediction = torch.randn(257, 3, generator=generator, dtype=torch.float64)
    target = torch.randn(257, 3, generator=generator, dtype=torch.float64)
    for op in (F.mse_loss, F.l1_loss):
        for reduction in ("mean", "sum"):
            kernel = fused.elementwise_kernel(op, target, prediction, reduction=reduction)
            assert torch.equal(kernel(target, prediction), op(prediction, target, reduction=reduction))


def test_an_elementwise_kernel_aligns_and_casts_the_targets_it_was_planned_for():
    prediction = torch.tensor([[0.5], [2.0]])
    target = torch.tensor([1.0, 0.0], dtype=torch.float64)
    kernel = fused.elementwise_kernel(F.mse_loss, target, prediction)
    assert torch.equal(kernel(target, prediction), F.mse_loss(prediction, target[:, None].float()))
    assert fused.elementwise_kernel(F.mse_loss, target, torch.ones(2, 3)) is None


class DoubledMSE(cadence.losses.MeanSquaredError):
    def __call__(self, y_true, y_pred, sample_weight=None):
        return 2 * super().__call__(y_true, y_pred, sample_weight)


class ShiftedMSE(cadence.metrics.MeanSquaredError):
    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(y_true, y_pred + 1.0, sample_weight)


class HalvedMAE(cadence.losses.MeanAbsoluteError):
    def fused(self, y_true, y_pred):
        value = super().fused(y_true, y_pred)
        return None if value is None else value / 2


@pytest.mark.parametrize(
    ("loss", "metrics"),
    [(DoubledMSE(), ["mae"]), ("mse", [ShiftedMSE()]), (HalvedMAE(), [ShiftedMSE(), "mse"])],
)
def test_subclasses_that_change_a_built_in_loss_or_metric_are_computed_their_way(loss, metrics):
    planned, general = _twins(lambda: nn.Linear(6, 1), optimizer="sgd", loss=loss, metrics=metrics)
    x, y = _regression()
    histories = _fit_both(planned, general, x, y, batch_size=16, epochs=2, validation_split=0.25)
    _assert_same(planned, general, histories)


def test_a_model_that_predicts_one_number_per_batch_trains_as_the_general_step():
    class Total(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(6, 1)

        def forward(self, x):
            return self.linear(x).mean()

    planned, general = _twins(Total, optimizer="sgd", loss="mse")
    x, y = _regression()
    histories = _fit_both(planned, general, x, y, batch_size=16, epochs=2)
    _assert_same(planned, general, histories)


def test_an_elementwise_metric_kernel_planned_from_an_empty_batch_serves_later_batches():
    metric = cadence.metrics.MeanSquaredError()
    kernel = metric.fused_sum_kernel(torch.zeros(0, 3), torch.zeros(0, 3))
    target, prediction = torch.ones(4, 3), torch.zeros(4, 3)
    assert torch.equal(kernel(target, prediction), torch.tensor(4.0))  # 4 samples, each 1.0.


def test_a_native_kernel_is_used_only_when_it_exists_and_agrees_with_torch_functional():
    assert fused._native_of(F.mse_loss, "mse_loss") is torch._C._nn.mse_loss
    assert fused._native_of(F.mse_loss, "l1_loss") is None  # Another kernel's values.
    assert fused._native_of(F.mse_loss, "no_such_kernel") is None
